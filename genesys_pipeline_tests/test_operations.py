"""Operations: the daily schedule (yesterday plus the lookback days), a range backfill through the
Dagster instance, a day restated after its first load and corrected by the next scheduled run, and the
dimension tables; all against the Genesys emulator, moto's S3 server and the fakesnow Snowflake server
over HTTP.

The instance of the backfill and schedule tests is configured from the repository's dagster.yaml (pools,
run limits, run retries), with synchronous run launching so that runs execute in this process.
The backfill test drives Dagster's own backfill daemon iteration against an in-process code location
(`workspace_definitions` below): it uses a few private Dagster APIs, pinned with dagster==1.13.27.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
import subprocess
import sys
import time
import uuid
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Callable

import dagster as dg
import pytest
import yaml
from snowflake.connector import DictCursor

from genesys_pipeline.contracts.dimension_tables import (
    DIMENSIONS,
    QUEUES,
    USERS,
    WRAPUP_CODES,
    DimensionError,
)
from genesys_pipeline.contracts.tables import TABLES
from genesys_pipeline.definitions import DIMENSION_ASSETS, build_definitions
from genesys_pipeline.definitions import defs as project_defs
from genesys_pipeline.defs import schedules
from genesys_pipeline.defs.checks import API_COUNT_CHECK, DRIFT_CHECK, ROW_COUNT_CHECK
from genesys_pipeline.defs.jobs import CONVERSATIONS_JOB, DIMENSIONS_JOB, jobs
from genesys_pipeline.defs.partitions import (
    backfill_policy,
    daily_partitions,
    retry_policy,
)
from genesys_pipeline.defs.schedules import (
    DAYS_BACK_TAG,
    conversation_run_requests,
    genesys_conversations_daily,
    genesys_dimensions_daily,
    partition_keys_for_tick,
)
from genesys_pipeline.local import stand_ins
from genesys_pipeline.local.emulator import EmulatorServer, texts
from genesys_pipeline.local.emulator.synthetic import ContactCentre
from genesys_pipeline.resources.warehouse import S3Publishing, SnowflakeTarget
from genesys_pipeline.resources.working_storage import WorkingStorage
from genesys_pipeline.settings import SETTINGS, load_settings
from genesys_pipeline.steps import dimensions as dimension_loads
from genesys_pipeline_tests.conftest import (
    PRODUCTION_PLACEHOLDERS,
    genesys_for,
    run_query,
)

REPOSITORY = Path(__file__).resolve().parents[1]
UTC = timezone.utc
SCHEMA = "GENESYS"
CHECK_KEY = dg.AssetCheckKey(dg.AssetKey("snowflake_conversations"), ROW_COUNT_CHECK)
API_CHECK_KEY = dg.AssetCheckKey(dg.AssetKey("snowflake_conversations"), API_COUNT_CHECK)
PIPELINE_KEYS = [dg.AssetKey(name) for name in
                 ("raw_conversations", "flattened_conversations", "s3_conversations", "snowflake_conversations")]  # fmt: skip
# Compared before/after a reload: every column except the two that say which run extracted the row.
RUN_COLUMNS = {"extraction_run_id", "extracted_at"}
QUIET = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}


# ##### FIXTURES AND HELPERS (`stack`, the module's moto and fakesnow, and `start_emulator` come from conftest.py)


def project_definitions(resources: dict[str, Any]) -> dg.Definitions:
    """What definitions.py registers, with the given resources and the in-process executor (the
    multiprocess one would rebuild the resources in child processes, from the environment)."""
    return build_definitions(resources=resources, executor=dg.in_process_executor)


# The code location of the backfill test's workspace. Dagster imports it by module name, which finds this
# already imported module, so it sees the resources the test puts here.
_WORKSPACE_RESOURCES: dict[str, Any] = {}


@dg.definitions
def workspace_definitions() -> dg.Definitions:
    return project_definitions(dict(_WORKSPACE_RESOURCES))


@dataclasses.dataclass
class Lab:
    """One test's emulator, working location, bucket and database, and resources pointed at them."""

    stack: stand_ins.LocalStack
    emulator: EmulatorServer
    root: Path
    bucket: str
    database: str

    @property
    def snowflake(self) -> Any:
        return stand_ins.snowflake_resource(self.stack.snowflake_connection_args, self.database, SCHEMA)

    def resources(self) -> dict[str, Any]:
        return {
            "genesys": genesys_for(self.emulator),
            "working_storage": WorkingStorage(root=str(self.root)),
            "s3": stand_ins.s3_resource(self.stack.s3_endpoint_url),
            "s3_publishing": S3Publishing(bucket=self.bucket),
            "snowflake": self.snowflake,
            "snowflake_target": SnowflakeTarget(
                stage_aws_key_id="testing", stage_aws_secret_key="testing", staging_tables="transient"
            ),
        }

    def definitions(self) -> dg.Definitions:
        return project_definitions(self.resources())

    def query(self, sql: str, params: Any = None) -> list[dict[str, Any]]:
        return run_query(self.snowflake, sql, params)

    def conversations_by_day(self) -> dict[str, int]:
        rows = self.query("SELECT PARTITION_DATE, COUNT(*) AS N FROM CONVERSATIONS GROUP BY 1")
        return {str(r["partition_date"]): r["n"] for r in rows}

    def conversations(self, day: date) -> dict[str, dict[str, Any]]:
        rows = self.query("SELECT * FROM CONVERSATIONS WHERE PARTITION_DATE = %s", (day,))
        by_id = {row["conversation_id"]: row for row in rows}
        assert len(by_id) == len(rows), "duplicate conversation_id"
        return by_id

    def served(self, day: str) -> int:
        return len(self.emulator.app.conversations_started(date.fromisoformat(day)))


