"""Benchmark: the raw and flatten steps of one range run (N past days x M conversations a day).

    .venv/bin/python benchmarks/extract_range.py                      # 5 days x 5,000
    .venv/bin/python benchmarks/extract_range.py --days 3 --volume 2000 --repeat 2

The emulator runs in its own process with its default job timings (0.5 s queued, 1 s pending) and the
resource keeps its default settings (polls, budget), so what is measured is what a user's range run
does inside its steps; Dagster's process start-up is left out (benchmarks/backfill.py has it). The
steps run in this process through `dg.materialize` with the range tags a backfill's run carries.
Reported per step: its wall time; for the raw step also the requests made, 429s and detail jobs.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from datetime import date, timedelta

import httpx

CLOCK = "2024-05-10T12:00:00Z"
LAST_DAY = date(2024, 5, 8)  # wholly before the watermark at CLOCK


def start_emulator(volume: int, days: list[date], source: str | None) -> tuple[subprocess.Popen, str]:
    command = [sys.executable, "-m", "genesys_pipeline.local.emulator", "--port", "0", "--daily-volume", str(volume),
               "--now", CLOCK, "--clock-rate", "0"]
    environment = {**os.environ, "PYTHONPATH": source} if source else None
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True, env=environment, cwd=source)
    base_url = process.stdout.readline().split(" on ")[1].split(" ")[0]
    for day in [days[0] - timedelta(days=2), days[0] - timedelta(days=1), *days]:  # warm the plan caches
        interval = f"{day:%Y-%m-%d}T00:00:00Z/{day + timedelta(days=1):%Y-%m-%d}T00:00:00Z"
        httpx.get(f"{base_url}/emulator/truth/conversations", params={"interval": interval}, timeout=600)
    return process, base_url


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process, from /proc (Linux)."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def measure(days: int, volume: int, emulator_source: str | None, tuning: dict) -> dict:
    import dagster as dg

    from genesys_pipeline.defs.flattened_conversations import flattened_conversations
    from genesys_pipeline.defs.raw_conversations import raw_conversations
    from genesys_pipeline.local.emulator import DEMO_CLIENT_ID, DEMO_CLIENT_SECRET
    from genesys_pipeline.resources.genesys import GenesysResource
    from genesys_pipeline.resources.working_storage import WorkingStorage

    keys = [LAST_DAY - timedelta(days=n) for n in reversed(range(days))]
    process, base_url = start_emulator(volume, keys, emulator_source)
    tags = {"dagster/asset_partition_range_start": keys[0].isoformat(),
            "dagster/asset_partition_range_end": keys[-1].isoformat()}
    try:
        genesys = GenesysResource(api_base_url=base_url, login_base_url=base_url, client_id=DEMO_CLIENT_ID,
                                  client_secret=DEMO_CLIENT_SECRET, **tuning)
        with tempfile.TemporaryDirectory() as folder:
            resources = {"genesys": genesys, "working_storage": WorkingStorage(root=folder)}
            started, own_cpu, emulator_cpu = time.monotonic(), time.process_time(), cpu_seconds(process.pid)
            raw = dg.materialize([raw_conversations], resources=resources, tags=tags)
            raw_seconds = time.monotonic() - started
            own_cpu, emulator_cpu = time.process_time() - own_cpu, cpu_seconds(process.pid) - emulator_cpu
            served = httpx.get(f"{base_url}/emulator/stats").json()
            started = time.monotonic()
            flat = dg.materialize([raw_conversations, flattened_conversations], resources=resources, tags=tags,
                                  selection=[flattened_conversations])
            flat_seconds = time.monotonic() - started
        assert raw.success and flat.success
        meta = {k: v.value for k, v in raw.asset_materializations_for_node("raw_conversations")[0].metadata.items()}
    finally:
        process.terminate()
    counters = served.get("requests", served)
    return {"raw_s": raw_seconds, "cpu": own_cpu, "emulator_cpu": emulator_cpu, "raw_step_s": meta["wall_seconds"], "flatten_s": flat_seconds,
            "records": meta["records_written"], "requests": meta["requests"], "429s": meta["rate_limited_429s"],
            "jobs": counters.get("requests.submit_job", "?") if isinstance(counters, dict) else "?"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--days", type=int, default=5)
    parser.add_argument("--volume", type=int, default=5000)
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--jobs-at-once", type=int, help="GenesysResource.detail_jobs_at_once (default: its default)")
    parser.add_argument("--emulator-source", help="run the emulator from this checkout (compare pipelines on one emulator)")
    args = parser.parse_args()
    print("| days x conversations | raw step (materialize) | raw wall_seconds | CPU: pipeline / emulator | flatten step "
          "| records | requests | 429s | jobs |")
    print("|---|---|---|---|---|---|---|---|---|")
    for _ in range(args.repeat):
        tuning = {"detail_jobs_at_once": args.jobs_at_once} if args.jobs_at_once else {}
        r = measure(args.days, args.volume, args.emulator_source, tuning)
        print(f"| {args.days} x {args.volume:,} | {r['raw_s']:.1f} s | {r['raw_step_s']:.1f} s "
              f"| {r['cpu']:.1f} s / {r['emulator_cpu']:.1f} s | {r['flatten_s']:.1f} s "
              f"| {r['records']:,} | {r['requests']} | {r['429s']} | {r['jobs']} |", flush=True)


if __name__ == "__main__":
    main()
