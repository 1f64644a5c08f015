"""Benchmark: a backfill of N days x M conversations a day through Dagster, as a user launches it.

    .venv/bin/python benchmarks/backfill.py --mode range --days 5 --per-day 5000
    .venv/bin/python benchmarks/backfill.py --mode range-run --days 5 --per-day 5000 # the same range, one direct run
    .venv/bin/python benchmarks/backfill.py --mode per-day --days 4 --per-day 5000   # the daily schedule's runs
    .venv/bin/python benchmarks/backfill.py --days 2 --per-day 1000 --json           # one JSON object

Each service runs in a process (a session) of its own, as in production: the Genesys emulator (its
clock frozen a day and a half after the last day, so every day is past the data-availability
watermark), the S3/Snowflake stand-ins (moto and fakesnow, one process), and `dagster dev` (webserver,
daemon, code server) on a temporary DAGSTER_HOME holding the repository's dagster.yaml, so pools,
queued runs and backfills behave as they do in production; runs use the code location's executor.
`--mode range` launches one backfill of the chain over the days through the webserver's GraphQL API,
as the UI's Materialize does (the backfill policy cuts it into runs of GENESYS_BACKFILL_DAYS_PER_RUN
days); `--mode range-run` launches the range as one run directly, with the range tags, as the launchpad
and `dagster job launch` do (no backfill: no wait for the backfill daemon's 30-second loop);
`--mode per-day` launches one run per day, newest first, as the daily schedule's tick does.

The emulator's data for the days is generated before the clock starts (we time the pipeline, not
the synthetic data). Reported: wall time from the launch to the last check result; the API floor (the
fewest requests the days can cost, over the client's budget); the CPU seconds of every process from
the launch to the last check result (/proc, sampled every 0.2 s) and over the cores; the physical
limit max(API floor, CPU / cores) and wall / limit; 429s the emulator served; where the time went.
"""

from __future__ import annotations

import argparse
import base64
import json
import math
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
from process_cpu import CpuSampler, own_cpu_seconds  # noqa: E402
from run_timeline import STAGES, roles, timeline  # noqa: E402

from genesys_pipeline.local import processes  # noqa: E402
from genesys_pipeline.local.emulator import DEMO_CLIENT_ID, DEMO_CLIENT_SECRET  # noqa: E402
from genesys_pipeline.local.stack import (  # noqa: E402
    LOCAL_BUCKET,
    create_bucket,
    spawn_stand_ins,
    stop_stand_ins,
)

# The checkout whose pipeline is measured (the one on PYTHONPATH): its workspace.yaml and dagster.yaml.
ROOT = Path(processes.__file__).resolve().parents[2]
HOST = "127.0.0.1"
LOCATION, REPOSITORY, JOB = "genesys_pipeline", "__repository__", "genesys_conversations"
CHAIN = ("raw_conversations", "flattened_conversations", "s3_conversations", "snowflake_conversations")
LAST_DAY = date(2024, 5, 9)
# A perfect extractor: one detail job covers up to 31 days and 400,000 results, pages of 1,000;
# listings in pages of 500 (the emulator's limits, the real API's as far as they are known).
JOB_DAYS, JOB_RESULTS, JOB_PAGE, LISTING_PAGE = 31, 400_000, 1000, 500
LISTINGS = ("/api/v2/routing/queues", "/api/v2/routing/wrapupcodes", "/api/v2/users?state=any",
            "/api/v2/authorization/divisions")  # fmt: skip
TERMINAL_RUN = {"SUCCESS", "FAILURE", "CANCELED"}
_BEGAN = time.monotonic()


def say(message: str) -> None:
    """Progress, on stderr (stdout holds the result)."""
    print(f"backfill benchmark [{time.monotonic() - _BEGAN:6.1f} s] {message}", file=sys.stderr, flush=True)


def start_emulator(per_day: int, seed: int, now: datetime, rate_limit: int, log: Any) -> tuple[subprocess.Popen, str]:
    command = [sys.executable, "-m", "genesys_pipeline.local.emulator", "--host", HOST, "--port", "0",
               "--daily-volume", str(per_day), "--seed", str(seed), "--now", now.isoformat(), "--clock-rate", "0",
               "--rate-limit-per-minute", str(rate_limit)]  # fmt: skip
    process = processes.start_session(command, stdout=subprocess.PIPE, stderr=log, cwd=ROOT)
    banner = process.stdout.readline().decode()
    if " on " not in banner:
        raise RuntimeError(f"the emulator did not start (exit code {process.poll()})")
    return process, banner.split(" on ")[1].split(" ")[0]