@pytest.fixture
def lab(stack: stand_ins.LocalStack, start_emulator: Callable[..., EmulatorServer], tmp_path: Path) -> Callable[..., Lab]:
    """`lab(now=..., daily_volume=...)`: a fresh emulator (frozen clock, seed 7) and a bucket and
    database of the test's own (moto's buckets are process-wide, fakesnow's databases server-wide)."""

    def make(now: datetime, daily_volume: int) -> Lab:
        emulator = start_emulator(now=now, daily_volume=daily_volume)
        token = uuid.uuid4().hex[:8]
        bucket = f"genesys-ops-{token}"
        stand_ins.s3_resource(stack.s3_endpoint_url).get_client().create_bucket(Bucket=bucket)
        return Lab(stack, emulator, tmp_path / f"working-{token}", bucket, f"OPS_{token.upper()}")

    return make


def repository_instance_config() -> dict[str, Any]:
    with open(REPOSITORY / "dagster.yaml", encoding="utf-8") as handle:
        return yaml.safe_load(handle)


def instance_like_production() -> Any:
    """A SQLite instance with the repository's dagster.yaml, launching runs synchronously in-process."""
    # dagster.yaml's queued coordinator (for its 1 s dequeue) would override the synchronous one: no
    # daemon dequeues here, so a backfill's runs would stay queued.
    config = {key: value for key, value in repository_instance_config().items() if key != "run_coordinator"}
    return dg.instance_for_test(overrides=config, synchronous_run_coordinator=True, synchronous_run_launcher=True)


def tick_context(tick: datetime, instance: Any = None) -> dg.ScheduleEvaluationContext:
    """What the daemon gives a schedule: the tick's time and the code location's repository (which
    resolves a partitioned request's tags)."""
    return dg.build_schedule_context(
        instance=instance, scheduled_execution_time=tick, repository_def=project_defs.get_repository_def()
    )


def run_tick(lab: Lab, instance: Any, tick: datetime) -> dict[str, dg.ExecuteInProcessResult]:
    """Evaluate the conversations schedule at `tick` and execute each run it requests, as the daemon would."""
    job = lab.definitions().resolve_job_def(CONVERSATIONS_JOB)
    requests = genesys_conversations_daily.evaluate_tick(tick_context(tick, instance)).run_requests or []
    results = {}
    for request in requests:
        result = job.execute_in_process(partition_key=request.partition_key, tags=request.tags, instance=instance,
                                        run_config=QUIET)  # fmt: skip
        assert result.success
        # The checks ran for the day and passed: the stages agree exactly, the API's count is close, the
        # records hold no field the contract does not know.
        evaluations = {e.check_name: e for e in result.get_asset_check_evaluations()}
        assert set(evaluations) == {ROW_COUNT_CHECK, API_COUNT_CHECK, DRIFT_CHECK}
        for evaluation in evaluations.values():
            assert evaluation.passed and evaluation.partition == request.partition_key, evaluation.description
        results[request.partition_key] = result
    return results


def epoch_ms(instant: datetime) -> int:
    return int(instant.timestamp() * 1000)


def final_wrapup_code(record: dict[str, Any]) -> Any:
    """flatten.py's rule: the code of the agent wrap-up segment that started last (ties: later in the record)."""
    segments = [
        (segment.get("segmentStart"), segment.get("wrapUpCode"))
        for participant in record.get("participants", []) if participant.get("purpose") == "agent"
        for session in participant.get("sessions", [])
        for segment in session.get("segments", []) if segment.get("segmentType") == "wrapup"
    ]  # fmt: skip
    return sorted(segments, key=lambda s: s[0])[-1][1] if segments else None


# ##### THE SCHEDULE


def test_a_tick_requests_yesterday_and_the_lookback_days_with_stable_run_keys() -> None:
    tick = datetime(2024, 5, 10, SETTINGS.schedule_hour, tzinfo=UTC)
    result = genesys_conversations_daily.evaluate_tick(tick_context(tick))
    requests = result.run_requests or []
    assert SETTINGS.lookback_days == 3 and SETTINGS.partition_timezone == "UTC"  # the defaults this test spells out
    assert SETTINGS.late_reload_days_back == 10
    assert [r.partition_key for r in requests] == ["2024-05-09", "2024-05-08", "2024-05-07", "2024-05-06", "2024-04-30"]
    assert [r.run_key for r in requests] == [f"2024-05-10:{r.partition_key}" for r in requests]
    assert [r.tags[DAYS_BACK_TAG] for r in requests] == ["1", "2", "3", "4", "10"]
    assert {r.job_name for r in requests} <= {None, CONVERSATIONS_JOB}
    assert genesys_conversations_daily.job_name == CONVERSATIONS_JOB
    assert genesys_conversations_daily.cron_schedule == f"0 {SETTINGS.schedule_hour} * * *"
    assert genesys_conversations_daily.execution_timezone == SETTINGS.partition_timezone
    assert genesys_conversations_daily.default_status == dg.DefaultScheduleStatus.STOPPED  # local environment

    # The same tick evaluated again asks for the same runs (the daemon drops known run keys); the next
    # tick reloads the days again under new keys.
    again = genesys_conversations_daily.evaluate_tick(tick_context(tick)).run_requests or []
    assert [r.run_key for r in again] == [r.run_key for r in requests]
    following = genesys_conversations_daily.evaluate_tick(tick_context(tick + timedelta(days=1))).run_requests or []
    assert [r.partition_key for r in following] == ["2024-05-10", "2024-05-09", "2024-05-08", "2024-05-07", "2024-05-01"]
    assert not {r.run_key for r in following} & {r.run_key for r in requests}

    (dimensions,) = genesys_dimensions_daily.evaluate_tick(tick_context(tick)).run_requests or []
    assert dimensions.run_key == "2024-05-10:dimensions" and dimensions.partition_key is None
    assert genesys_dimensions_daily.job_name == DIMENSIONS_JOB
    assert genesys_dimensions_daily.cron_schedule == genesys_conversations_daily.cron_schedule


