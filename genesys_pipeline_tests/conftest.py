"""Quick loop: `pytest -m "not slow"` leaves out the tests marked slow (~10 s or more each); `make test` runs all.

What the test files share: the Genesys emulator (a factory of emulators on free ports, and one emulator
per module for tests that only read from it), a GenesysResource pointed at an emulator with short polls
and backoffs, and the local S3/Snowflake stack (moto and fakesnow over HTTP, one per module).
Test modules import the constants and plain helpers below from `genesys_pipeline_tests.conftest`.
"""

from __future__ import annotations

import signal
from datetime import date, datetime, timezone
from typing import Any, Callable, Iterator

import pytest
from snowflake.connector import DictCursor

from genesys_pipeline.local import stand_ins
from genesys_pipeline.local.emulator import (
    DEMO_CLIENT_ID,
    DEMO_CLIENT_SECRET,
    EmulatorConfig,
    EmulatorServer,
)
from genesys_pipeline.resources.genesys import GenesysResource

# Started in the background (`make test &`, a CI script), pytest inherits an ignored SIGINT, and Dagster
# maps SIGTERM to the SIGINT handler, so SIGTERM is ignored too. Every `tail` that Dagster starts to
# capture a step's logs inherits that, ignores the SIGTERM meant to end it, and each step then waits
# 30 s for it (and the tail outlives the suite). Handle both signals as Python does by default.
if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)
if signal.getsignal(signal.SIGTERM) == signal.SIG_IGN:
    signal.signal(signal.SIGTERM, signal.SIG_DFL)

CLOCK = datetime(2024, 5, 10, 12, 0, tzinfo=timezone.utc)
PAST_DAY = date(2024, 5, 8)  # wholly before the data-availability watermark at CLOCK (CLOCK - 6 h)

# The suite's emulator: seed 7, 300 conversations a day, a frozen clock (responses are repeatable; tests
# move it explicitly) and detail jobs that finish in a fraction of a second. The platform limits the
# tests rely on are spelled out although they are EmulatorConfig's defaults.
EMULATOR_CONFIG: dict[str, Any] = dict(
    seed=7,
    daily_volume=300,
    now=CLOCK,
    clock_rate=0.0,
    job_queued_seconds=0.05,
    job_pending_seconds=0.1,
    rate_limit_per_minute=300,
    fault_rate=0.0,
    token_lifetime_seconds=86400,
    data_availability_lag_seconds=6 * 3600,
)

# Values for every variable a production code location requires (defs/resources.py checks them when the
# definitions load); their values are only resolved when a run starts, so no real service is needed.
PRODUCTION_PLACEHOLDERS: dict[str, str] = {
    "GENESYS_PIPELINE_ENV": "production",
    "GENESYS_REGION": "mypurecloud.com",
    "GENESYS_CLIENT_ID": "placeholder-id",
    "GENESYS_CLIENT_SECRET": "placeholder-secret",
    "GENESYS_WORKING_DIR": "/tmp/genesys-working",
    "GENESYS_S3_BUCKET": "placeholder-bucket",
    "SNOWFLAKE_ACCOUNT": "placeholder",
    "SNOWFLAKE_USER": "placeholder",
    "SNOWFLAKE_DATABASE": "ANALYTICS",
    "SNOWFLAKE_SCHEMA": "GENESYS",
    "SNOWFLAKE_PRIVATE_KEY": "placeholder",
    "GENESYS_SNOWFLAKE_STORAGE_INTEGRATION": "GENESYS_S3",
}

# Short polls and backoffs keep the pipeline's tests fast (the retry logic is the same at any scale), and
# ten attempts ride out the emulator's injected faults.
FAST_RETRIES: dict[str, Any] = dict(
    job_poll_interval_seconds=0.05,
    backoff_base_seconds=0.05,
    backoff_cap_seconds=0.5,
    max_attempts=10,
)


# ##### THE GENESYS EMULATOR


def new_emulator(**overrides: Any) -> EmulatorServer:
    """A started emulator with EMULATOR_CONFIG and `overrides`; the caller stops it."""
    return EmulatorServer(EmulatorConfig(**{**EMULATOR_CONFIG, **overrides})).start()


@pytest.fixture
def start_emulator() -> Iterator[Callable[..., EmulatorServer]]:
    """`start_emulator(**overrides)`: a new emulator for this test, stopped when the test ends."""
    servers: list[EmulatorServer] = []

    def start(**overrides: Any) -> EmulatorServer:
        servers.append(new_emulator(**overrides))
        return servers[-1]

    yield start
    for server in servers:
        server.stop()