def day_interval(day: date) -> str:
    return f"{day:%Y-%m-%d}T00:00:00Z/{day + timedelta(days=1):%Y-%m-%d}T00:00:00Z"


def api_floor(base_url: str, days: list[date]) -> dict[str, Any]:
    """The fewest requests a perfect extractor needs for `days`, and the conversations they hold; the
    emulator's data for the days (and the two before, which detail jobs read) is generated on the way."""
    per_day = []
    for day in [days[0] - timedelta(days=2), days[0] - timedelta(days=1), *days]:
        truth = httpx.get(f"{base_url}/emulator/truth/conversations", params={"interval": day_interval(day)}, timeout=900)
        per_day.append(truth.json()["count"])
    conversations = sum(per_day[2:])
    basic = base64.b64encode(f"{DEMO_CLIENT_ID}:{DEMO_CLIENT_SECRET}".encode()).decode()
    token = httpx.post(f"{base_url}/oauth/token", data={"grant_type": "client_credentials"},
                       headers={"Authorization": f"Basic {basic}"}).json()["access_token"]  # fmt: skip
    listing_pages = 0
    for path in LISTINGS:
        separator = "&" if "?" in path else "?"
        page = httpx.get(f"{base_url}{path}{separator}pageSize={LISTING_PAGE}", headers={"Authorization": f"Bearer {token}"})
        listing_pages += max(1, int(page.json().get("pageCount") or 1))
    jobs = max(math.ceil(len(days) / JOB_DAYS), math.ceil(conversations / JOB_RESULTS))
    result_pages = sum(math.ceil(share / JOB_PAGE) for share in _split(conversations, jobs))
    requests = {"token": 1, "availability": 1, "count query per day (the API-count check)": len(days),
                "job submits": jobs, "job polls": jobs, "result pages": result_pages, "listing pages": listing_pages}  # fmt: skip
    return {"requests": requests, "total": sum(requests.values()), "conversations": conversations}


