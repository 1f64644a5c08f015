"""The daily schedules: yesterday's conversations, the days Genesys may still restate, and the dimensions.

Genesys keeps changing a conversation for about three days after it happened (a wrap-up code entered
late, an evaluation or survey attached, a long email finally ending), so a day loaded once stays wrong.
Every tick at `SCHEDULE_HOUR` (in the partitions' time zone) therefore asks for:

    yesterday                      the first load of the newest complete day
    the LOOKBACK_DAYS days before  reloaded, picking up what Genesys restated since the last tick
    the day LATE_RELOAD_DAYS_BACK  reloaded once more, with what Genesys adds a week or more later:
    days back (default 10)         first-contact resolutions (computed after a fixed 7-day next-contact
                                   window) and evaluations finished after the lookback

one run per day (`genesys_conversations`, partition_key = the day), yesterday first. Each run replaces
its day everywhere (the raw and flat files, the S3 objects, the Snowflake rows in one transaction), so
a reload never duplicates and a day's count stays what the API says. Run keys are `<tick date>:<day>`:
a tick evaluated twice (a daemon restart) submits nothing twice, while the next tick reloads the day
under a new key. Days before the first partition are left out.

Conversations that stay open for days (emails, messaging) would stay ongoing in Snowflake once their
day has left the lookback, so each tick also asks Snowflake which older days, up to
ONGOING_REFRESH_DAYS back, still hold ongoing conversations (steps/ongoing_days.py) and reloads those
days too, tagged `genesys/reason=ongoing` with the number of ongoing conversations. A conversation that
ends up to ONGOING_REFRESH_DAYS days after it started is then complete after the first tick following
its end, and a day with nothing ongoing is never read again. The lookup is bounded in time and can only
add days: if Snowflake cannot be reached (or the resources cannot be built), the tick logs a warning and
requests the normal days, so the daily load never waits on it.

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

import re
from collections.abc import Mapping
from datetime import date, datetime, timedelta, timezone
from typing import Optional
from zoneinfo import ZoneInfo

import dagster as dg

from genesys_pipeline.contracts.tables import CONVERSATIONS
from genesys_pipeline.defs.jobs import conversations_job, dimensions_job
from genesys_pipeline.defs.partitions import daily_partitions
from genesys_pipeline.settings import SETTINGS
from genesys_pipeline.steps.ongoing_days import (
    OngoingDays,
    describe_error,
    find_ongoing_days,
    within_deadline,
)

SCHEDULE_HOUR, LOOKBACK_DAYS, PARTITION_TIMEZONE = (
    SETTINGS.schedule_hour, SETTINGS.lookback_days, SETTINGS.partition_timezone
)
# How many days after its start a conversation still gets its day reloaded while Snowflake holds it as
# ongoing. Bounded, because every day of the window that holds ongoing conversations costs a run per tick.
ONGOING_REFRESH_DAYS = SETTINGS.ongoing_refresh_days  # GENESYS_ONGOING_REFRESH_DAYS
MAX_ONGOING_REFRESH_DAYS = 90  # settings.py refuses more
# The Snowflake lookup runs inside the tick, which Dagster gives 60 s (DAGSTER_SCHEDULE_GRPC_TIMEOUT_SECONDS)
# before failing it and its runs with it: give up well before, and keep the normal days.
ONGOING_LOOKUP_TIMEOUT_SECONDS = 20.0
# The day reloaded once more (GENESYS_LATE_RELOAD_DAYS_BACK; 0: never): by then Genesys has added the
# resolutions (7 days and some hours after a conversation ends) and most evaluations.
LATE_RELOAD_DAYS_BACK = SETTINGS.late_reload_days_back

DAILY_CRON = f"0 {SCHEDULE_HOUR} * * *"
DAYS_BACK_TAG = "genesys/days_back"  # 1 = yesterday, 2.. = a reload of a day Genesys may have restated
TICK_DATE_TAG = "genesys/tick_date"
REASON_TAG = "genesys/reason"  # why the tick asked for the day: yesterday, lookback, late or ongoing
ONGOING_TAG = "genesys/ongoing_conversations"  # reason=ongoing: how many Snowflake held as ongoing


def _default_status() -> dg.DefaultScheduleStatus:
    return dg.DefaultScheduleStatus.RUNNING if SETTINGS.environment == "production" else dg.DefaultScheduleStatus.STOPPED


def _today(tick: datetime, partitions_def: dg.TimeWindowPartitionsDefinition) -> date:
    if tick.tzinfo is None:
        raise ValueError(f"the tick must be timezone-aware, got {tick!r}")
    return tick.astimezone(ZoneInfo(partitions_def.timezone)).date()


def tick_date(tick: datetime, partitions_def: dg.TimeWindowPartitionsDefinition = daily_partitions) -> str:
    """The calendar date of a tick in the partitions' time zone, YYYY-MM-DD."""
    return _today(tick, partitions_def).isoformat()