@pytest.fixture
def emulator(start_emulator: Callable[..., EmulatorServer]) -> EmulatorServer:
    """An emulator of this test's own, with EMULATOR_CONFIG."""
    return start_emulator()


@pytest.fixture(scope="module")
def module_emulator() -> Iterator[EmulatorServer]:
    """One emulator with EMULATOR_CONFIG for the whole module, for tests that only read from it."""
    server = new_emulator()
    yield server
    server.stop()


def genesys_for(emulator: EmulatorServer, retries: dict[str, Any] = FAST_RETRIES, **overrides: Any) -> GenesysResource:
    """A GenesysResource with the demo credentials, pointed at `emulator`, with `retries` (FAST_RETRIES
    unless given) and `overrides` (which win)."""
    fields = dict(
        api_base_url=emulator.base_url,
        login_base_url=emulator.base_url,
        client_id=DEMO_CLIENT_ID,
        client_secret=DEMO_CLIENT_SECRET,
        **retries,
    )
    return GenesysResource(**{**fields, **overrides})


# ##### THE LOCAL S3 AND SNOWFLAKE


@pytest.fixture(scope="module")
def stack() -> Iterator[stand_ins.LocalStack]:
    """moto's S3 server and fakesnow's Snowflake server (reading that S3 through the shim), one per module:
    moto's buckets are process-wide and fakesnow's databases server-wide, so tests use unique names."""
    with stand_ins.LocalStack() as local_stack:
        yield local_stack


def run_query(snowflake: Any, sql: str, params: Any = None) -> list[dict[str, Any]]:
    """Run one statement on a SnowflakeResource; its rows as dicts with lower-case keys ([] if none)."""
    with snowflake.get_connection() as conn:
        cursor = conn.cursor(DictCursor)
        cursor.execute(sql, params)
        return [{k.lower(): v for k, v in row.items()} for row in cursor.fetchall()] if cursor.description else []


# ##### DAGSTER'S CONTEXT BETWEEN TESTS


@pytest.fixture(autouse=True)
def no_instance_context_left_over() -> Iterator[None]:
    """Dagster keeps the storage of the instance last entered with `with` in a context variable, which
    any later load of definitions reads. An instance exited out of order (a test's inside another's
    schedule context, fixtures of different scopes) can leave it pointing at a deleted temporary
    instance: "unable to open database file" in a test that has nothing to do with it. Each test starts
    without one."""
    from dagster._core.storage.defs_state.base import set_defs_state_storage

    with set_defs_state_storage(None):
        yield


# ##### ONE EMULATOR DAY THROUGH THE PIPELINE


def run_emulator_day(
    stack: stand_ins.LocalStack, working: Any, day: date, assets: list[Any], name: str, **emulator_overrides: Any
) -> tuple[Any, Any]:
    """Materialize `assets` for `day` from a new emulator (EMULATOR_CONFIG with `emulator_overrides`) over
    HTTP, into a new bucket and database `name`_<token> of `stack`, with the working location `working`.
    Returns the Snowflake resource pointed at that database (schema GENESYS) and the run's result."""
    import uuid

    import dagster as dg

    from genesys_pipeline.resources.warehouse import S3Publishing, SnowflakeTarget
    from genesys_pipeline.resources.working_storage import WorkingStorage

    token = uuid.uuid4().hex[:8]
    bucket, database = f"genesys-{name.lower()}-{token}", f"{name.upper()}_{token.upper()}"
    s3 = stand_ins.s3_resource(stack.s3_endpoint_url)
    s3.get_client().create_bucket(Bucket=bucket)
    snowflake = stand_ins.snowflake_resource(stack.snowflake_connection_args, database, "GENESYS")
    emulator = new_emulator(**emulator_overrides)
    try:
        resources = {
            "genesys": genesys_for(emulator),
            "working_storage": WorkingStorage(root=str(working)),
            "s3": s3,
            "s3_publishing": S3Publishing(bucket=bucket, prefix="genesys/conversations"),
            "snowflake": snowflake,
            "snowflake_target": SnowflakeTarget(
                stage_aws_key_id="testing", stage_aws_secret_key="not-a-real-secret", staging_tables="transient"
            ),
        }
        result = dg.materialize(assets, partition_key=day.isoformat(), resources=resources)
        assert result.success
    finally:
        emulator.stop()
    return snowflake, result