def _split(total: int, parts: int) -> list[int]:
    return [total // parts + (1 if i < total % parts else 0) for i in range(parts)]


# ##### LAUNCHING AND WAITING (what the UI sends)


def launch_range(url: str, days: list[str], run_config: dict | None = None) -> str:
    params = {"partitionNames": days, "assetSelection": [{"path": [name]} for name in CHAIN], "fromFailure": False,
              "runConfigData": run_config or {}}  # fmt: skip
    launched = processes.graphql(url, "mutation($p: LaunchBackfillParams!) { launchPartitionBackfill(backfillParams: $p) { "
                                 "__typename ... on LaunchBackfillSuccess { backfillId } ... on PythonError { message } } }",
                                 {"p": params})["launchPartitionBackfill"]  # fmt: skip
    if launched["__typename"] != "LaunchBackfillSuccess":
        raise RuntimeError(f"the backfill was not launched: {launched}")
    return launched["backfillId"]


def launch_run(url: str, tags: dict[str, str], run_config: dict | None = None) -> str:
    """One run of the job, launched directly (the launchpad's or `dagster job launch`'s way): no backfill."""
    params = {"selector": {"repositoryLocationName": LOCATION, "repositoryName": REPOSITORY, "jobName": JOB},
              "executionMetadata": {"tags": [{"key": key, "value": value} for key, value in tags.items()]},
              "runConfigData": run_config or {}}  # fmt: skip
    launched = processes.graphql(url, "mutation($p: ExecutionParams!) { launchRun(executionParams: $p) { __typename "
                                 "... on LaunchRunSuccess { run { runId } } ... on PythonError { message } "
                                 "... on RunConfigValidationInvalid { errors { message } } } }", {"p": params})["launchRun"]  # fmt: skip
    if launched["__typename"] != "LaunchRunSuccess":
        raise RuntimeError(f"the run tagged {tags} was not launched: {launched}")
    return launched["run"]["runId"]


def launch(url: str, mode: str, keys: list[str], run_config: dict | None) -> tuple[str | None, list[str]]:
    """(backfill id or None, run ids): a backfill (range), one run over the range (range-run), a run a day."""
    if mode == "range":
        return launch_range(url, keys, run_config), []
    if mode == "range-run":
        tags = {"dagster/asset_partition_range_start": keys[0], "dagster/asset_partition_range_end": keys[-1]}
        return None, [launch_run(url, tags, run_config)]
    return None, [launch_run(url, {"dagster/partition": key}, run_config) for key in reversed(keys)]


def runs_when_done(url: str, backfill_id: str | None, run_ids: list[str]) -> list[str] | None:
    """The run ids once the backfill (if any) and every run of it ended; None until then."""
    if backfill_id is not None:
        backfill = processes.graphql(url, "query($b: String!) { partitionBackfillOrError(backfillId: $b) { "
                                     "... on PartitionBackfill { status runs { runId status } } } }",
                                     {"b": backfill_id})["partitionBackfillOrError"]  # fmt: skip
        if backfill["status"] in ("REQUESTED", "CANCELING", "FAILING"):
            return None
        statuses = {run["runId"]: run["status"] for run in backfill["runs"]}
    else:
        found = processes.graphql(url, "query($ids: [String!]) { runsOrError(filter: {runIds: $ids}) { "
                                  "... on Runs { results { runId status } } } }", {"ids": run_ids})["runsOrError"]  # fmt: skip
        statuses = {run["runId"]: run["status"] for run in found["results"]}
    return list(statuses) if statuses and set(statuses.values()) <= TERMINAL_RUN else None


# ##### THE MEASUREMENT


def measure(mode: str, days_count: int, per_day: int, seed: int, rate_limit: int, timeout: float, keep: str | None,
            run_config: dict | None = None) -> dict:  # fmt: skip
    days = [LAST_DAY - timedelta(days=n) for n in range(days_count - 1, -1, -1)]
    now = datetime.combine(LAST_DAY + timedelta(days=1), datetime.min.time(), timezone.utc) + timedelta(hours=12)
    folder = Path(keep or tempfile.mkdtemp(prefix="backfill-benchmark-"))
    home = folder / "dagster_home"
    for sub in ("working", "snowflake", "dagster_home"):
        (folder / sub).mkdir(parents=True, exist_ok=True)
    shutil.copyfile(ROOT / "dagster.yaml", home / "dagster.yaml")
    say(f"starting the emulator, the stand-ins and `dagster dev` (DAGSTER_HOME {home})")
    with ExitStack() as stack, open(folder / "services.log", "ab") as log:
        emulator, base_url = start_emulator(per_day, seed, now, rate_limit, log)
        stack.callback(processes.stop_session, emulator, "emulator", signal.SIGTERM)
        stand_ins = spawn_stand_ins(HOST, folder / "snowflake", stderr=log, cwd=ROOT)
        stack.callback(stop_stand_ins, stand_ins)
        from genesys_pipeline.local.stack import to_environment
        from genesys_pipeline.settings import LocalEndpoints

        endpoints = LocalEndpoints(genesys_url=base_url, working_dir=str(folder / "working"),
                                   s3_endpoint_url=stand_ins.s3_endpoint_url, s3_bucket=LOCAL_BUCKET, s3_file_format="parquet",
                                   snowflake_connection_args=stand_ins.snowflake_connection_args)  # fmt: skip
        create_bucket(endpoints)
        environment = dict(os.environ, DAGSTER_HOME=str(home), GENESYS_REQUESTS_PER_MINUTE=str(rate_limit),
                           **to_environment(endpoints))  # fmt: skip
        port = processes.free_port(HOST)
        url = f"http://{HOST}:{port}"
        dagster = processes.start_session([sys.executable, "-m", "dagster", "dev", "-w", str(ROOT / "workspace.yaml"),
                                           "-h", HOST, "-p", str(port)], cwd=home, env=environment, stdout=log,
                                          stderr=subprocess.STDOUT)  # fmt: skip
        stack.callback(processes.stop_session, dagster, "dagster dev", signal.SIGINT, 60)
        processes.wait_until_ready(url, dagster, 300, threading.Event(), f" (output in {folder / 'services.log'})")
        say("Dagster is ready; generating the emulator's days")
        floor = api_floor(base_url, days)
        served_before = httpx.get(f"{base_url}/emulator/stats").json()

        sessions = {"emulator": emulator.pid, "stand-ins": stand_ins.process.pid, "dagster": dagster.pid}
        sampler = CpuSampler(set(sessions.values()))
        sampler.start()
        harness_before, launched_at, load_at_launch = own_cpu_seconds(), time.time(), os.getloadavg()[0]
        keys = [f"{day:%Y-%m-%d}" for day in days]
        what = {"range": "a backfill of", "range-run": "one run over", "per-day": "one run a day for"}[mode]
        say(f"launching {what} {keys[0]}..{keys[-1]}")
        backfill_id, run_ids = launch(url, mode, keys, run_config)
        deadline, done = time.monotonic() + timeout, None
        while done is None:
            if time.monotonic() > deadline:
                raise TimeoutError(f"the runs did not end within {timeout:.0f} s (logs in {folder})")
            time.sleep(1.0)
            done = runs_when_done(url, backfill_id, run_ids)
        sampler.stop()
        say(f"{len(done)} run(s) ended; stopping the services")
        harness_cpu = own_cpu_seconds() - harness_before
        machine_load = (round(load_at_launch, 1), round(os.getloadavg()[0], 1))
        served_after = httpx.get(f"{base_url}/emulator/stats").json()

        import dagster as dg

        with dg.DagsterInstance.from_config(str(home)) as instance:
            times = timeline(instance, done, launched_at)
    failed = [run for run in times.runs if run["status"] != "SUCCESS"]
    if failed or times.last_check_result is None:
        raise RuntimeError(f"runs did not succeed: {failed or times.runs}; DAGSTER_HOME and logs kept in {folder}")
    result = report(mode, days, per_day, rate_limit, floor, served_before, served_after, sampler, sessions, times,
                    launched_at, harness_cpu, machine_load)  # fmt: skip
    result["run_config"] = run_config or {}
    if keep:
        (folder / "result.json").write_text(json.dumps(result, indent=1))
    else:
        shutil.rmtree(folder, ignore_errors=True)
    return result


def report(mode, days, per_day, rate_limit, floor, before, after, sampler, sessions, times, launched_at, harness_cpu,  # noqa: ANN001
           machine_load) -> dict:  # noqa: ANN001
    wall = times.last_check_result - launched_at
    names = {pid: name for name, pid in sessions.items()}
    used_by = sampler.cpu_at(times.last_check_result)
    found = {pid: (p.parent, p.command, names.get(p.session, "?")) for pid, p in sampler.processes.items()}
    cpu: dict[str, float] = {}
    counts: dict[str, int] = {}
    listed = []
    for pid, role in roles(found).items():
        cpu[role] = cpu.get(role, 0.0) + used_by[pid]
        counts[role] = counts.get(role, 0) + 1
        listed.append({"pid": pid, "parent": found[pid][0], "role": role, "cpu_seconds": round(used_by[pid], 2),
                       "command": found[pid][1][:160]})
    cores = len(os.sched_getaffinity(0))
    cpu_total = sum(cpu.values())
    floor_seconds = floor["total"] / rate_limit * 60
    limit = max(floor_seconds, cpu_total / cores)
    served = {key: after.get(key, 0) - before.get(key, 0) for key in after if isinstance(after[key], (int, float))}
    api_requests = sum(v for k, v in served.items() if k.startswith("status."))
    return {
        "mode": mode, "days": len(days), "per_day": per_day, "first_day": f"{days[0]}", "last_day": f"{days[-1]}",
        "runs": len(times.runs), "run_statuses": sorted({r["status"] for r in times.runs}),
        "conversations": floor["conversations"], "check_results": times.check_results, "failed_checks": times.failed_checks,
        "wall_seconds": round(wall, 1),
        "api_floor_requests": floor["total"], "api_floor_breakdown": floor["requests"],
        "requests_per_minute": rate_limit, "api_floor_seconds": round(floor_seconds, 1),
        "requests_made": api_requests, "429s": served.get("status.429", 0),
        "cpu_seconds": round(cpu_total, 1), "cpu_by_process": {k: round(v, 1) for k, v in sorted(cpu.items())},
        "processes_by_role": counts, "cores": cores, "cpu_over_cores_seconds": round(cpu_total / cores, 1),
        "cpu_source": f"/proc, sampled every {sampler.interval} s", "harness_cpu_seconds": round(harness_cpu, 1),
        "machine_load_at_launch_and_end": machine_load,
        "limit_seconds": round(limit, 1), "limit_is": "API floor" if floor_seconds >= cpu_total / cores else "CPU / cores",
        "wall_over_limit": round(wall / limit, 2),
        "stages": {stage: {"steps": t.steps, "attempts": t.attempts, "pool_wait_seconds": round(t.pool_wait, 1),
                           "startup_seconds": round(t.startup, 1),
                           "work_seconds": round(t.work, 1), "longest_step_seconds": round(t.longest, 1)}
                   for stage in STAGES if (t := times.stages.get(stage))},  # fmt: skip
        "queued_seconds": round(times.queued, 1), "run_startup_seconds": round(times.run_startup, 1),
        "run_end_seconds": round(times.run_end, 1), "processes": listed,
    }  # fmt: skip


def table(result: dict) -> str:
    r = result
    floor = ", ".join(f"{k} {v}" for k, v in r["api_floor_breakdown"].items())
    lines = [
        f"{r['mode']}: {r['days']} days x {r['per_day']} conversations ({r['first_day']}..{r['last_day']}, "
        f"{r['conversations']} in all), {r['runs']} run(s) {'/'.join(r['run_statuses'])}, {r['check_results']} check results"
        + (f", run config {json.dumps(r['run_config'])}" if r.get("run_config") else ""),
        "| measure | value |", "|---|---|",
        f"| wall, launch to last check result | {r['wall_seconds']} s |",
        f"| API floor | {r['api_floor_requests']} requests / {r['requests_per_minute']} per min = {r['api_floor_seconds']} s "
        f"({floor}; made: {r['requests_made']}) |",
        f"| CPU, all processes | {r['cpu_seconds']} s / {r['cores']} cores = {r['cpu_over_cores_seconds']} s |",
        f"| physical limit | {r['limit_seconds']} s ({r['limit_is']}) |",
        f"| wall / limit | {r['wall_over_limit']} |",
        f"| 429s served | {r['429s']} |",
        f"| machine load (1-min average) at launch, at end | {r['machine_load_at_launch_and_end'][0]}, "
        f"{r['machine_load_at_launch_and_end'][1]} |",
        "",
        "| process | CPU s | processes |", "|---|---|---|",
        *(f"| {role} | {sec} | {r['processes_by_role'].get(role, 0)} |" for role, sec in r["cpu_by_process"].items()),
        f"| (harness, not counted) | {r['harness_cpu_seconds']} | 1 |",
        "",
        "| stage | steps | attempts | pool wait s | start-up s | work s | longest step s |", "|---|---|---|---|---|---|---|",
        *(f"| {name} | {s['steps']} | {s['attempts']} | {s['pool_wait_seconds']} | {s['startup_seconds']} | "
          f"{s['work_seconds']} | {s['longest_step_seconds']} |" for name, s in r["stages"].items()),
        f"| runs: queued / start-up / end | | | | {r['queued_seconds']} / {r['run_startup_seconds']} / "
        f"{r['run_end_seconds']} | | |",
        f"(CPU from {r['cpu_source']}; stage times summed over runs, which overlap in per-day mode)",
    ]  # fmt: skip
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mode", choices=("range", "range-run", "per-day"), default="range",
                        help="one backfill of range runs (the UI's), the range as one run launched directly (the "
                        "launchpad's and the command line's), or one run per day (the schedule's)")
    parser.add_argument("--days", type=int, default=2, help="days, ending 2024-05-09 (default: %(default)s)")
    parser.add_argument("--per-day", type=int, default=1000, help="conversations a day (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=7, help="the emulator's synthetic contact centre")
    parser.add_argument("--rate-limit", type=int, default=300,
                        help="requests a minute: the emulator's limit and the client's budget (default: %(default)s)")
    parser.add_argument("--timeout", type=float, default=3600, help="seconds to wait for the runs")
    parser.add_argument("--keep", metavar="DIR", help="keep DAGSTER_HOME, working files and logs in DIR")
    parser.add_argument("--run-config", type=json.loads, default={}, metavar="JSON",
                        help="the runs' config, as a launch from the UI sets it, e.g. the production executor: "
                        '\'{"execution": {"config": {"multiprocess": {}}}}\' (default: none, the code location\'s own)')
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of the tables")
    processes.exit_on_termination()  # a `timeout` stops the services too
    args = parser.parse_args()
    if args.days < 1 or args.per_day < 0:
        parser.error(f"--days must be >= 1 and --per-day >= 0, got {args.days} and {args.per_day}")
    result = measure(args.mode, args.days, args.per_day, args.seed, args.rate_limit, args.timeout, args.keep, args.run_config)
    print(json.dumps(result) if args.json else table(result))


if __name__ == "__main__":
    main()
