"""Benchmark: extract one past day from the emulator at the default rate limit.

    .venv/bin/python benchmarks/extract_day.py        # 10,000 and 100,000 at 300/min, 100,000 at 30/min
    .venv/bin/python benchmarks/extract_day.py --volume 10000 --single --rate-limit 300

The emulator runs in its own process (its CPU and memory are not the pipeline's). Its caches for the
days a job reads are warmed before the clock starts: we time our extraction, not the emulator's
data generation. Reported: wall time against the floor the rate limit allows (the minimum requests
for the day / the budget per minute), requests made, 429s received, peak RSS of the extracting
process. `--single` measures one size in this process; without it, each size runs in a fresh
subprocess so that peak RSS (a per-process high-water mark) is comparable.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone

import httpx

PAST_DAY = datetime(2024, 5, 8, tzinfo=timezone.utc)
CLOCK = "2024-05-10T12:00:00Z"
DEFAULT_RATE_LIMIT = 300


def start_emulator(volume: int, rate_limit: int) -> tuple[subprocess.Popen, str]:
    command = [sys.executable, "-m", "genesys_pipeline.local.emulator", "--port", "0", "--daily-volume", str(volume),
               "--now", CLOCK, "--clock-rate", "0", "--rate-limit-per-minute", str(rate_limit)]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    banner = process.stdout.readline()
    base_url = banner.split(" on ")[1].split(" ")[0]
    for days_back in (2, 1, 0):  # warm the plan caches of the days an overlap job reads
        day = PAST_DAY - timedelta(days=days_back)
        interval = f"{day:%Y-%m-%dT%H:%M:%SZ}/{day + timedelta(days=1):%Y-%m-%dT%H:%M:%SZ}"
        httpx.get(f"{base_url}/emulator/truth/conversations", params={"interval": interval}, timeout=600)
    return process, base_url


def _cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process, from /proc (Linux)."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def measure(volume: int, rate_limit: int) -> dict:
    from genesys_pipeline.local.emulator import DEMO_CLIENT_ID, DEMO_CLIENT_SECRET
    from genesys_pipeline.resources.genesys import GenesysResource
    from genesys_pipeline.resources.working_storage import WorkingStorage
    from genesys_pipeline.steps.extract import extract_window

    process, base_url = start_emulator(volume, rate_limit)
    try:
        genesys = GenesysResource(api_base_url=base_url, login_base_url=base_url, client_id=DEMO_CLIENT_ID,
                                  client_secret=DEMO_CLIENT_SECRET, job_poll_interval_seconds=0.5,
                                  requests_per_minute=rate_limit)
        with tempfile.TemporaryDirectory() as folder:
            storage = WorkingStorage(root=folder)
            emulator_cpu_before = _cpu_seconds(process.pid)
            own_cpu_before = time.process_time()
            started = time.monotonic()
            with genesys.get_client() as client:
                report = extract_window(client, PAST_DAY, PAST_DAY + timedelta(days=1),
                                        lambda: storage.writer("day.jsonl.gz"), job_result_cap=genesys.job_result_cap)
                stats = client.stats.snapshot()
            wall = time.monotonic() - started
            own_cpu = time.process_time() - own_cpu_before
            emulator_cpu = _cpu_seconds(process.pid) - emulator_cpu_before
            size = os.path.getsize(os.path.join(folder, "day.jsonl.gz"))
        served = httpx.get(f"{base_url}/emulator/stats").json()
    finally:
        process.terminate()
        process.wait(timeout=30)
    # The fewest API requests a day can cost on the jobs path: availability, one totals query,
    # one submit, one status poll and ceil(volume / 1000) result pages.
    minimum_requests = 4 + math.ceil(volume / genesys.job_page_size)
    floor = minimum_requests / rate_limit * 60
    return {
        "rate_limit_per_minute": rate_limit,
        "conversations": report.records_written,
        "expected": volume,
        "path": report.path,
        "wall_seconds": round(wall, 2),
        "floor_seconds": round(floor, 2),
        "wall_over_floor": round(wall / floor, 3),
        "requests": stats["requests"],
        "minimum_requests": minimum_requests,
        "429s_received": stats["rate_limited"],
        "429s_served_by_emulator": served.get("rate_limited", 0),
        "throttle_waits": stats["throttle_waits"],
        "pipeline_cpu_seconds": round(own_cpu, 2),
        "emulator_cpu_seconds": round(emulator_cpu, 2),
        "gzip_bytes": size,
        "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--volume", type=int, default=100_000)
    parser.add_argument("--rate-limit", type=int, default=DEFAULT_RATE_LIMIT, help="requests per minute")
    parser.add_argument("--single", action="store_true", help="measure one size in this process")
    args = parser.parse_args()
    if args.single:
        print(json.dumps(measure(args.volume, args.rate_limit)))
        return
    # Each size in its own process (peak RSS is per process); then the largest size once more with
    # a budget low enough that the rate limit, not this 2-core machine's CPU, is what binds.
    runs = [(volume, args.rate_limit) for volume in sorted({10_000, args.volume})]
    runs.append((args.volume, args.rate_limit // 10))
    results = []
    for volume, rate_limit in runs:
        command = [sys.executable, __file__, "--single", "--volume", str(volume), "--rate-limit", str(rate_limit)]
        output = subprocess.run(command, capture_output=True, text=True, check=True)
        results.append(json.loads(output.stdout.strip().splitlines()[-1]))
    for result in results:
        print(json.dumps(result))


if __name__ == "__main__":
    main()