@pytest.mark.parametrize(
    ("tick", "lookback", "expected"),
    [
        (datetime(2024, 5, 10, 6, tzinfo=UTC), 0, ["2024-05-09"]),
        (datetime(2024, 5, 10, 6, tzinfo=UTC), 1, ["2024-05-09", "2024-05-08"]),
        (datetime(2024, 5, 10, 0, 30, tzinfo=UTC), 5, ["2024-05-09", "2024-05-08", "2024-05-07", "2024-05-06",
                                                       "2024-05-05", "2024-05-04"]),
        (datetime(2024, 1, 2, 6, tzinfo=UTC), 3, ["2024-01-01"]),  # nothing before the first partition
        (datetime(2024, 1, 1, 6, tzinfo=UTC), 3, []),
    ],
)  # fmt: skip
def test_the_requested_days_follow_the_lookback(tick: datetime, lookback: int, expected: list[str]) -> None:
    assert partition_keys_for_tick(tick, lookback) == expected
    requests = conversation_run_requests(tick, lookback, late_reload_days_back=0)
    assert [r.partition_key for r in requests] == expected
    assert len({r.run_key for r in requests}) == len(expected)


def test_days_are_the_partitions_time_zone_days() -> None:
    """A New York partition day: the tick's local date decides what "yesterday" is (across DST too)."""
    new_york = dg.DailyPartitionsDefinition(start_date="2024-01-01", timezone="America/New_York")
    # 2024-03-11 02:00 UTC is still 2024-03-10 (22:00) in New York: yesterday there is 2024-03-09.
    assert partition_keys_for_tick(datetime(2024, 3, 11, 2, tzinfo=UTC), 1, new_york) == ["2024-03-09", "2024-03-08"]
    # 06:00 New York on 2024-03-11 (after the spring-forward day, a 23-hour partition).
    assert partition_keys_for_tick(datetime(2024, 3, 11, 10, tzinfo=UTC), 1, new_york) == ["2024-03-10", "2024-03-09"]
    (request,) = conversation_run_requests(datetime(2024, 3, 11, 2, tzinfo=UTC), 0, new_york, late_reload_days_back=0)
    assert request.run_key == "2024-03-10:2024-03-09"
    with pytest.raises(ValueError, match="timezone-aware"):
        partition_keys_for_tick(datetime(2024, 3, 11, 2), 1, new_york)


def test_production_settings_come_from_the_environment() -> None:
    """Read when the code location loads, so a fresh interpreter sees them: the hour, lookback, time zone
    and days per backfill run; and in production the step retries and schedules that start running."""
    code = (
        "import json, dagster as dg\n"
        "from datetime import datetime, timezone\n"
        "from genesys_pipeline.definitions import defs\n"
        "from genesys_pipeline.defs.schedules import genesys_conversations_daily as s, genesys_dimensions_daily as d\n"
        "tick = datetime(2024, 5, 10, 9, tzinfo=timezone.utc)\n"  # 04:00 in Chicago (CDT)
        "context = dg.build_schedule_context(scheduled_execution_time=tick, repository_def=defs.get_repository_def())\n"
        "requests = s.evaluate_tick(context).run_requests\n"
        "assets = [defs.resolve_assets_def(k) for k in defs.resolve_asset_graph().get_all_asset_keys()]\n"
        "print(json.dumps({'cron': [s.cron_schedule, d.cron_schedule], 'tz': [s.execution_timezone, d.execution_timezone],\n"
        "  'status': [s.default_status.value, d.default_status.value], 'keys': [r.partition_key for r in requests],\n"
        "  'per_run': sorted({a.backfill_policy.max_partitions_per_run for a in assets if a.partitions_def}),\n"
        "  'retries': sorted({repr(a.op.retry_policy) for a in assets}), 'assets': len(assets)}))\n"
    )  # fmt: skip
    env = {**os.environ, **PRODUCTION_PLACEHOLDERS, "GENESYS_SCHEDULE_HOUR": "4", "GENESYS_LOOKBACK_DAYS": "5",
           "GENESYS_PARTITION_TIMEZONE": "America/Chicago", "GENESYS_BACKFILL_DAYS_PER_RUN": "3",
           "GENESYS_LATE_RELOAD_DAYS_BACK": "8"}  # fmt: skip
    env.pop("GENESYS_STEP_RETRIES", None)
    done = subprocess.run([sys.executable, "-W", "ignore", "-c", code], env=env, cwd=REPOSITORY, capture_output=True,
                          text=True, timeout=120)  # fmt: skip
    assert done.returncode == 0, done.stderr
    printed = json.loads(done.stdout.strip().splitlines()[-1])
    policy = dg.RetryPolicy(max_retries=2, delay=30, backoff=dg.Backoff.EXPONENTIAL, jitter=dg.Jitter.PLUS_MINUS)
    assert printed == {
        "cron": ["0 4 * * *", "0 4 * * *"],
        "tz": ["America/Chicago", "America/Chicago"],
        "status": ["RUNNING", "RUNNING"],
        "keys": ["2024-05-09", "2024-05-08", "2024-05-07", "2024-05-06", "2024-05-05", "2024-05-04", "2024-05-02"],
        "per_run": [3],
        "retries": [repr(policy)],  # on all eight assets
        "assets": 8,
    }


