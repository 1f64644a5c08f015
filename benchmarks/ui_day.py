"""Benchmark: a day launched from the Dagster UI, from the launch to the row-count check's result.

    .venv/bin/python benchmarks/ui_day.py                        # 3 single days, then a 3-day range
    .venv/bin/python benchmarks/ui_day.py --repeat 5 --range-days 0 --daily-volume 5000
    .venv/bin/python benchmarks/ui_day.py --run-config '{"execution": {"config": {"multiprocess": {}}}}'
    cd <other checkout> && PYTHONPATH=$PWD /work/main/.venv/bin/python /work/main/benchmarks/ui_day.py   # before/after

What a user of the local mode waits for. Started as `make dev` starts them, each in a session of its
own: the Genesys emulator (its clock frozen after the measured days, so every day is complete), the
S3/Snowflake stand-ins, and `dagster-webserver` and `dagster-daemon` on a temporary DAGSTER_HOME that
holds the checkout's dagster.yaml, loading its workspace.yaml; the checkout is the one genesys_pipeline
is imported from. Their start is not timed. Then, one after another:

- `--repeat` single days: the `genesys_conversations` job launched for one partition through the
  webserver's GraphQL API (`launchRun`, what the job's Materialize sends);
- a range of `--range-days` days: a backfill of the chain's assets (`launchPartitionBackfill`, what the
  asset graph's Materialize over a range sends), which the backfill policy runs as one ranged run.

For each, from the run's event log: launch -> run start (queue, daemon, run worker start), every step's
start-up (its process launched -> STEP_START) and work (STEP_START -> its end), launch -> the last check
result, launch -> the run's end; then the range (min-max) of the single days.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from contextlib import ExitStack
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from backfill import launch_range, launch_run  # noqa: E402

from genesys_pipeline.local import processes  # noqa: E402
from genesys_pipeline.local.stack import (  # noqa: E402
    LOCAL_BUCKET,
    create_bucket,
    spawn_stand_ins,
    stop_stand_ins,
    to_environment,
)

CHECKOUT = Path(processes.__file__).resolve().parents[2]  # the checkout measured: genesys_pipeline's
HOST = "127.0.0.1"
FIRST_DAY = date(2024, 5, 1)
ENDED = {"SUCCESS", "FAILURE", "CANCELED"}


# ##### THE SERVICES


def start_emulator(daily_volume: int, now: datetime, log: Any) -> tuple[subprocess.Popen[bytes], str]:
    command = [sys.executable, "-m", "genesys_pipeline.local.emulator", "--host", HOST, "--port", "0",
               "--daily-volume", str(daily_volume), "--now", now.isoformat(), "--clock-rate", "0"]  # fmt: skip
    process = processes.start_session(command, stdout=subprocess.PIPE, stderr=log, cwd=CHECKOUT)
    assert process.stdout is not None
    banner = process.stdout.readline().decode()
    if " on " not in banner:
        raise RuntimeError(f"the emulator did not start (exit code {process.poll()})")
    return process, banner.split(" on ")[1].split(" ")[0]


def warm_emulator(base_url: str, days: list[date]) -> None:
    """Generate the emulator's data for the days (and the one before, which detail jobs overlap) now, so
    that the runs do not wait for the synthetic centre."""
    for day in [days[0] - timedelta(days=1), *days]:
        interval = f"{day}T00:00:00Z/{day + timedelta(days=1)}T00:00:00Z"
        httpx.get(f"{base_url}/emulator/truth/conversations", params={"interval": interval}, timeout=600).raise_for_status()


def start_dagster(folder: Path, environment: dict[str, str], log: Any, stack: ExitStack) -> str:
    """dagster-webserver and dagster-daemon on DAGSTER_HOME=folder/dagster_home; the UI's URL once the
    code location is loaded and the daemon is healthy."""
    home = folder / "dagster_home"
    home.mkdir()
    shutil.copyfile(CHECKOUT / "dagster.yaml", home / "dagster.yaml")
    import dagster as dg

    # The storage is created here, once: the webserver and the daemon creating it at the same moment can
    # both stamp its schema version ("alembic_version has more than one head").
    with dg.DagsterInstance.from_config(str(home)):
        pass
    workspace = str(CHECKOUT / "workspace.yaml")
    url = f"http://{HOST}:{processes.free_port(HOST)}"
    bin_dir = Path(sys.executable).parent
    webserver = processes.start_session(
        [str(bin_dir / "dagster-webserver"), "-h", HOST, "-p", url.rsplit(":", 1)[1], "-w", workspace],
        cwd=home, env=environment, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    stack.callback(processes.stop_session, webserver, "dagster-webserver")
    daemon = processes.start_session([str(bin_dir / "dagster-daemon"), "run", "-w", workspace], cwd=home,
                                     env=environment, stdout=log, stderr=subprocess.STDOUT)  # fmt: skip
    stack.callback(processes.stop_session, daemon, "dagster-daemon")
    processes.wait_until_ready(url, webserver, 600, threading.Event(), f" (output in {log.name})")
    return url


# ##### LAUNCHING AS THE UI DOES (backfill.py's launch_run and launch_range), AND WAITING


def wait_for_runs(instance: Any, timeout: float, run_id: str | None = None, backfill_id: str | None = None) -> list[Any]:
    """The run records once the run (or every run of the backfill, and the backfill) ended."""
    import dagster as dg

    runs_filter = dg.RunsFilter(run_ids=[run_id]) if run_id else dg.RunsFilter(tags={"dagster/backfill": backfill_id})
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        records = instance.get_run_records(runs_filter)
        backfill = instance.get_backfill(backfill_id) if backfill_id else None
        backfill_done = backfill is None or backfill.status.value not in ("REQUESTED", "CANCELING", "FAILING")
        if records and backfill_done and all(r.dagster_run.status.value in ENDED for r in records):
            return records
        time.sleep(0.5)
    raise TimeoutError(f"the runs did not end within {timeout:.0f} s")


# ##### WHAT THE EVENT LOG SAYS


def timings(instance: Any, records: list[Any], launched_at: float) -> dict[str, Any]:
    """Seconds from the launch to the run start, the last check result and the run end; per step, its
    start-up and work (summed over attempts: a step that waits for its day's turn is retried)."""
    import dagster as dg

    kinds = dg.DagsterEventType
    first: dict[Any, float] = {}
    steps: dict[str, dict[str, float]] = {}
    checks = []
    for record in records:
        launching: dict[str, float] = {}
        for entry in instance.all_logs(record.dagster_run.run_id):
            if not entry.is_dagster_event:
                continue
            kind, when, key = entry.dagster_event.event_type, entry.timestamp, entry.step_key
            first.setdefault(kind, when)
            step = steps.setdefault(key, {"startup": 0.0, "work": 0.0, "attempts": 0}) if key else {}
            if kind == kinds.STEP_WORKER_STARTING:
                launching[key] = when
            elif kind == kinds.STEP_START:
                step["attempts"] += 1
                step["startup"] += when - launching.pop(key, when)
                step["started"] = when
            elif kind in (kinds.STEP_SUCCESS, kinds.STEP_FAILURE, kinds.STEP_UP_FOR_RETRY) and "started" in step:
                step["work"] += when - step.pop("started")
            elif kind == kinds.ASSET_CHECK_EVALUATION:
                passed = entry.dagster_event.event_specific_data.passed
                checks.append((when, entry.dagster_event.event_specific_data.asset_check_key.name, passed))
            elif kind in (kinds.RUN_SUCCESS, kinds.RUN_FAILURE, kinds.RUN_CANCELED):
                first["END"] = max(first.get("END", 0.0), when)
    return {
        "statuses": sorted({r.dagster_run.status.value for r in records}),
        "run_start": round(first.get(kinds.RUN_START, launched_at) - launched_at, 1),
        "check_result": round(max(when for when, _, _ in checks) - launched_at, 1) if checks else None,
        "checks_failed": sorted({name for _, name, passed in checks if not passed}),
        "run_end": round(first.get("END", launched_at) - launched_at, 1),
        "steps": {key: {k: round(v, 1) if isinstance(v, float) else v for k, v in step.items() if k != "started"}
                  for key, step in steps.items()},  # fmt: skip
    }


def describe(what: str, result: dict[str, Any]) -> str:
    steps = ", ".join(f"{key} {s['startup']}+{s['work']} s" + (f" ({s['attempts']} attempts)" if s["attempts"] > 1 else "")
                      for key, s in result["steps"].items())  # fmt: skip
    return (f"{what}: {'/'.join(result['statuses'])}; launch -> run start {result['run_start']} s, -> check result "
            f"{result['check_result']} s, -> run end {result['run_end']} s"
            + (f"; FAILED checks {result['checks_failed']}" if result["checks_failed"] else "")
            + f"\n    steps (start-up + work): {steps}")  # fmt: skip


def spread(values: list[float]) -> str:
    return f"{min(values)}-{max(values)} s" if len(values) > 1 else f"{values[0]} s"


# ##### THE MEASUREMENT


def measure(repeat: int, range_days: int, daily_volume: int, keep: str | None, timeout: float,
            run_config: dict[str, Any] | None = None) -> dict[str, Any]:  # fmt: skip
    singles = [FIRST_DAY + timedelta(days=n) for n in range(repeat)]
    ranged = [singles[-1] + timedelta(days=2 + n) for n in range(range_days)] if range_days else []
    now = datetime.combine((ranged or singles)[-1] + timedelta(days=1), datetime.min.time(), timezone.utc) + timedelta(hours=12)
    folder = Path(keep) if keep else Path(tempfile.mkdtemp(prefix="ui-day-benchmark-"))
    folder.mkdir(parents=True, exist_ok=True)
    results: dict[str, Any] = {"checkout": str(CHECKOUT), "daily_volume": daily_volume, "days": [], "range": None}
    with ExitStack() as stack, open(folder / "services.log", "ab") as log:
        emulator, base_url = start_emulator(daily_volume, now, log)
        stack.callback(processes.stop_session, emulator, "emulator", signal.SIGTERM)
        stand_ins = spawn_stand_ins(HOST, folder / "snowflake", stderr=log, cwd=CHECKOUT)
        stack.callback(stop_stand_ins, stand_ins)
        from genesys_pipeline.settings import LocalEndpoints

        endpoints = LocalEndpoints(genesys_url=base_url, working_dir=str(folder / "working"),
                                   s3_endpoint_url=stand_ins.s3_endpoint_url, s3_bucket=LOCAL_BUCKET,
                                   s3_file_format="parquet", snowflake_connection_args=stand_ins.snowflake_connection_args)  # fmt: skip
        create_bucket(endpoints)
        environment = {**{k: v for k, v in os.environ.items() if not k.startswith(("GENESYS_", "DAGSTER_"))},
                       "DAGSTER_HOME": str(folder / "dagster_home"), **to_environment(endpoints)}  # fmt: skip
        url = start_dagster(folder, environment, log, stack)
        warm_emulator(base_url, singles + ranged)

        import dagster as dg

        instance = stack.enter_context(dg.DagsterInstance.from_config(str(folder / "dagster_home")))
        for day in singles:
            launched_at = time.time()
            run_id = launch_run(url, {"dagster/partition": f"{day}"}, run_config)
            result = timings(instance, wait_for_runs(instance, timeout, run_id=run_id), launched_at)
            print(describe(f"{day}", result), flush=True)
            results["days"].append(result)
        if ranged:
            launched_at = time.time()
            backfill_id = launch_range(url, [f"{day}" for day in ranged], run_config)
            result = timings(instance, wait_for_runs(instance, timeout, backfill_id=backfill_id), launched_at)
            print(describe(f"range {ranged[0]}..{ranged[-1]} (backfill)", result), flush=True)
            results["range"] = result
    if not keep:
        shutil.rmtree(folder, ignore_errors=True)
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3, help="single days launched one after another (default: 3)")
    parser.add_argument("--range-days", type=int, default=3, help="days of the ranged run after them; 0: none (default: 3)")
    parser.add_argument("--daily-volume", type=int, default=2000, help="conversations a day (default: 2000, make dev's)")
    parser.add_argument("--timeout", type=float, default=900, help="seconds a run may take (default: 900)")
    parser.add_argument("--keep", help="a folder to keep the services' log, DAGSTER_HOME and data in")
    parser.add_argument("--run-config", type=json.loads, default=None,
                        help='the runs\' config as JSON, e.g. \'{"execution": {"config": {"multiprocess": {}}}}\' '
                             "(the production default, steps forked from the forkserver; locally runs are in-process)")
    parser.add_argument("--json", action="store_true", help="print the results as one JSON object at the end")
    processes.exit_on_termination()  # a `timeout` stops the services too
    args = parser.parse_args(argv)
    results = measure(args.repeat, args.range_days, args.daily_volume, args.keep, args.timeout, args.run_config)
    singles = [r["check_result"] for r in results["days"] if r["check_result"] is not None]
    print(f"{CHECKOUT}: one day from the UI, launch to check result: {spread(singles) if singles else 'no result'}"
          f" ({len(singles)} days of {args.daily_volume} conversations)"
          + (f"; {args.range_days}-day range: {results['range']['check_result']} s" if results["range"] else ""))  # fmt: skip
    if args.json:
        print(json.dumps(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
