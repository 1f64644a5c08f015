"""The rig of the fault matrix: the pipeline run for real against the emulator and the S3/Snowflake
stand-ins, each behind a `FaultProxy`, and what the pipeline left behind.

- `Rig` holds one module's emulator, proxies, bucket, database, working location and Dagster instance
  (a DAGSTER_HOME with the repository's dagster.yaml, shared by runs in this process and in children).
- `run_day(config)` runs the conversations job for a day from a JSON-able config, here or in a child
  process (`Rig.start_run_process`, which a test can `kill -9`).
- `Rig.snowflake_keys`, `Rig.s3_day`, `Rig.load_history`, ... read what the pipeline left behind, directly
  (not through the proxies). fault_checks.py has what it is compared with.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import uuid
from datetime import date
from pathlib import Path
from typing import Any, Callable

import dagster as dg

from genesys_pipeline.contracts.tables import TABLES
from genesys_pipeline.definitions import build_definitions
from genesys_pipeline.defs.checks import ROW_COUNT_CHECK
from genesys_pipeline.defs.day_exclusivity import fail_abandoned_runs
from genesys_pipeline.defs.jobs import CONVERSATIONS_JOB
from genesys_pipeline.local import stand_ins
from genesys_pipeline.local.emulator import (
    DEMO_CLIENT_ID,
    DEMO_CLIENT_SECRET,
    EmulatorServer,
)
from genesys_pipeline.local.s3_fault_proxy import FaultProxy, Hold, ProxiedRequest
from genesys_pipeline.resources.genesys import GenesysResource
from genesys_pipeline.resources.warehouse import S3Publishing, SnowflakeTarget
from genesys_pipeline.resources.working_storage import WorkingStorage
from genesys_pipeline.steps.publish import read_published_manifest
from genesys_pipeline_tests.conftest import FAST_RETRIES, run_query

REPOSITORY = Path(__file__).resolve().parents[1]
SCHEMA = "GENESYS"
QUIET = {"loggers": {"console": {"config": {"log_level": "CRITICAL"}}}}  # failures are read from the result
POOL = "genesys_api"
# A child process that runs one day and prints the outcome as its last line.
RUN_SCRIPT = (
    "import json, sys\n"
    "from genesys_pipeline_tests.fault_rig import run_day\n"
    "print(json.dumps(run_day(json.loads(sys.argv[1]))), flush=True)\n"
)


# ##### RUNNING A DAY (here or in a child process)


def resources_from(config: dict[str, Any]) -> dict[str, Any]:
    """The job's resources from a run config of `Rig.run_config` (plain values: it crosses processes)."""
    genesys = dict(api_base_url=config["genesys_url"], login_base_url=config["genesys_url"],
                   client_id=DEMO_CLIENT_ID, client_secret=DEMO_CLIENT_SECRET, **FAST_RETRIES)  # fmt: skip
    return {
        "genesys": GenesysResource(**{**genesys, **config.get("genesys", {})}),
        "working_storage": WorkingStorage(root=config["root"]),
        "s3": stand_ins.s3_resource(config["s3_url"]),
        "s3_publishing": S3Publishing(bucket=config["bucket"]),
        "snowflake": stand_ins.snowflake_resource(config["snowflake_args"], config["database"], SCHEMA),
        "snowflake_target": SnowflakeTarget(
            stage_aws_key_id="testing", stage_aws_secret_key="testing", staging_tables="transient"
        ),
    }


def execute(config: dict[str, Any], instance: dg.DagsterInstance, day: str) -> dg.ExecuteInProcessResult:
    """The conversations job for one day, in this process, in `instance`. First what the pipeline's
    executor does when a launched run starts (defs/executor.py): runs whose worker is gone are marked
    failed and their pool slots freed. execute_in_process never creates the job's executor."""
    fail_abandoned_runs(instance, "a run starting on this machine")
    job = build_definitions(resources_from(config), executor=dg.in_process_executor).resolve_job_def(CONVERSATIONS_JOB)
    return job.execute_in_process(partition_key=day, instance=instance, run_config=QUIET, raise_on_error=False)


