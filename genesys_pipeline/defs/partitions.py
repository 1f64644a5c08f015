"""The one daily partitions definition every partitioned asset, job and schedule shares, and the
policies that go with it: how backfills are cut into runs and how failed steps are retried.

A partition is a calendar day in `GENESYS_PARTITION_TIMEZONE` (default UTC): it holds the
conversations whose `conversationStart` falls on that local day. The settings are read in
genesys_pipeline/settings.py.
"""

from __future__ import annotations

import functools
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import Any

import dagster as dg
import pydantic

from genesys_pipeline.contracts.manifests import ManifestError
from genesys_pipeline.defs.day_exclusivity import retry_after_waits, take_turn
from genesys_pipeline.genesys.errors import (
    GenesysApiError,
    GenesysAuthError,
    GenesysRetriesExhausted,
)
from genesys_pipeline.settings import SETTINGS, SettingsError
from genesys_pipeline.steps.dimensions import DimensionLoadError
from genesys_pipeline.steps.load import LoadError

# The asset group of the partitioned chain raw -> flattened -> S3 -> Snowflake.
CONVERSATIONS_GROUP = "genesys"
# Shown on every asset in the UI and usable in asset selections (`tag:source=genesys-cloud`).
ASSET_TAGS = {"source": "genesys-cloud", "domain": "contact-centre"}

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
# None (no retries) when GENESYS_STEP_RETRIES is 0. Only transient errors reach it: see fail_at_once.
def build_retry_policy(max_retries: int, delay: float = 30) -> dg.RetryPolicy | None:
    if not max_retries:
        return None
    backoff, jitter = dg.Backoff.EXPONENTIAL, dg.Jitter.PLUS_MINUS
    return dg.RetryPolicy(max_retries=max_retries, delay=delay, backoff=backoff, jitter=jitter)


retry_policy = build_retry_policy(SETTINGS.step_retries)

# Errors that running the step again cannot fix: the configuration (resource fields, GENESYS_*
# variables), the credentials, a request the API refuses as such, a manifest that breaks its contract.
_PERMANENT: tuple[type[BaseException], ...] = (
    pydantic.ValidationError, SettingsError, dg.DagsterInvalidConfigError, GenesysAuthError, ManifestError,
)  # fmt: skip
# A client error of the API is permanent, except a timeout (408), the rate limit (429) and a retryable
# status that outlasted the client's own retries.
_TRANSIENT_HTTP = (408, 429)


def is_permanent(error: BaseException) -> bool:
    """Whether a step failing with `error` would fail the same way if run again."""
    if isinstance(error, _PERMANENT):
        return True
    if isinstance(error, GenesysApiError) and not isinstance(error, GenesysRetriesExhausted):
        return 400 <= error.status < 500 and error.status not in _TRANSIENT_HTTP
    if isinstance(error, (LoadError, DimensionLoadError)):
        # Raised by our own checks (stage missing or reading elsewhere, no database/schema, a manifest not
        # matching the tables, a COPY that rejected the file, rows of another day): no cause, and the same
        # input gives the same answer. Raised from a failed statement: as permanent as that failure, so a
        # lost connection or a Snowflake network error keeps the retries.
        cause = error.__cause__
        return cause is None or is_permanent(cause)
    return False


@contextmanager
def fail_at_once() -> Iterator[None]:
    """Turn a permanent error (is_permanent) into a `dg.Failure` that the step retry policy does not
    retry, keeping its message and chaining it; anything else goes to the policy unchanged."""
    try:
        yield
    except Exception as error:
        if not is_permanent(error):
            raise
        raise dg.Failure(
            description=f"{type(error).__name__}: {error} (not retried: running the step again cannot fix it)",
            allow_retries=False,
        ) from error


@contextmanager
def policy_retries_after_waits(context: dg.AssetExecutionContext) -> Iterator[None]:
    """Keep the RetryPolicy's retries for a step that first waited for its turn (day_exclusivity): a
    transient error is retried as the policy would have retried it had the step not waited."""
    try:
        yield
    except (dg.RetryRequested, dg.Failure):
        raise
    except Exception as error:
        retry = None if is_permanent(error) else retry_after_waits(context)
        if retry is None:
            raise
        raise retry from error


# The step keys of the conversations chain (every daily_asset): a run's place in line for its days is
# the start of its first of these steps.
CHAIN_STEPS: set[str] = set()


def failing_at_once(function: Callable[..., Any]) -> Callable[..., Any]:
    """An asset body run inside fail_at_once; the signature (context, resources) is kept for Dagster."""

    @functools.wraps(function)
    def body(*args: Any, **kwargs: Any) -> Any:
        with fail_at_once():
            return function(*args, **kwargs)

    return body


def taking_turns(function: Callable[..., Any]) -> Callable[..., Any]:
    """A chain asset's body: it first waits for its turn on its days (day_exclusivity.take_turn), and runs
    inside fail_at_once; the signature (context, resources) is kept for Dagster."""

    @functools.wraps(function)
    def body(context: dg.AssetExecutionContext, *args: Any, **kwargs: Any) -> Any:
        with fail_at_once(), policy_retries_after_waits(context):
            take_turn(context, CHAIN_STEPS)
            return function(context, *args, **kwargs)

    return body


def range_window(partition_keys: Sequence[str]) -> tuple[datetime, datetime]:
    """The start of the first day and the end of the last day of a run's partitions."""
    return (
        daily_partitions.time_window_for_partition_key(partition_keys[0]).start,
        daily_partitions.time_window_for_partition_key(partition_keys[-1]).end,
    )


def daily_asset(**asset_args: Any) -> Callable[[Callable[..., Any]], dg.AssetsDefinition]:
    """`dg.asset` with what every stage of the partitioned chain shares: the daily partitions, the
    group, the backfill and retry policies, runs of the same days taking turns, and permanent errors
    failing at once. Each stage adds its deps, kinds, pool and description."""

    def decorate(function: Callable[..., Any]) -> dg.AssetsDefinition:
        # Dagster 1.13 marks `backfill_policy` beta and warns on every load of the code location
        # (`dagster dev`, validate, each run worker); the single-run-per-chunk policy is chosen on
        # purpose (see above), so the warning would only be noise for the people running it.
        CHAIN_STEPS.add(asset_args.get("name", function.__name__))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", dg.BetaWarning)
            return dg.asset(
                partitions_def=daily_partitions,
                group_name=CONVERSATIONS_GROUP,
                owners=list(SETTINGS.asset_owners),
                tags=ASSET_TAGS,
                backfill_policy=backfill_policy,
                retry_policy=retry_policy,
                **asset_args,
            )(taking_turns(function))

    return decorate