@pytest.mark.parametrize(("value", "message"), [("abc", "whole number"), ("-1", "between 0 and 31"), ("32", "between")])
def test_a_bad_setting_fails_with_its_name(value: str, message: str) -> None:
    with pytest.raises(ValueError, match=f"GENESYS_LOOKBACK_DAYS must be.*{message}"):
        load_settings({"GENESYS_LOOKBACK_DAYS": value})
    assert load_settings({"GENESYS_LOOKBACK_DAYS": ""}).lookback_days == 3


def test_the_code_location_shares_one_partitioning_and_policy_and_pools_the_genesys_callers() -> None:
    assert {job.name for job in jobs} == {CONVERSATIONS_JOB, DIMENSIONS_JOB}
    assert {s.name for s in project_defs.schedules or []} == {"genesys_conversations_daily", "genesys_dimensions_daily"}
    conversations = project_defs.resolve_job_def(CONVERSATIONS_JOB)
    assert conversations.partitions_def is daily_partitions
    assert set(conversations.asset_layer.selected_asset_keys) == set(PIPELINE_KEYS)
    dimensions = project_defs.resolve_job_def(DIMENSIONS_JOB)
    assert dimensions.partitions_def is None
    assert {k.to_user_string() for k in dimensions.asset_layer.selected_asset_keys} == {
        "genesys_queues", "genesys_wrapup_codes", "genesys_users", "genesys_divisions"}  # fmt: skip
    for key in PIPELINE_KEYS:
        asset = project_defs.resolve_assets_def(key)
        assert asset.partitions_def is daily_partitions, key
        assert asset.backfill_policy == backfill_policy == dg.BackfillPolicy.multi_run(SETTINGS.backfill_days_per_run), key
        assert asset.op.retry_policy == retry_policy, key
    assert retry_policy is None  # the local environment: no step retries (the production test checks them)
    pools = {key.to_user_string(): project_defs.resolve_assets_def(key).op.pool
             for key in [*PIPELINE_KEYS, *(a.key for a in DIMENSION_ASSETS)]}  # fmt: skip
    assert pools == {"raw_conversations": "genesys_api", "flattened_conversations": None,
                     "s3_conversations": None, "snowflake_conversations": None, "genesys_queues": "genesys_api",
                     "genesys_wrapup_codes": "genesys_api", "genesys_users": "genesys_api",
                     "genesys_divisions": "genesys_api"}  # fmt: skip
    for asset in DIMENSION_ASSETS:
        assert asset.partitions_def is None and asset.op.retry_policy == retry_policy


def test_the_repository_dagster_yaml_is_a_valid_instance_configuration() -> None:
    with dg.instance_for_test(overrides=repository_instance_config()) as instance:
        concurrency = instance.get_concurrency_config()
        assert concurrency.pool_config.default_pool_limit == 1
        assert concurrency.pool_config.pool_granularity.value == "op"
        assert concurrency.run_queue_config.max_concurrent_runs >= 1
        assert {"key": "dagster/backfill", "limit": 2} in concurrency.run_queue_config.tag_concurrency_limits
        assert instance.run_retries_enabled and not instance.run_retries_retry_on_asset_or_op_failure
        assert type(instance.run_coordinator).__name__ == "QueuedRunCoordinator"


# ##### A RANGE BACKFILL THROUGH THE INSTANCE