def _past_days(
    tick: datetime, nearest: int, farthest: int, partitions_def: dg.TimeWindowPartitionsDefinition
) -> list[tuple[int, date, str]]:
    """(days back, day, partition key) from `nearest` to `farthest` days before the tick's date, newest
    first; only days that are complete at `tick` and not before the first partition."""
    today, first_day = _today(tick, partitions_def), partitions_def.start.date()
    days = []
    for days_back in range(nearest, farthest + 1):
        day = today - timedelta(days=days_back)
        if day < first_day:
            break
        key = day.strftime(partitions_def.fmt)
        if partitions_def.time_window_for_partition_key(key).end <= tick:
            days.append((days_back, day, key))
    return days


def partition_keys_for_tick(
    tick: datetime,
    lookback_days: int = LOOKBACK_DAYS,
    partitions_def: dg.TimeWindowPartitionsDefinition = daily_partitions,
) -> list[str]:
    """Yesterday (in the partitions' zone) and the `lookback_days` days before it, newest first;
    only days that are complete at `tick` and not before the first partition."""
    if lookback_days < 0:
        raise ValueError(f"lookback_days must be >= 0, got {lookback_days}")
    return [key for _, _, key in _past_days(tick, 1, lookback_days + 1, partitions_def)]


def ongoing_window(
    tick: datetime,
    lookback_days: int = LOOKBACK_DAYS,
    ongoing_refresh_days: int = ONGOING_REFRESH_DAYS,
    partitions_def: dg.TimeWindowPartitionsDefinition = daily_partitions,
) -> Optional[tuple[date, date]]:
    """The first and last day whose ongoing conversations the tick looks up: the days older than the
    lookback, up to `ongoing_refresh_days + 1` days back (a conversation that starts late on a day and
    ends `ongoing_refresh_days` later may end just before midnight, so the tick after it is one day
    further), not before the first partition. None when that leaves no day."""
    if lookback_days < 0:
        raise ValueError(f"lookback_days must be >= 0, got {lookback_days}")
    if not 0 <= ongoing_refresh_days <= MAX_ONGOING_REFRESH_DAYS:
        raise ValueError(
            f"ongoing_refresh_days must be between 0 and {MAX_ONGOING_REFRESH_DAYS}, got {ongoing_refresh_days}"
        )
    days = _past_days(tick, lookback_days + 2, ongoing_refresh_days + 1, partitions_def)
    return (days[-1][1], days[0][1]) if days else None


def conversation_run_requests(
    tick: datetime,
    lookback_days: int = LOOKBACK_DAYS,
    partitions_def: dg.TimeWindowPartitionsDefinition = daily_partitions,
    ongoing_by_day: Optional[Mapping[date, int]] = None,
    late_reload_days_back: int = LATE_RELOAD_DAYS_BACK,
) -> list[dg.RunRequest]:
    """One full-replace run of `genesys_conversations` per day of `partition_keys_for_tick`, newest
    first, then the day `late_reload_days_back` days back (0: none), then one per other day of
    `ongoing_by_day` (days -> ongoing conversations in Snowflake)."""
    ongoing_by_day = ongoing_by_day or {}
    tick_day = tick_date(tick, partitions_def)
    normal = partition_keys_for_tick(tick, lookback_days, partitions_def)
    requests = [
        dg.RunRequest(
            run_key=f"{tick_day}:{key}",
            partition_key=key,
            tags={TICK_DATE_TAG: tick_day, DAYS_BACK_TAG: str(days_back),
                  REASON_TAG: "yesterday" if days_back == 1 else "lookback"},
        )  # fmt: skip
        for days_back, key in enumerate(normal, start=1)
    ]
    if late_reload_days_back > 0:
        for days_back, _, key in _past_days(tick, late_reload_days_back, late_reload_days_back, partitions_def):
            if key not in normal:
                requests.append(dg.RunRequest(
                    run_key=f"{tick_day}:{key}",
                    partition_key=key,
                    tags={TICK_DATE_TAG: tick_day, DAYS_BACK_TAG: str(days_back), REASON_TAG: "late"},
                ))  # fmt: skip
    requested = {request.partition_key for request in requests}
    farthest = max(((_today(tick, partitions_def) - day).days for day in ongoing_by_day), default=0)
    for days_back, day, key in _past_days(tick, 1, farthest, partitions_def):
        if key in requested or not ongoing_by_day.get(day):
            continue
        requests.append(dg.RunRequest(
            run_key=f"{tick_day}:{key}",
            partition_key=key,
            tags={TICK_DATE_TAG: tick_day, DAYS_BACK_TAG: str(days_back), REASON_TAG: "ongoing",
                  ONGOING_TAG: str(ongoing_by_day[day])},
        ))  # fmt: skip
    return requests


