"""The code location's executor (defs/executor.py): steps start from a forkserver that has imported the
code location, not from a new Python each (in the local environment, runs execute in-process unless a
launch chooses `multiprocess`); a launch that chooses `spawn` still gets it; importing the code
location leaves nothing to a forked step that it could not use (no thread, no connection); and a day
runs for real through it (a run worker of its own, `dagster asset materialize`, as in the README),
against the Genesys emulator and the S3/Snowflake stand-ins.

Runs execute in child processes, as launched runs do: multiprocessing keeps one forkserver per process
for the process's whole life, with the environment and modules of its start.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import dagster as dg
import pytest
from dagster._core.system_config.objects import ResolvedRunConfig

from genesys_pipeline.defs.executor import (
    PRELOADED_MODULES,
    executor_for,
    pipeline_executor,
)
from genesys_pipeline.local import stand_ins
from genesys_pipeline.local.emulator import EmulatorServer
from genesys_pipeline.local.resources import LOCAL_DATABASE, LOCAL_SCHEMA
from genesys_pipeline.local.stack import to_environment
from genesys_pipeline.settings import LocalEndpoints
from genesys_pipeline_tests.conftest import PAST_DAY, PRODUCTION_PLACEHOLDERS

REPOSITORY = Path(__file__).resolve().parents[1]
SPAWN = {"execution": {"config": {"multiprocess": {"start_method": {"spawn": {}}}}}}
MULTIPROCESS = {"execution": {"config": {"multiprocess": {}}}}


def _child(code: str, env: dict[str, str] | None = None, timeout: float = 600) -> dict[str, Any]:
    """Run `code` in a new Python in the checkout; the JSON object it prints last."""
    done = subprocess.run([sys.executable, "-W", "ignore", "-c", code], cwd=REPOSITORY, env=env, capture_output=True,
                          text=True, timeout=timeout)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


# ##### WHERE STEPS START


@dg.op
def where_this_step_runs() -> dict[str, Any]:
    parent = os.getppid()
    return {"pid": os.getpid(), "parent": parent, "parent_command": Path(f"/proc/{parent}/cmdline").read_bytes().decode()}


@dg.op
def where_the_next_step_runs(previous: dict[str, Any]) -> dict[str, Any]:
    return where_this_step_runs()


@dg.job(executor_def=executor_for("production"))
def two_steps() -> None:
    where_the_next_step_runs(where_this_step_runs())


_RUN_TWO_STEPS = """
import json, os, sys
import dagster as dg
from genesys_pipeline_tests.test_executor import two_steps
steps = {"run_worker": os.getpid()}
with dg.instance_for_test(temp_dir=sys.argv[1]) as instance:
    for name, run_config in json.loads(sys.argv[2]).items():
        with dg.execute_job(dg.reconstructable(two_steps), instance, run_config=run_config) as result:
            assert result.success, name
            steps[name] = [result.output_for_node(node) for node in ("where_this_step_runs", "where_the_next_step_runs")]
print(json.dumps(steps))
"""


def _execution_config(environment: str, run_config: dict[str, Any]) -> dict[str, Any]:
    job = dg.JobDefinition(graph_def=two_steps.graph, executor_def=executor_for(environment))
    return ResolvedRunConfig.build(job, run_config).execution.execution_engine_config


def test_runs_default_to_a_forkserver_that_preloads_the_code_location_and_locally_to_one_process() -> None:
    """What a run launched without execution config gets (and the launchpad shows); a launch that gives
    its own start method, or chooses the other mode, gets that."""
    forkserver = {"forkserver": {"preload_modules": ["genesys_pipeline.definitions"]}}
    assert PRELOADED_MODULES == ["genesys_pipeline.definitions"]
    assert _execution_config("production", {})["multiprocess"]["start_method"] == forkserver
    limited = _execution_config("production", {"execution": {"config": {"multiprocess": {"max_concurrent": 2}}}})
    assert limited["multiprocess"]["max_concurrent"] == 2 and limited["multiprocess"]["start_method"] == forkserver
    assert _execution_config("production", SPAWN)["multiprocess"]["start_method"] == {"spawn": {}}
    assert set(_execution_config("production", {"execution": {"config": {"in_process": {}}}})) == {"in_process"}

    assert set(_execution_config("local", {})) == {"in_process"}
    assert _execution_config("local", MULTIPROCESS)["multiprocess"]["start_method"] == forkserver
    assert pipeline_executor.config_schema.as_field().default_value == {"in_process": {}}  # the tests' environment


@pytest.mark.slow
def test_steps_of_a_run_are_forked_from_one_forkserver_that_imported_the_code_location(tmp_path: Path) -> None:
    """Each step is a process of its own, forked from the run's forkserver (which preloaded the code
    location), not the run worker's child; with `spawn` chosen at launch, the run worker starts them."""
    runs = {"default": {}, "spawn": SPAWN}
    steps = _child(_RUN_TWO_STEPS.replace("sys.argv[1]", repr(str(tmp_path))).replace("sys.argv[2]", repr(json.dumps(runs))))
    worker = steps["run_worker"]

    forked = steps["default"]
    assert len({step["pid"] for step in forked} | {worker}) == 3  # two processes, neither the run worker
    (forkserver,) = {step["parent"] for step in forked}
    assert forkserver != worker
    command = forked[0]["parent_command"]
    assert "multiprocessing.forkserver" in command and "genesys_pipeline.definitions" in command, command

    spawned = steps["spawn"]
    assert {step["parent"] for step in spawned} == {worker}
    assert all("multiprocessing.forkserver" not in step["parent_command"] for step in spawned)


