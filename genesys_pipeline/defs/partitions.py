"""The one daily partitions definition every partitioned asset, job and schedule shares, and the
policies that go with it: how backfills are cut into runs and how failed steps are retried.

A partition is a calendar day in `GENESYS_PARTITION_TIMEZONE` (default UTC): it holds the
conversations whose `conversationStart` falls on that local day. The settings are read in
genesys_pipeline/settings.py.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

import dagster as dg

from genesys_pipeline.settings import SETTINGS

# The asset group of the partitioned chain raw -> flattened -> S3 -> Snowflake.
CONVERSATIONS_GROUP = "genesys"

daily_partitions = dg.DailyPartitionsDefinition(
    start_date=SETTINGS.partition_start_date,
    timezone=SETTINGS.partition_timezone,
)

# The same policy on every partitioned asset: Dagster plans a backfill with the most restrictive
# policy of its assets, so one policy keeps a backfill of the whole chain one run per chunk of days.
# Each run loops over `context.partition_keys` (the check compares every day of the range), so a week
# is long enough to amortise a run's start-up (process, token, lookups, Snowflake set-up) and short
# enough that a failure costs at most a week; the `genesys_api` pool (dagster.yaml) lines the chunks up
# for the rate budget. Dagster records a range run's check evaluation against the asset, not per day.
backfill_policy = dg.BackfillPolicy.multi_run(max_partitions_per_run=SETTINGS.backfill_days_per_run)

# The outer safety net behind the Genesys client's own 429/5xx handling (Retry-After, bounded backoff)
# and the connectors' own retries: a step that still fails is run again after ~30 s, then ~90 s, each
# +/- up to 30 s so that retries of concurrent runs do not arrive together. Every asset on it replaces
# its partitions (or its table) as a whole, so running one again is safe. On the assets, not on the jobs:
# a backfill launched from the UI runs the assets in Dagster's implicit asset job, not in ours.
# None (no retries) when GENESYS_STEP_RETRIES is 0.
retry_policy = (
    dg.RetryPolicy(
        max_retries=SETTINGS.step_retries, delay=30, backoff=dg.Backoff.EXPONENTIAL, jitter=dg.Jitter.PLUS_MINUS
    )
    if SETTINGS.step_retries
    else None
)


def range_window(partition_keys: Sequence[str]) -> tuple[datetime, datetime]:
    """The start of the first day and the end of the last day of a run's partitions."""
    return (
        daily_partitions.time_window_for_partition_key(partition_keys[0]).start,
        daily_partitions.time_window_for_partition_key(partition_keys[-1]).end,
    )


def daily_asset(**asset_args: Any) -> Callable[[Callable[..., Any]], dg.AssetsDefinition]:
    """`dg.asset` with what every stage of the partitioned chain shares: the daily partitions, the
    group, the backfill and retry policies. Each stage adds its deps, kinds, pool and description."""

    def decorate(function: Callable[..., Any]) -> dg.AssetsDefinition:
        # Dagster 1.13 marks `backfill_policy` beta and warns on every load of the code location
        # (`dagster dev`, validate, each run worker); the single-run-per-chunk policy is chosen on
        # purpose (see above), so the warning would only be noise for the people running it.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", dg.BetaWarning)
            return dg.asset(
                partitions_def=daily_partitions,
                group_name=CONVERSATIONS_GROUP,
                backfill_policy=backfill_policy,
                retry_policy=retry_policy,
                **asset_args,
            )(function)

    return decorate
