"""Runs that touch the same day take turns; a run whose worker is provably gone stops blocking others.

Every step of the conversations chain starts with `take_turn` (wired in partitions.daily_asset). It
reads the runs in progress from the Dagster instance and lets steps/day_ranges.py decide: when a run
that touches one of this run's days started its chain earlier and is still in progress, this step
logs whom it waits for and asks Dagster to run it again later (`RetryRequested`). It does not wait
inside the step: the step may hold the `genesys_api` pool slot that the earlier run's next step needs.
Between attempts the slot is free, so the earlier run goes on and no two runs wait for each other.

This holds whatever launched the runs (the schedule, a backfill's ranged runs, the UI), because the
days come from the runs' own partition tags: `dagster/partition` for one day,
`dagster/asset_partition_range_start`/`_end` for a range.

A run is in progress in the instance until its worker says otherwise. A worker that was killed
(`kill -9`, out of memory, a reboot) leaves its run STARTED for ever, and on one machine Dagster's run
monitoring cannot tell (the default run launcher has no worker health check). So each run records its
worker (host, pid) when its chain starts, and a later run that finds that worker provably gone on this
machine marks the run failed, frees the pool slots it held and says so in both runs' logs.
"""

from __future__ import annotations

import time
from collections.abc import Collection

import dagster as dg
from dagster._core.events import EngineEventData

from genesys_pipeline.steps.day_ranges import (
    DayRange,
    RunInLine,
    WorkerProcess,
    is_provably_gone,
    whose_turn,
    worker_process,
)

SINGLE_DAY_TAG = "dagster/partition"
RANGE_TAGS = ("dagster/asset_partition_range_start", "dagster/asset_partition_range_end")
IN_PROGRESS = (dg.DagsterRunStatus.STARTING, dg.DagsterRunStatus.STARTED, dg.DagsterRunStatus.CANCELING)

# A waiting step checks again after 5 s, 10 s, 20 s, then every 30 s: each check starts the step's process
# again (a few seconds of CPU), and a run that waits starts at most 30 s after its turn came. It gives up
# after two hours (a week's chunk of a backfill takes minutes, so a longer wait means the run ahead is stuck).
FIRST_CHECK_AFTER_SECONDS = 5.0
CHECK_EVERY_SECONDS_AT_MOST = 30.0
GIVE_UP_AFTER_SECONDS = 2 * 3600.0
# Another run's first step may be recorded a moment after its timestamp was taken; an overlapping run
# that has not shown one yet is looked at again once this run's own first step is this old.
SETTLE_SECONDS = 1.0

_WORKER_HOST = "run_worker_host"  # marks the engine event that records a run's worker


class DaysTakenByEarlierRun(Exception):
    """The cause of a step's retry while another run has the day: says which run and which days."""


def run_days(run: dg.DagsterRun) -> DayRange | None:
    """The days of a run from its partition tags; None for a run without days (not a chain run)."""
    tags = run.tags
    if SINGLE_DAY_TAG in tags:
        return DayRange.of_keys([tags[SINGLE_DAY_TAG]])
    if all(tag in tags for tag in RANGE_TAGS):
        return DayRange.of_keys([tags[tag] for tag in RANGE_TAGS])
    return None


def first_chain_step_at(instance: dg.DagsterInstance, run_id: str, chain_steps: Collection[str]) -> float | None:
    """When the run started its first step of the chain (the stored STEP_START's timestamp)."""
    starts = [r.timestamp for r in instance.all_logs(run_id, of_type=dg.DagsterEventType.STEP_START) if r.step_key in chain_steps]
    return min(starts, default=None)


def _engine_metadata(instance: dg.DagsterInstance, run_id: str) -> list[dict]:
    """The metadata of the run's run-level engine events, oldest first."""
    return [
        {key: value.value for key, value in record.dagster_event.engine_event_data.metadata.items()}
        for record in instance.all_logs(run_id, of_type=dg.DagsterEventType.ENGINE_EVENT)
        if record.step_key is None and record.dagster_event.engine_event_data is not None
    ]  # fmt: skip