@pytest.mark.slow
def test_a_seven_day_backfill_through_the_instance_ends_with_the_check_passing_for_every_day(lab) -> None:
    """Launched as the UI launches an asset backfill, executed by the backfill daemon's own iteration:
    the backfill policy cuts the week into runs, each a range run of the whole chain with the check."""
    from dagster._core.execution.backfill import BulkActionStatus, PartitionBackfill
    from dagster._core.remote_origin import InProcessCodeLocationOrigin
    from dagster._core.test_utils import (
        InProcessTestWorkspaceLoadTarget,
        create_test_daemon_workspace_context,
    )
    from dagster._core.types.loadable_target_origin import LoadableTargetOrigin
    from dagster._daemon.backfill import execute_backfill_iteration

    env = lab(now=datetime(2024, 5, 10, 12, tzinfo=UTC), daily_volume=60)
    days = [f"2024-05-{day:02d}" for day in range(1, 8)]
    _WORKSPACE_RESOURCES.update(env.resources())
    origin = InProcessCodeLocationOrigin(
        LoadableTargetOrigin(module_name=__name__, attribute="workspace_definitions", working_directory=str(REPOSITORY)),
        location_name="genesys_pipeline",
    )
    try:
        with instance_like_production() as instance, create_test_daemon_workspace_context(
            InProcessTestWorkspaceLoadTarget(origin), instance
        ) as workspace:
            request_context = workspace.create_request_context()
            assert request_context.get_code_location_error("genesys_pipeline") is None
            backfill = PartitionBackfill.from_asset_partitions(
                backfill_id="week", asset_graph=request_context.asset_graph, partition_names=days,
                asset_selection=PIPELINE_KEYS, backfill_timestamp=time.time(), tags={},
                dynamic_partitions_store=instance, all_partitions=False, title="a week", description=None,
                run_config=None,
            )  # fmt: skip
            instance.add_backfill(backfill)
            for _ in range(10):  # the daemon's loop: submit the runs (executed right away here), then see them done
                list(execute_backfill_iteration(workspace, logging.getLogger("backfill")))
                if instance.get_backfill("week").status != BulkActionStatus.REQUESTED:
                    break
            assert instance.get_backfill("week").status == BulkActionStatus.COMPLETED_SUCCESS

            runs = sorted(instance.get_runs(filters=dg.RunsFilter(tags={"dagster/backfill": "week"})),
                          key=lambda r: r.tags["dagster/asset_partition_range_start"])  # fmt: skip
            assert len(runs) == math.ceil(len(days) / SETTINGS.backfill_days_per_run)
            covered = []
            for run in runs:
                assert run.status == dg.DagsterRunStatus.SUCCESS
                assert run.asset_selection == frozenset(PIPELINE_KEYS)
                assert {CHECK_KEY, API_CHECK_KEY} <= set(run.asset_check_selection or ())
                first = days.index(run.tags["dagster/asset_partition_range_start"])
                last = days.index(run.tags["dagster/asset_partition_range_end"])
                assert last - first + 1 <= SETTINGS.backfill_days_per_run
                covered += days[first : last + 1]
            assert covered == days

            # The check ran in every run and passed; together its evaluations cover every day, and every
            # table of every day agrees at every stage. A range run's returned result belongs to the run
            # (Dagster 1.13 records it without a partition); each day's own result is recorded against
            # that day's partition as well, so the check's partitions page shows every day Passed.
            evaluations = [
                record.get_dagster_event().event_specific_data
                for run in runs for record in instance.all_logs(run.run_id, of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION)
            ]  # fmt: skip
            per_range = [e for e in evaluations if e.partition is None]
            assert len(per_range) == 3 * len(runs) and all(e.passed for e in evaluations)  # the three checks
            stages = [e for e in per_range if e.asset_check_key == CHECK_KEY]
            api_counts = [e for e in per_range if e.asset_check_key == API_CHECK_KEY]
            assert len(stages) == len(api_counts) == len(runs)
            assert sorted(day for e in stages for day in e.metadata["partitions"].value) == days
            comparison = "\n".join(e.metadata["comparison"].value for e in stages)
            for day in days:
                n = env.served(day)
                assert n and f"| {day} | conversations | {n} | {n} | {n} | {n} | {n} | ok |" in comparison
            assert comparison.count("| ok |") == len(days) * len(TABLES) and "**" not in comparison
            for check_key in (CHECK_KEY, API_CHECK_KEY):
                per_day = {e.partition: e for e in evaluations if e.asset_check_key == check_key and e.partition}
                assert sorted(per_day) == days
                assert all(e.metadata["partitions"].value == [day] for day, e in per_day.items())
                latest: dict[str | None, Any] = {}  # the newest execution record of each partition
                for record in instance.event_log_storage.get_asset_check_execution_history(check_key, limit=100):
                    latest.setdefault(record.partition, record)
                assert {day: latest[day].status.value for day in days} == dict.fromkeys(days, "SUCCEEDED")
            for day in days:
                n = env.served(day)
                day_table = next(e for e in evaluations if e.asset_check_key == CHECK_KEY and e.partition == day)
                assert f"| {day} | conversations | {n} | {n} | {n} | {n} | {n} | ok |" in day_table.metadata["comparison"].value
            # Every day's API count (totalHits, approximate) was compared, within the tolerance.
            assert sum(e.metadata["days_compared"].value for e in api_counts) == len(days)

            for key in PIPELINE_KEYS:
                assert sorted(instance.get_materialized_partitions(key)) == days, key
            # The steps went through the dagster.yaml's pool: genesys_api exists with the default limit 1,
            # and every slot was given back.
            pool = instance.event_log_storage.get_concurrency_info("genesys_api")
            assert pool.slot_count == 1 and not pool.claimed_slots and not pool.pending_steps
    finally:
        _WORKSPACE_RESOURCES.clear()

    assert env.conversations_by_day() == {day: env.served(day) for day in days}
    (duplicates,) = env.query("SELECT COUNT(*) - COUNT(DISTINCT CONVERSATION_ID) AS N FROM CONVERSATIONS")
    assert duplicates["n"] == 0


# ##### A RESTATED DAY


