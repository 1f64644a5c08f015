"""Where a benchmark's wall time went, from the Dagster event log of its runs, and which process its CPU
went to (by command line).

Per run: queued (launch to the run worker starting), run start-up (the worker starting to its first step
being ready: launched, or found waiting for the `genesys_api` pool), run end (the last step ended to the
run's end). Per step: pool wait (first "blocked by limit for pool" to the step process launched),
start-up (the step process launched to STEP_START: process start, imports, loading the code location)
and work (STEP_START to its end, every attempt when a step was retried); the stages are the chain's
assets and the checks.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

STAGES = ("raw", "flatten", "S3", "Snowflake", "check")
_STAGE_OF_ASSET = {"raw_conversations": "raw", "flattened_conversations": "flatten", "s3_conversations": "S3",
                   "snowflake_conversations": "Snowflake"}  # fmt: skip
_CHECK_NAMES = ("row_counts_match_across_stages", "api_count_close_to_extracted")


def stage_of(step_key: str) -> str:
    if any(name in step_key for name in _CHECK_NAMES):
        return "check"
    return _STAGE_OF_ASSET.get(step_key, step_key)


@dataclass
class StageTimes:
    steps: int = 0
    attempts: int = 0
    pool_wait: float = 0.0
    startup: float = 0.0
    work: float = 0.0
    longest: float = 0.0


@dataclass
class Timeline:
    runs: list[dict[str, Any]] = field(default_factory=list)
    stages: dict[str, StageTimes] = field(default_factory=lambda: defaultdict(StageTimes))
    last_check_result: float | None = None
    check_results: int = 0
    failed_checks: int = 0
    queued: float = 0.0
    run_startup: float = 0.0
    run_end: float = 0.0


def timeline(instance: Any, run_ids: list[str], launched_at: float) -> Timeline:
    """The runs' events read from `instance` (a DagsterInstance), times relative to nothing: seconds."""
    result = Timeline()
    for run_id in run_ids:
        events = [e for e in instance.all_logs(run_id) if e.is_dagster_event]
        times: dict[str, float] = {}
        problems: list[str] = []
        steps: dict[str, dict[str, Any]] = defaultdict(
            lambda: {"blocked": None, "launched": None, "started": None, "work": 0.0, "attempts": 0}
        )
        for entry in events:
            kind, when, step_key = entry.dagster_event.event_type_value, entry.timestamp, entry.step_key
            times.setdefault(kind, when)  # the first of each run-level event
            if kind in ("PIPELINE_FAILURE", "STEP_FAILURE", "ENGINE_EVENT") and "error" in (entry.user_message or "").lower():
                problems.append(entry.user_message[:300])
            if kind == "ASSET_CHECK_EVALUATION":
                result.check_results += 1
                evaluation = entry.dagster_event.event_specific_data
                result.failed_checks += not getattr(evaluation, "passed", True)
                result.last_check_result = max(result.last_check_result or 0.0, when)
            if step_key is None:
                continue
            step = steps[step_key]
            if kind == "ENGINE_EVENT" and "blocked by limit for pool" in (entry.user_message or "") and step["blocked"] is None:
                step["blocked"] = when
            elif kind == "STEP_WORKER_STARTING" and step["launched"] is None:
                step["launched"] = when
            elif kind == "STEP_START":
                step["attempts"] += 1
                step["first_start"] = step.get("first_start") or when
                step["started"] = when
            elif kind in ("STEP_SUCCESS", "STEP_FAILURE", "STEP_UP_FOR_RETRY") and step["started"] is not None:
                step["work"] += when - step["started"]
                step["started"] = None
                step["ended"] = when
        for step_key, step in steps.items():
            if step["attempts"] == 0:
                continue
            stage = result.stages[stage_of(step_key)]
            stage.steps += 1
            stage.attempts += step["attempts"]
            stage.startup += step["first_start"] - (step["launched"] or step["first_start"])
            if step["blocked"] is not None and step["launched"] is not None:
                stage.pool_wait += step["launched"] - step["blocked"]
            stage.work += step["work"]
            stage.longest = max(stage.longest, step["work"])
        launched = [s["blocked"] or s["launched"] or s.get("first_start") for s in steps.values() if s["attempts"]]
        ended = [s["ended"] for s in steps.values() if s.get("ended")]
        run_began = times.get("PIPELINE_STARTING") or times.get("PIPELINE_START")
        run_done = next((times[k] for k in ("PIPELINE_SUCCESS", "PIPELINE_FAILURE", "PIPELINE_CANCELED") if k in times), None)
        status = "SUCCESS" if "PIPELINE_SUCCESS" in times else "FAILURE" if "PIPELINE_FAILURE" in times else "?"
        record = {"run_id": run_id, "status": status, "steps": sum(1 for s in steps.values() if s["attempts"])}
        if status != "SUCCESS":
            record["problems"] = problems[-3:]
        if run_began is not None:
            record["queued"] = run_began - launched_at
            result.queued += record["queued"]
        if run_began is not None and launched:
            record["run_startup"] = min(launched) - run_began
            result.run_startup += record["run_startup"]
        if run_done is not None and ended:
            record["run_end"] = run_done - max(ended)
            result.run_end += record["run_end"]
        result.runs.append(record)
    return result


# ##### PROCESSES


def roles(processes: dict[int, tuple[int, str, str]]) -> dict[int, str]:
    """What each process is, from {pid: (parent pid, command line, the name of its session)}: the
    session's name outside `dagster dev`'s (the emulator, the stand-ins); inside it, from the command
    line, and for multiprocessing children from their parent: the code server's are run workers, a run
    worker's (or its forkserver's) are step processes."""
    found: dict[int, str] = {}

    def role(pid: int) -> str:
        if pid not in found:
            parent, command, session = processes[pid]
            found[pid] = session if session != "dagster" else _dagster_role(command, processes, parent, role)
        return found[pid]

    for pid in processes:
        role(pid)
    return found


def _dagster_role(command: str, processes: dict[int, tuple[int, str, str]], parent: int, role: Any) -> str:
    padded = f" {command} "
    if "multiprocessing" in padded:
        above = role(parent) if parent in processes else "?"
        if "resource_tracker" in padded:
            return "forkserver, resource tracker"
        if "forkserver" in padded:  # the forkserver, or a step forked from it (same command line)
            return "step processes" if above == "forkserver, resource tracker" else "forkserver, resource tracker"
        return "run workers" if above == "code server" else "step processes"
    rules = (("dagster_webserver", "webserver"), ("dagster-webserver", "webserver"), ("dagster._daemon", "daemon"),
             ("dagster-daemon", "daemon"), ("api execute_run", "run workers"), ("api grpc", "code server"),
             ("code-server", "code server"), (" dev ", "dagster dev"), ("tail -F", "compute-log capture"),
             ("watch_orphans", "compute-log capture"))  # fmt: skip
    return next((name for needle, name in rules if needle in padded), "other: " + command[:60])
