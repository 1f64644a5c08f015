"""The scale-out instance, run for real: deploy/dagster-postgres.yaml against a PostgreSQL server.

The topology of a deployment (docs/scaling.md, the Dockerfile), on loopback: a PostgreSQL server
(`local/postgres.py`, Debian's binaries), a code server, and the webserver and the daemon as processes of
their own, all with a DAGSTER_HOME that holds the shipped instance file; the pipeline's local resources
point the runs at the Genesys emulator and the S3/Snowflake stand-ins, as in `make dev`.

A backfill of three days and a tick of the daily schedule (yesterday and the days it reloads) are
launched at once. Every run succeeds; no two steps of the `genesys_api` pool ran at the same time
although the runs did; and after the webserver and the daemon are stopped and started again, the
history they show (runs, statuses, the backfill, the tick, the materializations) is the same.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from contextlib import ExitStack
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import IO, Any, Iterator

import pytest
import yaml

from genesys_pipeline.local import processes
from genesys_pipeline.local.postgres import LocalPostgres
from genesys_pipeline.local.stack import (
    create_bucket,
    emulator_server,
    endpoints_of,
    spawn_stand_ins,
    stop_stand_ins,
    to_environment,
)

ROOT = Path(__file__).resolve().parents[1]
INSTANCE_FILE = ROOT / "deploy" / "dagster-postgres.yaml"
WORKSPACE_FILE = ROOT / "deploy" / "workspace-grpc.yaml"  # what the image's webserver and daemon read
BIN = Path(sys.executable).parent
HOST = "127.0.0.1"
LOCATION, REPOSITORY = "genesys_pipeline", "__repository__"
SCHEDULE = "genesys_conversations_daily"
POOL = "genesys_api"

BACKFILL_DAYS = ["2024-05-06", "2024-05-07", "2024-05-08"]
DAILY_VOLUME = 200
BACKFILL_ASSETS = ["raw_conversations", "flattened_conversations", "s3_conversations", "snowflake_conversations"]


def test_the_instance_file_has_the_limits_of_dagster_yaml() -> None:
    """deploy/dagster-postgres.yaml is dagster.yaml (the queued coordinator and its 1 s dequeue included)
    plus Postgres storage, and its connection settings are all variables (no password in the file)."""
    shipped = yaml.safe_load(INSTANCE_FILE.read_text())
    repository = yaml.safe_load((ROOT / "dagster.yaml").read_text())
    assert {key: shipped.get(key) for key in repository} == repository
    assert set(shipped) - set(repository) == {"storage"}
    assert shipped["run_coordinator"]["class"] == "QueuedRunCoordinator"
    assert shipped["run_coordinator"]["config"] == {"dequeue_interval_seconds": 1}
    connection = shipped["storage"]["postgres"]["postgres_db"]
    secrets = {key: connection.pop(key) for key in ("hostname", "port", "db_name", "username", "password")}
    assert all(set(value) == {"env"} and value["env"].startswith("DAGSTER_PG_") for value in secrets.values())
    # psycopg2 is the driver dagster-postgres brings; SQLAlchemy >= 2.1 would default to psycopg 3.
    assert connection == {"scheme": "postgresql+psycopg2"}


class Deployment:
    """The webserver and the daemon against one DAGSTER_HOME, restartable; the code server stays up."""

    def __init__(
        self, home: Path, environment: dict[str, str], log: IO[bytes], postgres: LocalPostgres, schedule_hour: int
    ) -> None:
        self.home, self.environment, self.log = home, environment, log
        self.postgres, self.schedule_hour = postgres, schedule_hour
        self.url = f"http://{HOST}:{processes.free_port(HOST)}"
        self.webserver: subprocess.Popen[bytes] | None = None
        self.daemon: subprocess.Popen[bytes] | None = None

    def _start(self, command: list[str]) -> subprocess.Popen[bytes]:
        return processes.start_session(command, cwd=self.home, env=self.environment, stdout=self.log,
                                       stderr=subprocess.STDOUT)  # fmt: skip

    def start_webserver(self) -> None:
        port = self.url.rsplit(":", 1)[1]
        self.webserver = self._start([str(BIN / "dagster-webserver"), "-h", HOST, "-p", port, "-w", str(WORKSPACE_FILE)])
        _wait(lambda: _location_loaded(self.url), 180, "the webserver to load the code location")

    def start_daemon(self) -> None:
        self.daemon = self._start([str(BIN / "dagster-daemon"), "run", "-w", str(WORKSPACE_FILE)])
        assert self.webserver is not None
        processes.wait_until_ready(self.url, self.webserver, 180, threading.Event(), f" (output in {self.log.name})")

    def stop(self) -> None:
        for name in ("daemon", "webserver"):
            process = getattr(self, name)
            if process is not None:
                processes.stop_session(process, name, interrupt_signal=signal.SIGINT, interrupt_timeout=30)
                setattr(self, name, None)

    def query(self, query: str, **variables: Any) -> dict[str, Any]:
        return processes.graphql(self.url, query, variables)


def _wait(condition: Any, timeout: float, what: Any, interval: float = 1.0) -> Any:
    """`condition()` once it is true; TimeoutError after `timeout` s naming `what` (or what it returns)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = condition()
        if result:
            return result
        time.sleep(interval)
    raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what() if callable(what) else what}")