def _worker_in(metadata: list[dict]) -> WorkerProcess | None:
    records = [m for m in metadata if _WORKER_HOST in m]
    if not records:
        return None
    last = records[-1]
    ticks = last.get("started_ticks")
    return WorkerProcess(last[_WORKER_HOST], int(last["pid"]), last.get("boot_id") or None,
                         last.get("pid_namespace") or None, int(ticks) if ticks else None)  # fmt: skip


def recorded_worker(instance: dg.DagsterInstance, run_id: str) -> WorkerProcess | None:
    """The run's worker as last recorded by record_worker."""
    return _worker_in(_engine_metadata(instance, run_id))


def record_worker(instance: dg.DagsterInstance, run: dg.DagsterRun) -> None:
    """Record the run's worker (the process that runs the executor; Dagster logs its pid when it starts
    executing steps) with this machine's identity, unless that worker is recorded already."""
    metadata = _engine_metadata(instance, run.run_id)
    pids = [int(m["pid"]) for m in metadata if "pid" in m and _WORKER_HOST not in m]
    if not pids:
        return
    worker = worker_process(pids[-1])
    if _worker_in(metadata) == worker:
        return
    fields = {_WORKER_HOST: worker.host, "pid": str(worker.pid), "boot_id": worker.boot_id or "",
              "pid_namespace": worker.pid_namespace or "", "started_ticks": str(worker.started_ticks or "")}  # fmt: skip
    instance.report_engine_event(
        f"Run worker: process {worker.pid} on {worker.host}. Runs of the same days use this to tell whether this "
        "run was abandoned.",
        dagster_run=run,
        engine_event_data=EngineEventData(metadata={k: dg.MetadataValue.text(v) for k, v in fields.items()}),
    )


def fail_if_abandoned(instance: dg.DagsterInstance, run: dg.DagsterRun, noticed_by: str) -> str | None:
    """Mark `run` failed and free its pool slots if its recorded worker is provably gone from this
    machine; the message said in its log, or None when it may still be running."""
    worker = recorded_worker(instance, run.run_id)
    if worker is None or not is_provably_gone(worker):
        return None
    current = instance.get_run_by_id(run.run_id)
    if current is None or current.status not in IN_PROGRESS:
        return None
    message = (
        f"Marked failed by {noticed_by}: this run's worker (process {worker.pid} on {worker.host}) is no "
        f"longer running, so the run could never finish and was blocking its days ({run_days(run)}). "
        "Run those days again."
    )
    instance.report_run_failed(current, message)
    instance.event_log_storage.free_concurrency_slots_for_run(run.run_id)
    return message


def fail_abandoned_runs(instance: dg.DagsterInstance, noticed_by: str) -> dict[str, str]:
    """Every run in progress with days whose worker is provably gone from this machine, marked failed
    (its pool slots freed); run id -> the message in its log. Cheap: meant for each step of the chain,
    and usable from anything else that runs on the machine of the run workers (a sensor, a start-up)."""
    failed = {}
    for run in instance.get_runs(filters=dg.RunsFilter(statuses=list(IN_PROGRESS))):
        if run_days(run) is not None:
            message = fail_if_abandoned(instance, run, noticed_by)
            if message:
                failed[run.run_id] = message
    return failed


def wait_count(context: dg.AssetExecutionContext) -> int:
    """How many earlier attempts of this step ended waiting for their turn (not failing)."""
    step = context.op_execution_context.get_step_execution_context().step.key
    retries = context.instance.all_logs(context.run.run_id, of_type=dg.DagsterEventType.STEP_UP_FOR_RETRY)
    causes = [r.dagster_event.step_retry_data.error.cause for r in retries if r.step_key == step]
    return sum(1 for cause in causes if cause is not None and cause.cls_name == DaysTakenByEarlierRun.__name__)