# ##### WHAT A FORKED STEP INHERITS

_IMPORT_AND_LOOK = """
import json, os, threading
def open_files():
    found = {}
    for fd in os.listdir("/proc/self/fd"):
        try:
            found[fd] = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            pass
    return found
before = open_files()
import genesys_pipeline.definitions
after = open_files()
native = [open(f"/proc/self/task/{task}/comm").read().strip() for task in os.listdir("/proc/self/task")]
print(json.dumps({"threads": [t.name for t in threading.enumerate()], "native_threads": native,
                  "opened": sorted(target for fd, target in after.items() if before.get(fd) != target)}))
"""


@pytest.mark.slow
@pytest.mark.parametrize("environment", ["local", "production"])
def test_importing_the_code_location_starts_no_thread_and_opens_no_connection(environment: str) -> None:
    """The forkserver imports the definitions and forks every step from that; a connection or a thread
    made at import would be shared by the steps or lost in them (fork copies one thread)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GENESYS_", "SNOWFLAKE_"))}
    if environment == "production":
        env.update(PRODUCTION_PLACEHOLDERS)
    seen = _child(_IMPORT_AND_LOOK, env)
    assert seen["threads"] == ["MainThread"]
    # pyarrow's allocator (jemalloc) keeps a background thread of its own, which it stops before a fork
    # and restarts after it; nothing else runs.
    assert len(seen["native_threads"]) - seen["native_threads"].count("jemalloc_bg_thd") == 1, seen["native_threads"]
    assert seen["opened"] == [], seen["opened"]


# ##### A DAY, FOR REAL


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_a_day_materialized_from_the_command_line_with_multiprocess_runs_its_steps_in_processes_of_their_own(
    emulator: EmulatorServer, stack: stand_ins.LocalStack, tmp_path: Path
) -> None:
    """The README's one-day recipe (`dagster asset materialize`) choosing the production default
    (`multiprocess`: steps forked from the forkserver), with the repository's dagster.yaml and the
    local resource set pointed at the emulator and stand-ins."""
    bucket = f"genesys-executor-{uuid.uuid4().hex[:8]}"
    stand_ins.s3_resource(stack.s3_endpoint_url).get_client().create_bucket(Bucket=bucket)
    endpoints = LocalEndpoints(genesys_url=emulator.base_url, working_dir=str(tmp_path / "working"),
                               s3_endpoint_url=stack.s3_endpoint_url, s3_bucket=bucket, s3_file_format="parquet",
                               snowflake_connection_args=stack.snowflake_connection_args)  # fmt: skip
    home = tmp_path / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text((REPOSITORY / "dagster.yaml").read_text())
    env = {**{k: v for k, v in os.environ.items() if not k.startswith(("GENESYS_", "DAGSTER_"))},
           **to_environment(endpoints), "DAGSTER_HOME": str(home)}  # fmt: skip
    command = [str(Path(sys.executable).parent / "dagster"), "asset", "materialize", "-m", "genesys_pipeline.definitions",
               "--select", "group:genesys", "--partition", f"{PAST_DAY}", "--config-json", json.dumps(MULTIPROCESS)]  # fmt: skip
    done = subprocess.run(command, cwd=REPOSITORY, env=env, capture_output=True, text=True, timeout=800)
    assert done.returncode == 0, done.stderr[-3000:]

    with dg.DagsterInstance.from_config(str(home)) as instance:
        (record,) = instance.get_run_records()
        run_id = record.dagster_run.run_id
        assert record.dagster_run.status == dg.DagsterRunStatus.SUCCESS
        events = [e.dagster_event for e in instance.all_logs(run_id) if e.is_dagster_event]
    kinds = dg.DagsterEventType
    worker = {e.pid for e in events if e.event_type == kinds.RUN_START}
    started = {e.step_key: e.pid for e in events if e.event_type == kinds.STEP_START}
    launched = {e.step_key for e in events if e.event_type == kinds.STEP_WORKER_STARTING}
    chain = {"raw_conversations", "flattened_conversations", "s3_conversations", "snowflake_conversations"}
    assert chain <= set(started) and set(started) == launched  # every step launched as a process...
    assert len(set(started.values())) == len(started) and not worker & set(started.values())  # ...its own
    checks = {e.event_specific_data.asset_check_key.name: e.event_specific_data.passed
              for e in events if e.event_type == kinds.ASSET_CHECK_EVALUATION}  # fmt: skip
    assert checks.get("row_counts_match_across_stages") is True, checks

    snowflake = stand_ins.snowflake_resource(stack.snowflake_connection_args, LOCAL_DATABASE, LOCAL_SCHEMA)
    expected = set(emulator.app.conversations_started(PAST_DAY))
    with snowflake.get_connection() as connection:
        rows = connection.cursor().execute("SELECT CONVERSATION_ID FROM CONVERSATIONS WHERE PARTITION_DATE = %s",
                                           (PAST_DAY,)).fetchall()  # fmt: skip
    assert sorted(row[0] for row in rows) == sorted(expected) and expected