@pytest.mark.slow
def test_a_day_restated_after_its_first_load_is_corrected_by_the_next_scheduled_run(lab, monkeypatch) -> None:
    """2024-05-08 is first loaded by the 2024-05-09 tick (as yesterday). Genesys then restates some of its
    conversations (late wrap-up codes, evaluations, surveys); the 2024-05-10 tick reloads it (days back 2)
    and Snowflake then holds the restated values: same count, no duplicates, exactly the restated rows changed."""
    monkeypatch.setattr(schedules, "LATE_RELOAD_DAYS_BACK", 0)  # the reload ten days back: not this test's
    first_tick = datetime(2024, 5, 9, SETTINGS.schedule_hour, tzinfo=UTC)
    next_tick = first_tick + timedelta(days=1)
    day = date(2024, 5, 8)
    env = lab(now=first_tick, daily_volume=120)
    centre = env.emulator.app.centre
    plans = centre.day_plans(day)
    # Detail jobs read Genesys' analytics data as of its availability watermark (now - 6 h here), and the
    # extraction reads the conversations still open at the watermark live, so each load sees a closed
    # conversation as it was at the watermark and an open one as it is at the tick: what changed after
    # the first watermark is what gets restated.
    seen_first = env.emulator.app.jobs.watermark_ms()
    seen_next = seen_first + epoch_ms(next_tick) - epoch_ms(first_tick)
    restated = {p.conversation_id for p in plans if p.last_change_ms > seen_first}

    def as_extracted(plan: Any, watermark_ms: int, tick: datetime) -> dict[str, Any]:
        at_watermark = centre.render(plan, watermark_ms, with_attributes=False)
        return at_watermark if "conversationEnd" in at_watermark else centre.render(plan, epoch_ms(tick), with_attributes=False)

    late_wrapups = {
        p.conversation_id: (final_wrapup_code(before), final_wrapup_code(after))
        for p in plans if p.conversation_id in restated
        for before, after in [(as_extracted(p, seen_first, first_tick), as_extracted(p, seen_next, next_tick))]
        if final_wrapup_code(before) != final_wrapup_code(after)
    }  # fmt: skip
    assert restated and late_wrapups, "the emulator restates nothing of this day between the ticks"

    with instance_like_production() as instance:
        first = run_tick(env, instance, first_tick)
        assert first["2024-05-08"].dagster_run.tags[DAYS_BACK_TAG] == "1"
        loaded = env.conversations(day)
        assert len(loaded) == env.served("2024-05-08") == len(plans)

        env.emulator.app.clock.set(next_tick)
        assert env.emulator.app.jobs.watermark_ms() == seen_next
        second = run_tick(env, instance, next_tick)
        assert list(second) == ["2024-05-09", "2024-05-08", "2024-05-07", "2024-05-06"]
        assert second["2024-05-08"].dagster_run.tags[DAYS_BACK_TAG] == "2"
        reloaded = env.conversations(day)

    assert set(reloaded) == set(loaded) and len(reloaded) == env.served("2024-05-08")
    (duplicates,) = env.query("SELECT COUNT(*) - COUNT(DISTINCT CONVERSATION_ID) AS N FROM CONVERSATIONS")
    assert duplicates["n"] == 0
    assert env.conversations_by_day() == {d: env.served(d) for d in ("2024-05-05", "2024-05-06", "2024-05-07",
                                                                      "2024-05-08", "2024-05-09")}  # fmt: skip

    def values(row: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in row.items() if k not in RUN_COLUMNS}

    changed = {cid for cid in loaded if values(loaded[cid]) != values(reloaded[cid])}
    unexpected = {cid: {k: (v, reloaded[cid][k]) for k, v in values(loaded[cid]).items() if v != reloaded[cid][k]}
                  for cid in changed - restated}  # fmt: skip
    assert changed and not unexpected, f"only restated conversations may change: {unexpected}"
    assert {r["extraction_run_id"] for r in reloaded.values()} == {second["2024-05-08"].run_id}
    for cid, (code_before, code_after) in late_wrapups.items():
        assert loaded[cid]["final_wrapup_code_id"] == code_before
        assert reloaded[cid]["final_wrapup_code_id"] == code_after
        segment_codes = env.query(
            "SELECT WRAPUP_CODE_ID FROM SEGMENTS WHERE CONVERSATION_ID = %s AND SEGMENT_TYPE = 'wrapup'", (cid,)
        )
        assert code_after in {s["wrapup_code_id"] for s in segment_codes}
    history = env.query(
        "SELECT RUN_ID, ROWS_LOADED, ROWS_DELETED FROM GENESYS_LOAD_HISTORY "
        "WHERE TABLE_NAME = 'CONVERSATIONS' AND PARTITION_DATE = %s ORDER BY LOADED_AT", (day,)
    )  # fmt: skip
    assert [(h["run_id"], h["rows_loaded"], h["rows_deleted"]) for h in history] == [
        (first["2024-05-08"].run_id, len(plans), 0), (second["2024-05-08"].run_id, len(plans), len(plans))]  # fmt: skip


# ##### DIMENSIONS

DEFAULT_WRAPUP_CODE = "7fb334b0-0e9e-11e4-9191-0800200c9a66"  # the same id in every org, not listed


def _table(env: Lab, table: str, key: str) -> dict[str, dict[str, Any]]:
    rows = env.query(f"SELECT * FROM {table}")
    by_id = {row[key]: row for row in rows}
    assert len(by_id) == len(rows), f"duplicate {key} in {table}"
    return by_id


def _metadata(result: dg.ExecuteInProcessResult, asset: str) -> dict[str, Any]:
    (event,) = result.asset_materializations_for_node(asset)
    return {key: value.value for key, value in event.metadata.items()}


