"""The README's backfill table from `benchmarks/backfill.py` results (its `--json` output, or the
`result.json` that `--keep DIR` leaves), one row per result:

    .venv/bin/python benchmarks/backfill_summary.py before:/tmp/a/result.json after:/tmp/b/result.json
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

HEADER = (
    "| case | version | wall s | API floor s | CPU s / cores | limit s | wall / limit | 429s | work s: raw, flatten, "
    "S3, Snowflake, check | pool wait s | step start-up s | runs: queued, start, end s | load |\n"
    "|---|---|---|---|---|---|---|---|---|---|---|---|---|"
)


def row(label: str, result: dict) -> str:
    r, stages = result, result["stages"]
    case = f"{r['mode']} {r['days']} x {r['per_day']:,} ({r['runs']} run{'s' * (r['runs'] != 1)})"
    work = ", ".join(f"{stages[s]['work_seconds']:.0f}" if s in stages else "-" for s in ("raw", "flatten", "S3", "Snowflake", "check"))
    startup = sum(s["startup_seconds"] for s in stages.values())
    pool_wait = sum(s.get("pool_wait_seconds", 0) for s in stages.values())
    load = r.get("machine_load_at_launch_and_end", ["?", "?"])
    return (
        f"| {case} | {label} | {r['wall_seconds']:.0f} | {r['api_floor_seconds']} ({r['api_floor_requests']} req.) | "
        f"{r['cpu_seconds']:.0f} / {r['cores']} = {r['cpu_over_cores_seconds']:.0f} | {r['limit_seconds']:.0f} | "
        f"**{r['wall_over_limit']}** | {r['429s']} | {work} | {pool_wait:.0f} | {startup:.0f} | {r['queued_seconds']:.0f}, "
        f"{r['run_startup_seconds']:.0f}, {r['run_end_seconds']:.0f} | {load[0]}-{load[1]} |"
    )


def main(arguments: list[str]) -> None:
    if not arguments:
        sys.exit(__doc__)
    print(HEADER)
    for argument in arguments:
        label, _, path = argument.rpartition(":")
        print(row(label or "-", json.loads(Path(path).read_text())))


if __name__ == "__main__":
    main(sys.argv[1:])
