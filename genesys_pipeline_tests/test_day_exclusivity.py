"""Runs that touch the same day take turns; runs of other days do not wait; a run whose worker was
killed stops blocking. Real runs of the whole chain through one on-disk Dagster instance configured
from the repository's dagster.yaml (the `genesys_api` pool included), against the Genesys emulator,
moto's S3 server and the fakesnow Snowflake server over HTTP."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from datetime import date, datetime, timezone
from pathlib import Path
from typing import Any

import dagster as dg
import pytest
import yaml

from genesys_pipeline.defs import day_exclusivity
from genesys_pipeline.defs.checks import API_COUNT_CHECK, ROW_COUNT_CHECK
from genesys_pipeline.defs.jobs import CONVERSATIONS_JOB
from genesys_pipeline.defs.partitions import build_retry_policy
from genesys_pipeline.defs.raw_conversations import raw_conversations
from genesys_pipeline.resources.working_storage import WorkingStorage
from genesys_pipeline.steps.day_ranges import (
    DayRange,
    RunInLine,
    WorkerProcess,
    is_provably_gone,
    whose_turn,
    worker_process,
)
from genesys_pipeline_tests.conftest import genesys_for
from genesys_pipeline_tests.test_operations import (  # noqa: F401  lab: the fixture of a lab with stand-ins
    Lab,
    lab,
    repository_instance_config,
)

REPOSITORY = Path(__file__).resolve().parents[1]
NOW = datetime(2024, 5, 10, 12, tzinfo=timezone.utc)
RANGE_TAGS = {"dagster/asset_partition_range_start": "2024-05-05", "dagster/asset_partition_range_end": "2024-05-07"}
WAITING = "Waiting for run"


# ##### THE ORDER AND THE LIVENESS RULES


def _day_range(first: str, last: str | None = None) -> DayRange:
    return DayRange(date.fromisoformat(first), date.fromisoformat(last or first))


def test_ranges_overlap_when_they_share_a_day() -> None:
    week = _day_range("2024-05-01", "2024-05-07")
    assert week.overlaps(_day_range("2024-05-07")) and week.overlaps(_day_range("2024-04-30", "2024-05-01"))
    assert not week.overlaps(_day_range("2024-05-08")) and not week.overlaps(_day_range("2024-04-20", "2024-04-30"))
    assert str(week) == "2024-05-01..2024-05-07" and str(_day_range("2024-05-08")) == "2024-05-08"
    with pytest.raises(ValueError, match="at least one day"):
        DayRange.of_keys([])


def test_of_two_overlapping_runs_exactly_the_later_one_waits_whichever_asks() -> None:
    earlier = RunInLine("b-run", _day_range("2024-05-05", "2024-05-07"), 100.0)
    later = RunInLine("a-run", _day_range("2024-05-07"), 100.5)
    same_time = RunInLine("c-run", _day_range("2024-05-06"), 100.0)
    other_day = RunInLine("d-run", _day_range("2024-05-09"), 50.0)
    not_started = RunInLine("e-run", _day_range("2024-05-07"), None)
    assert whose_turn(later, [earlier, other_day, not_started]).ahead == (earlier,)
    assert whose_turn(earlier, [later, other_day, not_started]).ahead == ()
    assert whose_turn(earlier, [later, not_started]).unplaced == (not_started,)
    # The same timestamp: the run id decides, the same way from both sides.
    assert whose_turn(same_time, [earlier]).ahead == (earlier,) and whose_turn(earlier, [same_time]).ahead == ()
    assert whose_turn(other_day, [earlier, later]).ahead == ()


def test_only_a_process_provably_gone_from_this_machine_counts_as_gone() -> None:
    assert not is_provably_gone(worker_process(os.getpid()))
    finished = subprocess.Popen([sys.executable, "-c", "pass"])
    gone = worker_process(finished.pid)  # recorded while it runs
    finished.wait()
    assert is_provably_gone(gone)
    assert not is_provably_gone(WorkerProcess("another-host", finished.pid, gone.boot_id, gone.pid_namespace, 1))
    # A pid reused by another process (other start time) is not the recorded worker.
    mine = worker_process(os.getpid())
    assert is_provably_gone(WorkerProcess(mine.host, mine.pid, mine.boot_id, mine.pid_namespace, (mine.started_ticks or 0) + 1))


# ##### REAL RUNS


@pytest.fixture
def instance_dir(tmp_path: Path) -> Path:
    """A DAGSTER_HOME with the repository's dagster.yaml (pools, run limits, run retries and monitoring)."""
    home = tmp_path / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text(yaml.safe_dump(repository_instance_config()), encoding="utf-8")
    return home