def test_dimension_tables_hold_every_entity_exactly_and_a_rerun_replaces_them(lab) -> None:
    tick = datetime(2024, 5, 10, SETTINGS.schedule_hour, tzinfo=UTC)
    env = lab(now=tick, daily_volume=10)
    centre = env.emulator.app.centre
    job = env.definitions().resolve_job_def(DIMENSIONS_JOB)
    (request,) = genesys_dimensions_daily.evaluate_tick(tick_context(tick)).run_requests or []
    with dg.instance_for_test(overrides=repository_instance_config()) as instance:
        first = job.execute_in_process(tags=request.tags, instance=instance, run_config=QUIET)
    assert first.success

    queues = _table(env, "DIM_QUEUES", "queue_id")
    assert {i: q["name"] for i, q in queues.items()} == {q["id"]: q["name"] for q in centre.queues}
    assert {q[0] for q in texts.QUEUES} == {q["name"] for q in queues.values()}  # "Billing\nDisputes", "=Escalations", ...
    for entity in centre.queues:
        row = queues[entity["id"]]
        assert (row["division_id"], row["division_name"]) == (entity["division"]["id"], entity["division"]["name"])
        assert row["member_count"] == entity["memberCount"] and row["acw_timeout_ms"] == entity["acwSettings"]["timeoutMs"]
        assert row["date_modified"] == datetime.fromisoformat(entity["dateModified"].replace("Z", "+00:00"))
        assert row["description"] == entity["description"] and row["enable_transcription"] is entity["enableTranscription"]

    codes = _table(env, "DIM_WRAPUP_CODES", "wrapup_code_id")
    listed_codes = {i: c for i, c in codes.items() if c["listed"]}
    assert {i: c["name"] for i, c in listed_codes.items()} == {c["id"]: c["name"] for c in centre.wrapup_codes}
    assert "Follow-up\r\nrequired" in {c["name"] for c in codes.values()}  # CRLF kept as it is
    assert {i: c["description"] for i, c in listed_codes.items()} == {c["id"]: c.get("description") for c in centre.wrapup_codes}
    # Conversations carry the Default Wrap-up Code but the listing lacks it: the load adds it, marked.
    (unlisted,) = [c for c in codes.values() if not c["listed"]]
    assert (unlisted["wrapup_code_id"], unlisted["name"]) == (DEFAULT_WRAPUP_CODE, "Default Wrap-up Code")
    assert unlisted["description"] is None and unlisted["loaded_at"] == listed_codes[centre.wrapup_codes[0]["id"]]["loaded_at"]

    users = _table(env, "DIM_USERS", "user_id")
    assert {i: (u["name"], u["state"]) for i, u in users.items()} == {u["id"]: (u["name"], u["state"]) for u in centre.users}
    assert set(texts.HOSTILE_STAFF) <= {u["name"] for u in users.values()}
    states = [u["state"] for u in users.values()]
    assert states.count("deleted") == 6 and states.count("inactive") == 6  # leavers are there too
    assert {i: u["manager_id"] for i, u in users.items()} == {u["id"]: (u.get("manager") or {}).get("id") for u in centre.users}

    divisions = _table(env, "DIM_DIVISIONS", "division_id")
    assert {i: (d["name"], d["description"], d["home_division"]) for i, d in divisions.items()} == {
        d["id"]: (d["name"], d["description"], d["homeDivision"]) for d in centre.divisions}  # fmt: skip
    assert 'Back Office, "EMEA"' in {d["name"] for d in divisions.values()}

    meta = _metadata(first, "genesys_users")
    assert meta["rows"] == meta["dagster/row_count"] == len(centre.users) and meta["rows_replaced"] == 0
    assert meta["dagster/table_name"] == f"{env.database}.{SCHEMA}.DIM_USERS"
    assert meta["rows_by_state"] == {"active": len(centre.users) - 12, "deleted": 6, "inactive": 6}
    assert "USER_ID" in {c.name for c in meta["dagster/column_schema"].columns}
    loaded_at = {r["loaded_at"] for r in env.query("SELECT DISTINCT LOADED_AT FROM DIM_QUEUES")}
    assert len(loaded_at) == 1

    # The directory changes: a queue renamed, a wrap-up code deleted. The rerun replaces the tables.
    renamed = centre.queues[0]
    renamed["name"] = 'Renamed, "queue"\n=🎧'
    removed = centre.wrapup_codes.pop()
    with dg.instance_for_test(overrides=repository_instance_config()) as instance:
        second = job.execute_in_process(instance=instance, run_config=QUIET)
    assert second.success
    queues_after = _table(env, "DIM_QUEUES", "queue_id")
    assert queues_after[renamed["id"]]["name"] == 'Renamed, "queue"\n=🎧' and len(queues_after) == len(queues)
    codes_after = _table(env, "DIM_WRAPUP_CODES", "wrapup_code_id")
    assert removed["id"] not in codes_after and len(codes_after) == len(codes) - 1
    assert len(_table(env, "DIM_USERS", "user_id")) == len(users)
    assert len(_table(env, "DIM_DIVISIONS", "division_id")) == len(divisions)
    assert _metadata(second, "genesys_wrapup_codes")["rows_replaced"] == len(codes)
    assert {r["load_run_id"] for r in env.query("SELECT DISTINCT LOAD_RUN_ID FROM DIM_QUEUES")} == {second.run_id}