def _location_loaded(url: str) -> bool:
    try:
        data = processes.graphql(url, "{ workspaceOrError { ... on Workspace { locationEntries { loadStatus "
                                 "locationOrLoadError { __typename } } } } }", timeout=10)  # fmt: skip
    except (OSError, ValueError):
        return False
    entries = data["workspaceOrError"].get("locationEntries") or []
    return bool(entries) and all(e["loadStatus"] == "LOADED" and e["locationOrLoadError"]["__typename"] ==
                                 "RepositoryLocation" for e in entries)  # fmt: skip


# ##### THE DEPLOYMENT


# The backfill is one run (the default: up to a week per run); the tick reloads no earlier day (no lookback,
# no late reload), for the test's time (each step of a run is a process of its own). That is still two
# runs at once wanting the pool's one slot.
PIPELINE_SETTINGS = {
    "GENESYS_BACKFILL_DAYS_PER_RUN": "7",
    "GENESYS_LOOKBACK_DAYS": "0",
    "GENESYS_LATE_RELOAD_DAYS_BACK": "0",
    "GENESYS_PARTITION_TIMEZONE": "UTC",
}


def schedule_hour(now: datetime) -> int:
    """An hour for the daily schedule (UTC) whose latest tick is 1-2 h ago, or yesterday at noon before
    08:00: the tick's day is then complete in the emulator (whose data lags real time by 6 h), and the
    next tick is hours away, so the daemon finds exactly one tick due."""
    return now.hour - 1 if now.hour >= 8 else 12


def latest_tick(now: datetime, hour: int) -> datetime:
    today = now.replace(hour=hour, minute=0, second=0, microsecond=0)
    return today if today <= now else today - timedelta(days=1)