@pytest.fixture
def quick_turns(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(day_exclusivity, "FIRST_CHECK_AFTER_SECONDS", 0.5)
    monkeypatch.setattr(day_exclusivity, "CHECK_EVERY_SECONDS_AT_MOST", 1.0)


@pytest.fixture
def env(lab) -> Lab:  # noqa: F811
    return lab(now=NOW, daily_volume=60)


def _run(job: dg.JobDefinition, instance: dg.DagsterInstance, tags: dict[str, str], results: dict[str, Any],
         name: str, partition_key: str | None = None) -> None:  # fmt: skip
    results[name] = job.execute_in_process(instance=instance, partition_key=partition_key, tags=tags, raise_on_error=False)


def _run_at_once(job: dg.JobDefinition, instance: dg.DagsterInstance, day: str) -> dict[str, Any]:
    """The range 2024-05-05..07 (tagged as a backfill's ranged run is) and a run of `day`, started
    together in two threads; their results by name ("range", "day")."""
    results: dict[str, Any] = {}
    # Dagster runs logging.config.dictConfig at every run start on an on-disk instance, even with no
    # python_logs configured; two runs starting in threads of one process can deadlock in Python's logging
    # locks there. This instance has no python_logs, so the handlers it would build are none at all.
    instance.get_yaml_python_handlers = lambda: []  # type: ignore[method-assign]
    threads = [
        threading.Thread(target=_run, args=(job, instance, RANGE_TAGS, results, "range")),
        threading.Thread(target=_run, args=(job, instance, {}, results, "day", day)),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=600)
    assert all(result.success for result in results.values()), {k: r.success for k, r in results.items()}
    return results


def _messages(instance: dg.DagsterInstance, run_id: str) -> list[str]:
    return [record.message or (record.dagster_event.message if record.dagster_event else "") or ""
            for record in instance.all_logs(run_id)]  # fmt: skip


def _timestamps(instance: dg.DagsterInstance, run_id: str, kind: dg.DagsterEventType) -> list[float]:
    return [record.timestamp for record in instance.all_logs(run_id, of_type=kind)]


def _assert_checks_passed(instance: dg.DagsterInstance, run_id: str) -> None:
    evaluations = [r.dagster_event.event_specific_data
                   for r in instance.all_logs(run_id, of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION)]  # fmt: skip
    counts = [e for e in evaluations if e.asset_check_key.name in (ROW_COUNT_CHECK, API_COUNT_CHECK)]
    # A ranged run records each check once for the range and once per day (checks.py); every one passed.
    assert {e.asset_check_key.name for e in counts} == {ROW_COUNT_CHECK, API_COUNT_CHECK}
    assert all(e.passed for e in counts), counts


@pytest.mark.slow
def test_a_day_inside_a_running_range_waits_for_it_and_both_load_the_right_rows(env, instance_dir, quick_turns) -> None:
    job = env.definitions().resolve_job_def(CONVERSATIONS_JOB)
    with dg.DagsterInstance.from_config(str(instance_dir)) as instance:
        results = _run_at_once(job, instance, "2024-05-06")
        ids = {name: result.run_id for name, result in results.items()}
        waited = [name for name in ids if any(m.startswith(WAITING) for m in _messages(instance, ids[name]))]
        assert len(waited) == 1, waited  # exactly one of them waited, for the other
        later, earlier = waited[0], ({"range", "day"} - set(waited)).pop()
        wait_messages = [m for m in _messages(instance, ids[later]) if m.startswith(WAITING)]
        assert ids[earlier] in wait_messages[0] and "2024-05-06" in wait_messages[0], wait_messages[0]
        # No interleaving: the later run's chain ran after the earlier run's last step had finished.
        last_step_of_earlier = max(_timestamps(instance, ids[earlier], dg.DagsterEventType.STEP_SUCCESS))
        successes_of_later = instance.all_logs(ids[later], of_type=dg.DagsterEventType.STEP_SUCCESS)
        assert min(r.timestamp for r in successes_of_later) > last_step_of_earlier
        for name in ids:
            _assert_checks_passed(instance, ids[name])
        print(f"\nwaited {min(r.timestamp for r in successes_of_later) - min(_timestamps(instance, ids[later], dg.DagsterEventType.STEP_START)):.1f} s "
              f"({len(wait_messages)} checks)")  # fmt: skip

    days = ["2024-05-05", "2024-05-06", "2024-05-07"]
    assert env.conversations_by_day() == {day: env.served(day) for day in days}
    (duplicates,) = env.query("SELECT COUNT(*) - COUNT(DISTINCT CONVERSATION_ID) AS N FROM CONVERSATIONS")
    assert duplicates["n"] == 0


@pytest.mark.slow
def test_runs_of_different_days_do_not_wait_for_each_other(env, instance_dir, quick_turns) -> None:
    job = env.definitions().resolve_job_def(CONVERSATIONS_JOB)
    with dg.DagsterInstance.from_config(str(instance_dir)) as instance:
        results = _run_at_once(job, instance, "2024-05-08")
        for result in results.values():
            assert not any(m.startswith(WAITING) for m in _messages(instance, result.run_id))
            _assert_checks_passed(instance, result.run_id)
    days = ["2024-05-05", "2024-05-06", "2024-05-07", "2024-05-08"]
    assert env.conversations_by_day() == {day: env.served(day) for day in days}


# The run that gets killed: the same definitions and stand-ins, in a process of its own, whose publish
# step hangs so that the test can kill the process while the run is STARTED.
_DOOMED = """
import json, sys, time
import dagster as dg
import genesys_pipeline.defs.s3_conversations as s3_step
from genesys_pipeline.definitions import build_definitions
from genesys_pipeline.defs.jobs import CONVERSATIONS_JOB
from genesys_pipeline.defs.partitions import build_retry_policy
from genesys_pipeline.defs.raw_conversations import raw_conversations
from genesys_pipeline.resources.working_storage import WorkingStorage
from genesys_pipeline.local import stand_ins
from genesys_pipeline.local.emulator import DEMO_CLIENT_ID, DEMO_CLIENT_SECRET
from genesys_pipeline.resources.genesys import GenesysResource
from genesys_pipeline.resources.warehouse import S3Publishing, SnowflakeTarget
from genesys_pipeline.resources.working_storage import WorkingStorage

a = json.loads(sys.argv[1])
s3_step.publish_partition = lambda *args, **kwargs: time.sleep(3600)
resources = {
    "genesys": GenesysResource(api_base_url=a["genesys"], login_base_url=a["genesys"], client_id=DEMO_CLIENT_ID,
                               client_secret=DEMO_CLIENT_SECRET, job_poll_interval_seconds=0.05),
    "working_storage": WorkingStorage(root=a["root"]),
    "s3": stand_ins.s3_resource(a["s3"]),
    "s3_publishing": S3Publishing(bucket=a["bucket"]),
    "snowflake": stand_ins.snowflake_resource(a["snowflake"], a["database"], "GENESYS"),
    "snowflake_target": SnowflakeTarget(stage_aws_key_id="testing", stage_aws_secret_key="testing",
                                        staging_tables="transient"),
}
job = build_definitions(resources=resources, executor=dg.in_process_executor).resolve_job_def(CONVERSATIONS_JOB)
with dg.DagsterInstance.from_config(a["home"]) as instance:
    job.execute_in_process(instance=instance, partition_key=a["day"], tags={"test": "doomed"})
"""


@pytest.mark.slow
def test_a_run_whose_worker_was_killed_is_marked_failed_and_does_not_block_its_day(env, instance_dir, quick_turns) -> None:
    day = "2024-05-07"
    arguments = dict(genesys=env.emulator.base_url, root=str(env.root), s3=env.stack.s3_endpoint_url, bucket=env.bucket,
                     snowflake=env.stack.snowflake_connection_args, database=env.database, home=str(instance_dir), day=day)  # fmt: skip
    doomed = subprocess.Popen([sys.executable, "-W", "ignore", "-c", _DOOMED, json.dumps(arguments)], cwd=REPOSITORY,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    with dg.DagsterInstance.from_config(str(instance_dir)) as instance:
        deadline = time.time() + 180
        while time.time() < deadline:  # until the doomed run is publishing (its pool slot given back)
            runs = instance.get_runs(filters=dg.RunsFilter(tags={"test": "doomed"}))
            if runs and "s3_conversations" in {r.step_key for r in instance.all_logs(runs[0].run_id, of_type=dg.DagsterEventType.STEP_START)}:
                break
            assert doomed.poll() is None, "the doomed run ended on its own"
            time.sleep(0.2)
        else:
            raise AssertionError("the doomed run never reached its publish step")
        doomed.send_signal(signal.SIGKILL)
        doomed.wait()
        (abandoned,) = instance.get_runs(filters=dg.RunsFilter(tags={"test": "doomed"}))
        assert abandoned.status == dg.DagsterRunStatus.STARTED  # what a killed worker leaves behind

        started = time.time()
        job = env.definitions().resolve_job_def(CONVERSATIONS_JOB)
        result = job.execute_in_process(instance=instance, partition_key=day, raise_on_error=False)
        elapsed = time.time() - started
        assert result.success
        messages = _messages(instance, result.run_id)
        assert not any(m.startswith(WAITING) for m in messages)
        assert any(abandoned.run_id in m and "was abandoned" in m for m in messages), messages
        failed = instance.get_run_by_id(abandoned.run_id)
        assert failed.status == dg.DagsterRunStatus.FAILURE
        (failure,) = instance.all_logs(abandoned.run_id, of_type=dg.DagsterEventType.RUN_FAILURE)
        assert f"Marked failed by run {result.run_id}" in failure.dagster_event.message
        assert f"process {doomed.pid}" in failure.dagster_event.message and "no longer running" in failure.dagster_event.message
        _assert_checks_passed(instance, result.run_id)
        print(f"\nrun after the killed one: {elapsed:.1f} s")
    assert env.conversations_by_day() == {day: env.served(day)}


@pytest.mark.slow
def test_a_step_that_waited_for_its_turn_keeps_its_retries_for_transient_errors(start_emulator, instance_dir, tmp_path,
                                                                                 quick_turns) -> None:  # fmt: skip
    # Dagster counts every attempt of a step, waits included, against its RetryPolicy: without care a step
    # that waited twice would fail at its first transient error. Every request faults here (the client
    # gives up after 2 attempts), so the step fails after the policy's 2 retries, whatever it waited.
    day = "2024-05-08"
    job = dg.define_asset_job("raw_with_retries", [raw_conversations], op_retry_policy=build_retry_policy(2, delay=0.01))
    genesys = genesys_for(start_emulator(fault_rate=1.0), max_attempts=2)
    defs = dg.Definitions(assets=[raw_conversations], jobs=[job],
                          resources={"genesys": genesys, "working_storage": WorkingStorage(root=str(tmp_path))})  # fmt: skip
    with dg.DagsterInstance.from_config(str(instance_dir)) as instance:
        # The run ahead: a run of the same day that has started its chain and finishes 3 s from now.
        ahead = dg.DagsterRun(job_name=CONVERSATIONS_JOB, run_id="ahead-of-the-test-run", tags={"dagster/partition": day},
                              status=dg.DagsterRunStatus.STARTED)  # fmt: skip
        instance.add_run(ahead)
        instance.report_dagster_event(dg.DagsterEvent(event_type_value=dg.DagsterEventType.STEP_START.value, job_name=CONVERSATIONS_JOB,
                                                      step_key="raw_conversations", message="started"), run_id=ahead.run_id)  # fmt: skip
        finish = threading.Timer(3.0, lambda: instance.report_dagster_event(
            dg.DagsterEvent(event_type_value=dg.DagsterEventType.RUN_SUCCESS.value, job_name=CONVERSATIONS_JOB, message="done"), run_id=ahead.run_id))  # fmt: skip
        finish.start()
        result = defs.resolve_job_def(job.name).execute_in_process(instance=instance, partition_key=day, raise_on_error=False)
        finish.join()
        assert not result.success
        retries = [e.step_retry_data.error for e in result.all_events if e.event_type_value == "STEP_UP_FOR_RETRY"]
        waits = [e for e in retries if e.cause and e.cause.cls_name == day_exclusivity.DaysTakenByEarlierRun.__name__]
        assert len(waits) >= 2 and ahead.run_id in waits[0].cause.message
        assert len(retries) - len(waits) == 2  # the policy's own retries, after the waits
        (failure,) = [e for e in result.all_events if e.event_type_value == "STEP_FAILURE"]
        assert "GenesysRetriesExhausted" in str(failure.step_failure_data.error), failure.step_failure_data.error


def _any_job() -> dg.JobDefinition:
    return dg.JobDefinition(graph_def=dg.GraphDefinition(name="empty", node_defs=[]))


def test_the_pipelines_executor_frees_abandoned_runs_before_any_step_claims_a_slot(monkeypatch, tmp_path) -> None:
    """A killed run can hold the genesys_api slot, which blocks every later Genesys step before the
    steps' own turn check runs; the executor, created once per run before any step, frees it."""
    from genesys_pipeline.defs import executor as pipeline_executor_module

    called: list[str] = []
    monkeypatch.setattr(pipeline_executor_module, "fail_abandoned_runs",
                        lambda instance, noticed_by: called.append(noticed_by) or {})  # fmt: skip
    with dg.instance_for_test(temp_dir=str(tmp_path)) as instance:
        from genesys_pipeline.definitions import build_definitions

        assert build_definitions().executor is pipeline_executor_module.pipeline_executor  # the default
        context = dg.InitExecutorContext(
            job=dg.reconstructable(_any_job), executor_def=pipeline_executor_module.pipeline_executor,
            executor_config={"multiprocess": {"retries": {"enabled": {}}, "max_concurrent": 2}}, instance=instance,
        )  # fmt: skip
        executor = pipeline_executor_module.pipeline_executor.executor_creation_fn(context)
    assert called == ["a run starting on this machine"]
    assert type(executor).__name__ == "MultiprocessExecutor"
