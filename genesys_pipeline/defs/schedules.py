"""The daily schedules: yesterday's conversations, the days Genesys may still restate, and the dimensions.

Genesys keeps changing a conversation for about three days after it happened (a wrap-up code entered
late, an evaluation or survey attached, a long email finally ending), so a day loaded once stays wrong.
Every tick at `SCHEDULE_HOUR` (in the partitions' time zone) therefore asks for:

    yesterday                      the first load of the newest complete day
    the LOOKBACK_DAYS days before  reloaded, picking up what Genesys restated since the last tick

one run per day (`genesys_conversations`, partition_key = the day), yesterday first. Each run replaces
its day everywhere (the raw and flat files, the S3 objects, the Snowflake rows in one transaction), so
a reload never duplicates and a day's count stays what the API says. Run keys are `<tick date>:<day>`:
a tick evaluated twice (a daemon restart) submits nothing twice, while the next tick reloads the day
under a new key. Days before the first partition are left out.

The runs of one tick do not flood Genesys: their API steps share the `genesys_api` pool (dagster.yaml:
one step at a time per OAuth client), so they queue for the rate budget instead of fighting over it,
and the S3/Snowflake steps of one day overlap with the extraction of the next.

`genesys_dimensions_daily` runs `genesys_dimensions` at the same hour: the queues, wrap-up codes,
users and divisions are a snapshot of the directory as it is now, not data of a day, so they have a
job of their own (see jobs.py) and one run per tick.

In production both schedules start running when the code location is deployed; locally they start
stopped (turn them on in the UI), so `dagster dev` does not call an emulator that may not be running.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Optional
from zoneinfo import ZoneInfo

import dagster as dg

from genesys_pipeline.defs.jobs import conversations_job, dimensions_job
from genesys_pipeline.defs.partitions import daily_partitions
from genesys_pipeline.settings import SETTINGS

SCHEDULE_HOUR, LOOKBACK_DAYS, PARTITION_TIMEZONE = (
    SETTINGS.schedule_hour, SETTINGS.lookback_days, SETTINGS.partition_timezone
)

DAILY_CRON = f"0 {SCHEDULE_HOUR} * * *"
DAYS_BACK_TAG = "genesys/days_back"  # 1 = yesterday, 2.. = a reload of a day Genesys may have restated
TICK_DATE_TAG = "genesys/tick_date"


def _default_status() -> dg.DefaultScheduleStatus:
    return dg.DefaultScheduleStatus.RUNNING if SETTINGS.environment == "production" else dg.DefaultScheduleStatus.STOPPED


def tick_date(tick: datetime, partitions_def: dg.TimeWindowPartitionsDefinition = daily_partitions) -> str:
    """The calendar date of a tick in the partitions' time zone, YYYY-MM-DD."""
    return tick.astimezone(ZoneInfo(partitions_def.timezone)).date().isoformat()


def partition_keys_for_tick(
    tick: datetime,
    lookback_days: int = LOOKBACK_DAYS,
    partitions_def: dg.TimeWindowPartitionsDefinition = daily_partitions,
) -> list[str]:
    """Yesterday (in the partitions' zone) and the `lookback_days` days before it, newest first;
    only days that are complete at `tick` and not before the first partition."""
    if tick.tzinfo is None:
        raise ValueError(f"the tick must be timezone-aware, got {tick!r}")
    if lookback_days < 0:
        raise ValueError(f"lookback_days must be >= 0, got {lookback_days}")
    today = tick.astimezone(ZoneInfo(partitions_def.timezone)).date()
    first_day = partitions_def.start.date()
    keys = []
    for days_back in range(1, lookback_days + 2):
        day = today - timedelta(days=days_back)
        if day < first_day:
            break
        key = day.strftime(partitions_def.fmt)
        if partitions_def.time_window_for_partition_key(key).end <= tick:
            keys.append(key)
    return keys


def conversation_run_requests(
    tick: datetime,
    lookback_days: int = LOOKBACK_DAYS,
    partitions_def: dg.TimeWindowPartitionsDefinition = daily_partitions,
) -> list[dg.RunRequest]:
    """One full-replace run of `genesys_conversations` per day of `partition_keys_for_tick`."""
    date = tick_date(tick, partitions_def)
    return [
        dg.RunRequest(
            run_key=f"{date}:{key}",
            partition_key=key,
            tags={TICK_DATE_TAG: date, DAYS_BACK_TAG: str(days_back)},
        )
        for days_back, key in enumerate(partition_keys_for_tick(tick, lookback_days, partitions_def), start=1)
    ]


def _tick(context: dg.ScheduleEvaluationContext) -> datetime:
    # None only when the schedule function is invoked by hand without a time.
    scheduled: Optional[datetime] = context.scheduled_execution_time
    return scheduled if scheduled is not None else datetime.now(timezone.utc)


@dg.schedule(
    name="genesys_conversations_daily",
    job=conversations_job,
    cron_schedule=DAILY_CRON,
    execution_timezone=PARTITION_TIMEZONE,
    default_status=_default_status(),
    description=f"Every day at {SCHEDULE_HOUR:02d}:00 {PARTITION_TIMEZONE}: yesterday's conversations, and "
    f"the {LOOKBACK_DAYS} days before it reloaded (Genesys restates conversations for about three days). "
    "One run per day, each replacing its day.",
)
def genesys_conversations_daily(context: dg.ScheduleEvaluationContext) -> list[dg.RunRequest]:
    requests = conversation_run_requests(_tick(context))
    context.log.info(f"Requesting {', '.join(r.partition_key or '' for r in requests) or 'no days'}")
    return requests


@dg.schedule(
    name="genesys_dimensions_daily",
    job=dimensions_job,
    cron_schedule=DAILY_CRON,
    execution_timezone=PARTITION_TIMEZONE,
    default_status=_default_status(),
    description=f"Every day at {SCHEDULE_HOUR:02d}:00 {PARTITION_TIMEZONE}: the queues, wrap-up codes, users "
    "and divisions tables, each replaced by the directory as it is now.",
)
def genesys_dimensions_daily(context: dg.ScheduleEvaluationContext) -> dg.RunRequest:
    date = tick_date(_tick(context))
    return dg.RunRequest(run_key=f"{date}:dimensions", tags={TICK_DATE_TAG: date})


schedules = [genesys_conversations_daily, genesys_dimensions_daily]