def _step_started_at(context: dg.AssetExecutionContext) -> float:
    step = context.op_execution_context.get_step_execution_context().step.key
    starts = context.instance.all_logs(context.run.run_id, of_type=dg.DagsterEventType.STEP_START)
    return min((r.timestamp for r in starts if r.step_key == step), default=time.time())


def _line(context: dg.AssetExecutionContext, chain_steps: Collection[str]) -> tuple[RunInLine, list[RunInLine]]:
    """This run and the other runs in progress with days, each placed by its first chain step."""
    instance, me = context.instance, context.run
    for run_id, message in fail_abandoned_runs(instance, f"run {me.run_id}").items():
        context.log.warning(f"Run {run_id} was abandoned. {message}")
    others = []
    for run in instance.get_runs(filters=dg.RunsFilter(statuses=list(IN_PROGRESS))):
        days = run_days(run)
        if run.run_id != me.run_id and days is not None:
            others.append(RunInLine(run.run_id, days, first_chain_step_at(instance, run.run_id, chain_steps)))
    mine = first_chain_step_at(instance, me.run_id, chain_steps) or time.time()
    return RunInLine(me.run_id, DayRange.of_keys(context.partition_keys), mine), others


def take_turn(context: dg.AssetExecutionContext, chain_steps: Collection[str]) -> None:
    """Return when no run ahead in line touches this run's days; otherwise log whom this run waits for
    and raise RetryRequested (or a Failure once it has waited GIVE_UP_AFTER_SECONDS)."""
    record_worker(context.instance, context.run)
    me, others = _line(context, chain_steps)
    turn = whose_turn(me, others)
    if turn.unplaced and time.time() - me.first_step_at < SETTLE_SECONDS:
        time.sleep(SETTLE_SECONDS - (time.time() - me.first_step_at))
        me, others = _line(context, chain_steps)
        turn = whose_turn(me, others)
    waits = wait_count(context)
    waited = time.time() - _step_started_at(context)
    if not turn.ahead:
        if waits:
            context.log.info(f"Our turn for {me.days} after waiting {waited:.0f} s ({waits} checks).")
        return
    ahead = ", ".join(f"run {run.run_id} ({run.days})" for run in turn.ahead)
    if waited >= GIVE_UP_AFTER_SECONDS:
        raise dg.Failure(
            description=f"Gave up after waiting {waited / 60:.0f} min for {ahead}, which touches this run's days "
            f"({me.days}) and is still in progress. If it is stuck, terminate it in the UI, then run these days "
            "again.",
            allow_retries=False,
        )
    seconds = min(CHECK_EVERY_SECONDS_AT_MOST, FIRST_CHECK_AFTER_SECONDS * 2**waits)
    message = (
        f"Waiting for {ahead}: it started earlier on days of this run ({me.days}), and two runs never "
        f"work on the same day at once. Checking again in {seconds:g} s (waited {waited:.0f} s so far)."
    )
    context.log.info(message)
    raise dg.RetryRequested(max_retries=context.retry_number + 1, seconds_to_wait=seconds) from DaysTakenByEarlierRun(message)


def retry_after_waits(context: dg.AssetExecutionContext) -> dg.RetryRequested | None:
    """For a transient failure of a step that waited for its turn: the retry its RetryPolicy would give.
    Dagster counts every earlier attempt (waits included) against the policy's max_retries and backoff,
    so after a wait the policy itself would not retry at all; None when there was no wait (the policy
    applies as is) or the policy's own retries are used up."""
    policy = context.op_execution_context.get_step_execution_context().op_retry_policy
    waits = wait_count(context)
    if policy is None or not waits:
        return None
    failures = context.retry_number - waits
    if failures >= policy.max_retries:
        return None
    seconds = policy.calculate_delay(failures + 1)
    context.log.info(f"Retrying after a transient failure ({failures + 1} of {policy.max_retries}) in {seconds:.0f} s.")
    return dg.RetryRequested(max_retries=context.retry_number + 1, seconds_to_wait=seconds)