def failure_message(result: dg.ExecuteInProcessResult) -> str:
    """The first failed step's error and its causes, or '' if no step failed."""
    for event in result.all_events:
        if event.event_type_value == "STEP_FAILURE":
            error, parts = event.step_failure_data.error, []
            while error is not None:
                parts.append(f"{error.cls_name}: {error.message.strip()}")
                error = error.cause
            return " <- ".join(parts)
    return ""


def run_day(config: dict[str, Any]) -> dict[str, Any]:
    """What a child process runs: the day of `config`, in the instance at config['home']."""
    with dg.DagsterInstance.from_config(config["home"]) as instance:
        result = execute(config, instance, config["day"])
        return {"success": result.success, "run_id": result.run_id, "failure": failure_message(result)}


# ##### THE RIG


def snowflake_statement(request: ProxiedRequest) -> str:
    """The SQL of a Snowflake connector request ('' for logins and the like)."""
    if "/queries/v1/query-request" not in request.path:
        return ""
    try:
        return " ".join(str(json.loads(request.text()).get("sqlText", "")).split())
    except ValueError:
        return ""


def statement_starts(prefix: str) -> Callable[[ProxiedRequest], bool]:
    return lambda request: snowflake_statement(request).upper().startswith(prefix)


@dataclasses.dataclass
class Rig:
    stack: stand_ins.LocalStack
    emulator: EmulatorServer
    genesys_proxy: FaultProxy
    s3_proxy: FaultProxy
    snowflake_proxy: FaultProxy
    root: Path  # the working location
    home: Path  # DAGSTER_HOME
    bucket: str
    database: str
    instance: dg.DagsterInstance

    @classmethod
    def start(cls, stack: stand_ins.LocalStack, emulator: EmulatorServer, tmp: Path) -> Rig:
        token = uuid.uuid4().hex[:8]
        bucket, database = f"genesys-faults-{token}", f"FAULTS_{token.upper()}"
        stand_ins.s3_resource(stack.s3_endpoint_url).get_client().create_bucket(Bucket=bucket)
        home = tmp / "dagster_home"
        home.mkdir(parents=True)
        shutil.copy(REPOSITORY / "dagster.yaml", home / "dagster.yaml")
        snowflake_url = f"http://{stack.snowflake_connection_args['host']}:{stack.snowflake_connection_args['port']}"
        proxies = [FaultProxy(url, seed=seed).start() for seed, url in
                   enumerate((emulator.base_url, stack.s3_endpoint_url, snowflake_url))]  # fmt: skip
        instance = dg.DagsterInstance.from_config(str(home))
        return cls(stack, emulator, *proxies, tmp / "working", home, bucket, database, instance)

    def stop(self) -> None:
        for proxy in (self.genesys_proxy, self.s3_proxy, self.snowflake_proxy):
            proxy.stop()
        self.instance.dispose()

    def run_config(self, day: str = "", **genesys: Any) -> dict[str, Any]:
        """Where a run finds everything: through the proxies. `genesys`: GenesysResource fields."""
        return {
            "genesys_url": self.genesys_proxy.base_url, "s3_url": self.s3_proxy.base_url,
            "snowflake_args": dict(self.stack.snowflake_connection_args, port=self.snowflake_proxy.port),
            "root": str(self.root), "bucket": self.bucket, "database": self.database, "home": str(self.home),
            "day": day, "genesys": genesys,
        }  # fmt: skip

    def run(self, day: str, timeout: float = 180) -> dg.ExecuteInProcessResult:  # generous: a loaded 2-core machine took over 60 s for a day
        """The job for the day in this process; an AssertionError saying what it waits for if it has not
        finished after `timeout` s (the runs it waits for are then marked failed and their pool slots
        freed, so that it ends and does not hold up the next test)."""
        outcome: dict[str, Any] = {}

        def target() -> None:
            try:
                outcome["result"] = execute(self.run_config(), self.instance, day)
            except BaseException as error:
                outcome["error"] = error

        thread = threading.Thread(target=target, daemon=True)
        thread.start()
        thread.join(timeout)
        if thread.is_alive():
            stuck = self.waiting_for(day)
            thread.join(120)
            raise AssertionError(f"the run of {day} did not finish within {timeout:.0f} s: {stuck}")
        if "error" in outcome:
            raise outcome["error"]
        return outcome["result"]

    def waiting_for(self, day: str) -> str:
        """What the newest run of the day waits for, then the other runs of the day in progress failed
        and their pool slots freed."""
        pool = self.instance.event_log_storage.get_concurrency_info(POOL)
        runs = self.instance.get_runs(filters=dg.RunsFilter(tags={"dagster/partition": day})) or [None]
        in_progress = (dg.DagsterRunStatus.STARTING, dg.DagsterRunStatus.STARTED)
        newest, others = runs[0], [r for r in runs[1:] if r is not None and r.status in in_progress]
        said = (f"pool {POOL}: {pool.slot_count} slot(s) claimed by "
                f"{[(c.run_id[:8], c.step_key) for c in pool.claimed_slots]}, steps waiting "
                f"{[(p.run_id[:8], p.step_key) for p in pool.pending_steps if p.assigned_timestamp is None]}; "
                f"this run {newest.run_id[:8] if newest else '?'}; other runs of {day} in progress {[(r.run_id[:8], r.status.value) for r in others]}")
        for run in others:
            self.instance.report_run_failed(run, "marked failed by the fault matrix after a stuck rerun")
            self.instance.event_log_storage.free_concurrency_slots_for_run(run.run_id)
        return said

    def start_run_process(self, day: str, log_name: str, **genesys: Any) -> subprocess.Popen[str]:
        """The day's run in a child process (stdout/stderr to files under the working location's parent)."""
        logs = self.root.parent / "logs"
        logs.mkdir(exist_ok=True)
        command = [sys.executable, "-W", "ignore", "-c", RUN_SCRIPT, json.dumps(self.run_config(day, **genesys))]
        # A session of its own: `kill` ends the worker and what it started (Dagster's compute-log tails).
        return subprocess.Popen(command, cwd=REPOSITORY, text=True, stdout=open(logs / f"{log_name}.out", "w"),
                                stderr=open(logs / f"{log_name}.err", "w"), start_new_session=True)  # fmt: skip

    def process_outcome(self, log_name: str) -> tuple[dict[str, Any], str]:
        """What a finished child process printed last (its outcome), and its stderr's end."""
        logs = self.root.parent / "logs"
        lines = (logs / f"{log_name}.out").read_text().strip().splitlines()
        outcome = json.loads(lines[-1]) if lines and lines[-1].startswith("{") else {}
        return outcome, (logs / f"{log_name}.err").read_text()[-2000:]

    def release_holds(self) -> None:
        for proxy in (self.genesys_proxy, self.s3_proxy, self.snowflake_proxy):
            proxy.release_all()

    # ----- what the pipeline left behind (read directly, not through the proxies)

    @property
    def snowflake(self) -> Any:
        return stand_ins.snowflake_resource(self.stack.snowflake_connection_args, self.database, SCHEMA)

    @property
    def publishing(self) -> S3Publishing:
        return S3Publishing(bucket=self.bucket)

    def s3_client(self) -> Any:
        return stand_ins.s3_resource(self.stack.s3_endpoint_url).get_client()

    def query(self, sql: str, params: Any = None) -> list[dict[str, Any]]:
        return run_query(self.snowflake, sql, params)

    def snowflake_keys(self, day: date) -> dict[str, list[tuple[Any, ...]]]:
        """Every table's keys for the day, as rows (a duplicate shows as a repeated tuple)."""
        keys = {}
        for table in TABLES:
            rows = self.query(f"SELECT {', '.join(table.key)} FROM {table.name.upper()} WHERE PARTITION_DATE = %s", (day,))
            keys[table.name] = [tuple(row[column] for column in table.key) for row in rows]
        return keys

    def duplicate_keys(self) -> dict[str, int]:
        """Keys held more than once, per table, over every day (contracts/tables.py's keys)."""
        found = {}
        for table in TABLES:
            columns = ", ".join(table.key)
            (row,) = self.query(f"SELECT COUNT(*) AS N FROM (SELECT {columns} FROM {table.name.upper()} "
                                f"GROUP BY {columns} HAVING COUNT(*) > 1)")  # fmt: skip
            if row["n"]:
                found[table.name] = row["n"]
        return found

    def run_ids(self, day: date) -> dict[str, set[str]]:
        """The extraction_run_id values of the day, per table."""
        return {table.name: {r["r"] for r in self.query(
            f"SELECT DISTINCT EXTRACTION_RUN_ID AS R FROM {table.name.upper()} WHERE PARTITION_DATE = %s", (day,))}
            for table in TABLES}  # fmt: skip

    def s3_day(self, day: str) -> tuple[Any, dict[str, dict[str, str]]]:
        """The day's published manifest (None if there is none) and the objects in its table folders
        (key -> ETag, per table)."""
        client = self.s3_client()
        try:
            manifest = read_published_manifest(client, self.publishing, day)
        except Exception:
            manifest = None
        objects = {}
        for table in TABLES:
            listed = client.list_objects_v2(Bucket=self.bucket, Prefix=self.publishing.day_prefix(table.name, day))
            objects[table.name] = {o["Key"]: o["ETag"].strip('"') for o in listed.get("Contents", [])}
        return manifest, objects

    def load_history(self, day: date) -> dict[str, dict[str, Any]]:
        """The latest load-history row of each table for the day."""
        rows = self.query("SELECT * FROM GENESYS_LOAD_HISTORY WHERE PARTITION_DATE = %s "
                          "ORDER BY LOADED_AT, LOAD_ID", (day,))  # fmt: skip
        return {str(row["table_name"]): row for row in rows}

    def partial_files(self) -> list[str]:
        return sorted(str(p.relative_to(self.root)) for p in self.root.rglob(".partial-*"))

    def staging_tables(self) -> list[str]:
        rows = self.query("SELECT TABLE_NAME FROM INFORMATION_SCHEMA.TABLES WHERE TABLE_SCHEMA = %s", (SCHEMA,))
        return sorted(str(r["table_name"]) for r in rows if "_LOADING_" in str(r["table_name"]).upper())

    def runs_in_progress(self, day: str) -> list[str]:
        runs = self.instance.get_runs(filters=dg.RunsFilter(
            statuses=[dg.DagsterRunStatus.STARTING, dg.DagsterRunStatus.STARTED], tags={"dagster/partition": day}))
        return [run.run_id for run in runs]


def check_passed(result: dg.ExecuteInProcessResult) -> bool:
    evaluations = [e for e in result.get_asset_check_evaluations() if e.check_name == ROW_COUNT_CHECK]
    return len(evaluations) == 1 and evaluations[0].passed


def on_request(hold: Hold, action: Callable[[], None], timeout: float = 180) -> threading.Thread:
    """When the held request arrives: run `action`, then let the request go on."""

    def react() -> None:
        if hold.wait(timeout):
            try:
                action()
            finally:
                hold.release()

    thread = threading.Thread(target=react, daemon=True)
    thread.start()
    return thread


def wait_for(hold: Hold, process: subprocess.Popen[str], timeout: float = 180) -> bool:
    """Wait until the held request arrives (True) or the process ends first (False)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if hold.wait(0.05):
            return True
        if process.poll() is not None:
            return hold.reached.is_set()
    return False


def kill(process: subprocess.Popen[str]) -> None:
    """kill -9 of a run's process and of everything it started (its session)."""
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:  # it had ended already (the test says whether that was expected)
        pass
    process.wait(30)
