"""The one daily partitions definition every partitioned asset, job and schedule shares, and the
policies that go with it: when the daily schedule runs, how far back it reloads, how backfills are
cut into runs and how failed steps are retried.

A partition is a calendar day in `GENESYS_PARTITION_TIMEZONE` (default UTC): it holds the
conversations whose `conversationStart` falls on that local day.

Settings, read once when the code location loads (environment variables):
    GENESYS_PARTITION_START_DATE     first partition, YYYY-MM-DD (default 2024-01-01)
    GENESYS_PARTITION_TIMEZONE       IANA zone of the partition days and of the schedules (default UTC)
    GENESYS_SCHEDULE_HOUR            hour of the daily schedules, 0-23, in that zone (default 6)
    GENESYS_LOOKBACK_DAYS            days before yesterday that each daily tick reloads (default 3):
                                     Genesys restates conversations (late wrap-up codes, evaluations,
                                     surveys, long emails ending) for about three days after the fact
    GENESYS_BACKFILL_DAYS_PER_RUN    days per run of a backfill (default 7: a year is about 52 runs)
    GENESYS_STEP_RETRIES             retries of a failed step (default 2 in production, 0 in the local
                                     environment: the emulator and stand-ins have no outages to ride out,
                                     and a failure there should show at once, as the tests expect)
"""

from __future__ import annotations

import os

import dagster as dg

from genesys_pipeline.defs.resources import current_environment


def _int_setting(name: str, default: int, minimum: int, maximum: int) -> int:
    text = os.environ.get(name) or ""
    try:
        value = int(text) if text.strip() else default
    except ValueError:
        raise ValueError(f"{name} must be a whole number, got {text!r}") from None
    if not minimum <= value <= maximum:
        raise ValueError(f"{name} must be between {minimum} and {maximum}, got {value}")
    return value


PARTITION_TIMEZONE = os.environ.get("GENESYS_PARTITION_TIMEZONE") or "UTC"
PARTITION_START_DATE = os.environ.get("GENESYS_PARTITION_START_DATE") or "2024-01-01"
SCHEDULE_HOUR = _int_setting("GENESYS_SCHEDULE_HOUR", 6, 0, 23)
LOOKBACK_DAYS = _int_setting("GENESYS_LOOKBACK_DAYS", 3, 0, 31)
BACKFILL_DAYS_PER_RUN = _int_setting("GENESYS_BACKFILL_DAYS_PER_RUN", 7, 1, 366)
STEP_RETRIES = _int_setting("GENESYS_STEP_RETRIES", 2 if current_environment() == "production" else 0, 0, 10)

daily_partitions = dg.DailyPartitionsDefinition(
    start_date=PARTITION_START_DATE,
    timezone=PARTITION_TIMEZONE,
)

# The same policy on every partitioned asset: Dagster plans a backfill with the most restrictive
# policy of its assets, so one policy keeps a backfill of the whole chain one run per chunk of days.
# Each run loops over `context.partition_keys` (the check compares every day of the range), so a week
# is long enough to amortise a run's start-up (process, token, lookups, Snowflake set-up) and short
# enough that a failure costs at most a week; the `genesys_api` pool (dagster.yaml) lines the chunks up
# for the rate budget. Dagster records a range run's check evaluation against the asset, not per day.
backfill_policy = dg.BackfillPolicy.multi_run(max_partitions_per_run=BACKFILL_DAYS_PER_RUN)

# The outer safety net behind the Genesys client's own 429/5xx handling (Retry-After, bounded backoff)
# and the connectors' own retries: a step that still fails is run again after ~30 s, then ~90 s, each
# +/- up to 30 s so that retries of concurrent runs do not arrive together. Every asset on it replaces
# its partitions (or its table) as a whole, so running one again is safe. On the assets, not on the jobs:
# a backfill launched from the UI runs the assets in Dagster's implicit asset job, not in ours.
# None (no retries) when GENESYS_STEP_RETRIES is 0.
retry_policy = (
    dg.RetryPolicy(max_retries=STEP_RETRIES, delay=30, backoff=dg.Backoff.EXPONENTIAL, jitter=dg.Jitter.PLUS_MINUS)
    if STEP_RETRIES
    else None
)