@pytest.fixture
def deployment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Deployment]:
    """PostgreSQL, the emulator, the stand-ins and the code server, running; the webserver and the
    daemon are the test's to start. This process's environment also points at the instance."""
    home = tmp_path / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text(INSTANCE_FILE.read_text())
    with ExitStack() as stack:
        log = stack.enter_context(open(tmp_path / "dagster.log", "ab"))  # noqa: SIM115
        postgres = stack.enter_context(LocalPostgres(HOST))
        emulator = emulator_server(DAILY_VOLUME, HOST).start()  # the real clock, as the daemon's
        stack.callback(emulator.stop)
        stand_ins = spawn_stand_ins(HOST, tmp_path / "snowflake", stderr=log, cwd=ROOT)
        stack.callback(stop_stand_ins, stand_ins)
        endpoints = endpoints_of(emulator, stand_ins, str(tmp_path / "working"))
        create_bucket(endpoints)

        code_server_port = processes.free_port(HOST)
        instance_environment = {"DAGSTER_HOME": str(home), **postgres.environment()}
        hour = schedule_hour(datetime.now(timezone.utc))
        environment = {
            **{k: v for k, v in os.environ.items() if not k.startswith(("GENESYS_", "DAGSTER_"))},
            **instance_environment,
            **to_environment(endpoints),
            **PIPELINE_SETTINGS,
            "GENESYS_SCHEDULE_HOUR": str(hour),
            "DAGSTER_CODE_SERVER_HOST": HOST,
            "DAGSTER_CODE_SERVER_PORT": str(code_server_port),
        }
        for name, value in instance_environment.items():
            monkeypatch.setenv(name, value)
        # The image's command (Dockerfile); it launches the runs, which inherit its environment.
        code_server = processes.start_session(
            [str(BIN / "dagster"), "code-server", "start", "-h", HOST, "-p", str(code_server_port),
             "-m", "genesys_pipeline.definitions", "--location-name", LOCATION],
            cwd=ROOT, env=environment, stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        stack.callback(processes.stop_session, code_server, "code server")
        deployment = Deployment(home, environment, log, postgres, hour)
        stack.callback(deployment.stop)
        yield deployment


SCHEDULE_SELECTOR = {"repositoryLocationName": LOCATION, "repositoryName": REPOSITORY, "scheduleName": SCHEDULE}


def turn_on_schedule_as_if_since_yesterday(deployment: Deployment, instance: Any) -> datetime:
    """Turn the daily schedule on through the UI's API, then date its start back to just before its
    latest tick, as if it had been on for a day: the daemon then evaluates that tick when it starts."""
    from dagster._core.scheduler.instigation import (
        InstigatorType,
        ScheduleInstigatorData,
    )

    started = deployment.query("mutation($s: ScheduleSelector!) { startSchedule(scheduleSelector: $s) { "
                               "... on ScheduleStateResult { scheduleState { status } } } }", s=SCHEDULE_SELECTOR)  # fmt: skip
    assert started["startSchedule"]["scheduleState"]["status"] == "RUNNING", started
    tick = latest_tick(datetime.now(timezone.utc), deployment.schedule_hour)
    (state,) = [s for s in instance.all_instigator_state(instigator_type=InstigatorType.SCHEDULE) if s.name == SCHEDULE]
    since = (tick - timedelta(minutes=1)).timestamp()
    instance.update_instigator_state(state.with_data(ScheduleInstigatorData(state.instigator_data.cron_schedule, since)))
    return tick


def launch_backfill(deployment: Deployment) -> str:
    """What the UI's "Materialize" of the chain over a range of days sends."""
    params = {"partitionNames": BACKFILL_DAYS, "assetSelection": [{"path": [name]} for name in BACKFILL_ASSETS],
              "fromFailure": False}  # fmt: skip
    launched = deployment.query("mutation($p: LaunchBackfillParams!) { launchPartitionBackfill(backfillParams: $p) { "
                                "__typename ... on LaunchBackfillSuccess { backfillId } ... on PythonError { message } } }",
                                p=params)["launchPartitionBackfill"]  # fmt: skip
    assert launched["__typename"] == "LaunchBackfillSuccess", launched
    return launched["backfillId"]


# What the webserver shows of the history; compared before and after the restart.
HISTORY_QUERY = """query($backfill: String!, $schedule: ScheduleSelector!) {
  runsOrError { ... on Runs { results { runId status tags { key value } } } }
  partitionBackfillOrError(backfillId: $backfill) { ... on PartitionBackfill { status runs { runId } } }
  scheduleOrError(scheduleSelector: $schedule) { ... on Schedule { scheduleState { status
      ticks(limit: 10) { status runIds timestamp } } } }
  assetNodes { assetKey { path } pools
      assetMaterializations(limit: 100) { partition runOrError { ... on Run { runId } } } }
}"""
RUN_TAGS = ("dagster/partition", "dagster/asset_partition_range", "dagster/backfill", "dagster/schedule_name")


def history(deployment: Deployment, backfill_id: str) -> dict[str, Any]:
    data = deployment.query(HISTORY_QUERY, backfill=backfill_id, schedule=SCHEDULE_SELECTOR)
    runs = sorted(
        (run["runId"], run["status"], sorted((t["key"], t["value"]) for t in run["tags"] if t["key"].startswith(RUN_TAGS)))
        for run in data["runsOrError"]["results"]
    )  # fmt: skip
    backfill = data["partitionBackfillOrError"]
    schedule = data["scheduleOrError"]["scheduleState"]
    return {
        "runs": runs,
        "backfill": (backfill["status"], sorted(run["runId"] for run in backfill["runs"])),
        "schedule": (schedule["status"], sorted((t["timestamp"], t["status"], sorted(t["runIds"])) for t in schedule["ticks"])),
        "materialized": sorted((".".join(node["assetKey"]["path"]), m["partition"], m["runOrError"]["runId"])
                               for node in data["assetNodes"] for m in node["assetMaterializations"]),
        "pool_steps": sorted(".".join(node["assetKey"]["path"]) for node in data["assetNodes"] if POOL in node["pools"]),
    }  # fmt: skip


def finished(deployment: Deployment, backfill_id: str, expected_runs: int) -> dict[str, Any] | None:
    """The history once every expected run has ended and the backfill has too; None until then."""
    now = history(deployment, backfill_id)
    statuses = [status for _, status, _ in now["runs"]]
    if len(statuses) >= expected_runs and set(statuses) <= TERMINAL and now["backfill"][0] not in IN_PROGRESS:
        return now
    return None


TERMINAL = {"SUCCESS", "FAILURE", "CANCELED"}
IN_PROGRESS = {"REQUESTED", "CANCELING", "FAILING"}


# ##### THE TEST


@pytest.mark.slow
@pytest.mark.timeout(900)  # about 2 min on 2 idle cores; a busy machine stretches every process start
def test_a_backfill_and_a_schedule_tick_share_the_pool_and_outlive_a_restart(deployment: Deployment) -> None:
    import dagster as dg

    from genesys_pipeline.defs.schedules import partition_keys_for_tick

    began = time.monotonic()
    instance = dg.DagsterInstance.from_config(str(deployment.home))
    try:
        deployment.start_webserver()
        tick = turn_on_schedule_as_if_since_yesterday(deployment, instance)
        backfill_id = launch_backfill(deployment)
        deployment.start_daemon()  # the backfill and the due tick are now both its to run

        backfill_runs = -(-len(BACKFILL_DAYS) // int(PIPELINE_SETTINGS["GENESYS_BACKFILL_DAYS_PER_RUN"]))
        schedule_days = partition_keys_for_tick(tick, int(PIPELINE_SETTINGS["GENESYS_LOOKBACK_DAYS"]))
        expected_runs = backfill_runs + len(schedule_days)
        before = _wait(lambda: finished(deployment, backfill_id, expected_runs), 600,
                       lambda: f"every run to end: {history(deployment, backfill_id)['runs']}", 2)  # fmt: skip
        runs_done = time.monotonic()

        # Every run succeeded: the backfill's and the tick's, each day materialized once.
        assert [status for _, status, _ in before["runs"]] == ["SUCCESS"] * expected_runs, before["runs"]
        assert before["backfill"][0] == "COMPLETED_SUCCESS" and len(before["backfill"][1]) == backfill_runs
        (tick_record,) = before["schedule"][1]
        assert tick_record[:2] == (tick.timestamp(), "SUCCESS") and len(tick_record[2]) == len(schedule_days)
        assert sorted((asset, day) for asset, day, _ in before["materialized"]) == sorted(
            (asset, day) for asset in BACKFILL_ASSETS for day in BACKFILL_DAYS + schedule_days
        )

        # The pool held across runs. Its steps, from the event log in Postgres, never overlapped in time,
        # although the runs did, and a step did wait for the slot (else the check proves nothing).
        # (flattened_conversations reads the names the extraction saved: no API, no pool)
        assert "raw_conversations" in before["pool_steps"] and "flattened_conversations" not in before["pool_steps"]
        run_ids = [run_id for run_id, _, _ in before["runs"]]
        intervals = sorted(step_intervals(instance, run_ids, set(before["pool_steps"])))
        assert len(intervals) == expected_runs
        assert [(a, b) for a, b in zip(intervals, intervals[1:]) if b[0] < a[1]] == []
        records = instance.get_run_records(dg.RunsFilter(run_ids=run_ids))
        runs_at_once = most_at_once([(record.start_time, record.end_time) for record in records])
        assert runs_at_once >= 2
        waits = [entry for run_id in run_ids for entry in instance.all_logs(run_id, of_type=dg.DagsterEventType.ENGINE_EVENT)
                 if f"pool {POOL}" in (entry.message or "")]  # fmt: skip
        assert waits, "no step waited for the genesys_api pool"

        # It is all in Postgres, read there directly; the instance wrote no SQLite database.
        assert deployment.postgres.query("select count(*) from runs") == str(expected_runs)
        assert [path.name for path in deployment.home.rglob("*.db")] == []

        deployment.stop()
        stopped = time.monotonic()
        deployment.start_webserver()
        deployment.start_daemon()
        after = history(deployment, backfill_id)
        assert after == before
        assert after["schedule"][0] == "RUNNING"
        print(f"\n{expected_runs} runs ended {runs_done - began:.0f} s after the webserver started; pool steps "
              f"{len(intervals)}, none at once; runs at once {runs_at_once}; steps that waited for the pool "
              f"{len(waits)}; restart {time.monotonic() - stopped:.0f} s")  # fmt: skip
    finally:
        instance.dispose()


def step_intervals(instance: Any, run_ids: list[str], steps: set[str]) -> Iterator[tuple[float, float, str, str]]:
    """(start, end, run id, step key) of every step in `steps` of those runs, from their event logs."""
    import dagster as dg

    kinds = {dg.DagsterEventType.STEP_START, dg.DagsterEventType.STEP_SUCCESS, dg.DagsterEventType.STEP_FAILURE}
    for run_id in run_ids:
        started: dict[str, float] = {}
        for entry in instance.all_logs(run_id, of_type=kinds):
            if entry.step_key not in steps:
                continue
            if entry.dagster_event.event_type == dg.DagsterEventType.STEP_START:
                started[entry.step_key] = entry.timestamp
            else:
                yield started.pop(entry.step_key), entry.timestamp, run_id, entry.step_key
        assert started == {}, f"run {run_id}: steps that never ended: {sorted(started)}"


def most_at_once(spans: list[tuple[float, float]]) -> int:
    """The most of these (start, end) spans open at one moment (an end before a start at the same time)."""
    edges = sorted([(start, 1) for start, _ in spans] + [(end, -1) for _, end in spans])
    most = current = 0
    for _, change in edges:
        current += change
        most = max(most, current)
    return most