def look_up_ongoing_days(context: dg.ScheduleEvaluationContext, window: tuple[date, date]) -> Optional[OngoingDays]:
    """The days of `window` that Snowflake holds ongoing conversations for, read with the code
    location's `snowflake` and `snowflake_target` resources; None, with a warning, when that cannot be
    known (Snowflake unreachable, slow or refusing, resources that cannot be built)."""
    # The resources are built here, not taken as schedule parameters: Dagster builds a parameter before
    # the tick starts, and a resource that fails to build (an EnvVar not set) would fail the whole tick.
    def lookup() -> OngoingDays:
        resource_defs = context.repository_def.get_top_level_resources()
        with dg.build_resources({key: resource_defs[key] for key in ("snowflake", "snowflake_target")}) as built:
            table = built.snowflake_target.table_name(CONVERSATIONS.name)
            with built.snowflake.get_connection() as connection:
                return find_ongoing_days(connection, table, *window)

    try:
        return within_deadline(lookup, ONGOING_LOOKUP_TIMEOUT_SECONDS, "the Snowflake lookup of ongoing conversations")
    except Exception as error:
        context.log.warning(
            f"Could not look up which days between {window[0]} and {window[1]} hold ongoing conversations in "
            f"Snowflake ({_why(error)}). This tick requests only yesterday, the lookback days and the late reload; "
            "the next tick looks again."
        )
        return None


_UNSET_VARIABLE = re.compile(r'environment variable "(\w+)" which is not set')


def _why(error: Exception) -> str:
    """What went wrong, in one line. A resource configuration error (Dagster's text runs to a stack trace
    per field) is told by the environment variables that are not set, or its first line per field."""
    if not isinstance(error, dg.DagsterInvalidConfigError):
        return describe_error(error)
    messages = [e.message.strip() for e in error.errors if e.message.strip()]
    unset = [match.group(1) for match in map(_UNSET_VARIABLE.search, messages) if match]
    if unset:
        variables = f"variable {unset[0]} is" if len(unset) == 1 else f"variables {', '.join(unset)} are"
        return f"the environment {variables} not set where the schedule runs"
    text = "; ".join(message.splitlines()[0] for message in messages)
    return text if len(text) <= 300 else text[:297] + "..."


def _tick(context: dg.ScheduleEvaluationContext) -> datetime:
    # None only when the schedule function is invoked by hand without a time.
    scheduled: Optional[datetime] = context.scheduled_execution_time
    return scheduled if scheduled is not None else datetime.now(timezone.utc)


def _described(requests: list[dg.RunRequest]) -> str:
    def why(request: dg.RunRequest) -> str:
        reason = request.tags[REASON_TAG]
        return f"{reason}, {request.tags[ONGOING_TAG]} ongoing conversations" if reason == "ongoing" else reason

    return ", ".join(f"{request.partition_key} ({why(request)})" for request in requests) or "no days"


@dg.schedule(
    name="genesys_conversations_daily",
    job=conversations_job,
    cron_schedule=DAILY_CRON,
    execution_timezone=PARTITION_TIMEZONE,
    default_status=_default_status(),
    description=f"Every day at {SCHEDULE_HOUR:02d}:00 {PARTITION_TIMEZONE}: yesterday's conversations, "
    f"the {LOOKBACK_DAYS} days before it reloaded (Genesys restates conversations for about three days), "
    + (f"the day {LATE_RELOAD_DAYS_BACK} days back reloaded once more (resolutions and late evaluations), "
       if LATE_RELOAD_DAYS_BACK else "")
    + f"and any older day of the last {ONGOING_REFRESH_DAYS + 1} that Snowflake still holds ongoing "
    "conversations for (emails and messages can stay open for days). One run per day, each replacing its day.",
)
def genesys_conversations_daily(context: dg.ScheduleEvaluationContext) -> list[dg.RunRequest]:
    tick = _tick(context)
    window = ongoing_window(tick)
    ongoing = look_up_ongoing_days(context, window) if window else None
    if ongoing is not None:
        context.log.info(f"Looked up in Snowflake: {ongoing.summary()}")
    requests = conversation_run_requests(
        tick, ongoing_by_day=ongoing.by_day if ongoing else None, late_reload_days_back=LATE_RELOAD_DAYS_BACK
    )
    context.log.info(f"Requesting {_described(requests)}")
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