def test_a_listing_that_has_the_default_wrapup_code_keeps_one_listed_row(
    stack: stand_ins.LocalStack, start_emulator: Callable[..., EmulatorServer]
) -> None:
    emulator = start_emulator(list_default_wrapup_code=True)
    database = f"OPS_{uuid.uuid4().hex[:8].upper()}"
    snowflake = stand_ins.snowflake_resource(stack.snowflake_connection_args, database, SCHEMA)
    target = SnowflakeTarget(stage_aws_key_id="testing", stage_aws_secret_key="testing")
    with genesys_for(emulator).get_client() as client, snowflake.get_connection() as conn:
        load = dimension_loads.load_dimension(conn, target, WRAPUP_CODES, client.iter_wrapup_codes(), "run-1")
    rows = run_query(snowflake, "SELECT WRAPUP_CODE_ID, NAME, LISTED, DIVISION_ID FROM DIM_WRAPUP_CODES")
    assert load.rows == len(rows) == len(emulator.app.centre.wrapup_codes) + 1 and load.unlisted_added == 0
    (default,) = [r for r in rows if r["wrapup_code_id"] == DEFAULT_WRAPUP_CODE]
    assert default["listed"] is True and default["division_id"] and all(r["listed"] for r in rows)


def test_a_wrapup_code_table_made_before_the_listed_column_gets_it(
    stack: stand_ins.LocalStack, emulator: EmulatorServer
) -> None:
    database = f"OPS_{uuid.uuid4().hex[:8].upper()}"
    snowflake = stand_ins.snowflake_resource(stack.snowflake_connection_args, database, SCHEMA)
    target = SnowflakeTarget(stage_aws_key_id="testing", stage_aws_secret_key="testing")
    old_columns = [c for c in WRAPUP_CODES.table.columns if c.name != "listed"]
    run_query(snowflake, "CREATE TABLE DIM_WRAPUP_CODES (" + ", ".join(
        f"{c.name.upper()} {c.snowflake_type}" for c in old_columns) + ")")  # fmt: skip
    run_query(snowflake, "INSERT INTO DIM_WRAPUP_CODES (WRAPUP_CODE_ID, LOADED_AT, LOAD_RUN_ID) "
                         "VALUES ('old', CURRENT_TIMESTAMP(), 'run-0')")  # fmt: skip
    with genesys_for(emulator).get_client() as client, snowflake.get_connection() as conn:
        load = dimension_loads.load_dimension(conn, target, WRAPUP_CODES, client.iter_wrapup_codes(), "run-1")
    rows = run_query(snowflake, "SELECT WRAPUP_CODE_ID, LISTED FROM DIM_WRAPUP_CODES")
    assert load.rows_replaced == 1 and load.unlisted_added == 1 and len(rows) == load.rows
    assert {r["wrapup_code_id"] for r in rows if r["listed"] is False} == {DEFAULT_WRAPUP_CODE}


def test_a_failed_dimension_load_leaves_the_table_as_it_was(stack: stand_ins.LocalStack, monkeypatch) -> None:
    """An error half-way through the INSERTs rolls back the DELETE too; a bad value fails before any SQL."""
    database = f"OPS_{uuid.uuid4().hex[:8].upper()}"
    snowflake = stand_ins.snowflake_resource(stack.snowflake_connection_args, database, SCHEMA)
    target = SnowflakeTarget(stage_aws_key_id="testing", stage_aws_secret_key="testing")
    users = ContactCentre(7, 0).users

    def table() -> list[dict[str, Any]]:
        with snowflake.get_connection() as conn:
            cursor = conn.cursor(DictCursor)
            cursor.execute("SELECT * FROM DIM_USERS ORDER BY USER_ID")
            return cursor.fetchall()

    with snowflake.get_connection() as conn:
        load = dimension_loads.load_dimension(conn, target, USERS, users + users[:3], "run-1")
    assert (load.rows, load.duplicates_dropped, load.table) == (len(users), 3, f"{database}.{SCHEMA}.DIM_USERS")
    before = table()
    assert len(before) == len(users)

    monkeypatch.setattr(dimension_loads, "INSERT_BATCH_ROWS", 10)
    broken = [dict(u) for u in users]
    broken[15]["version"] = 10**40  # an int Python accepts and NUMBER(38,0) does not: the 2nd INSERT fails
    with snowflake.get_connection() as conn, pytest.raises(dimension_loads.DimensionLoadError, match="failed at INSERT"):
        dimension_loads.load_dimension(conn, target, USERS, broken, "run-2")
    assert table() == before

    broken[15]["version"] = "7"  # a string where the API sends a number
    with snowflake.get_connection() as conn, pytest.raises(DimensionError, match=r"dim_users\.version: '7'"):
        dimension_loads.load_dimension(conn, target, USERS, broken, "run-3")
    without_id = [{k: v for k, v in q.items() if k != "id"} for q in ContactCentre(7, 0).queues[:1]]
    with snowflake.get_connection() as conn, pytest.raises(DimensionError, match="no queue_id"):
        dimension_loads.load_dimension(conn, target, QUEUES, without_id, "run-4")
    assert table() == before
    assert [d.name for d in DIMENSIONS] == ["dim_queues", "dim_wrapup_codes", "dim_users", "dim_divisions"]
