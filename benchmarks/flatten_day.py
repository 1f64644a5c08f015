"""Benchmark: flatten one day of raw conversations to Parquet, against the cost of just parsing it.

    .venv/bin/python benchmarks/flatten_day.py                      # 100,000 conversations (and 10,000)
    .venv/bin/python benchmarks/flatten_day.py --conversations 20000 --repeat 3

Setup (not timed): the emulator's synthetic contact centre renders N complete conversations of one
day, with participant attributes as detail jobs return them, into a gzip JSON-lines file exactly like
`raw_conversations` writes (`orjson.dumps` per line, gzip level 1); the first 10,000 lines also make a
10,000-conversation file.

Measured, each in a fresh subprocess pinned to one CPU (Arrow's thread pools set to one thread), so that
peak RSS (`ru_maxrss`, a per-process high-water mark) belongs to that step alone:
- `parse`: the floor, reading the same file (gzip + `orjson.loads` per line, through the same reader
  the asset uses) and nothing else;
- `flatten`: the real code path, `read_raw_records` -> `flatten` -> `ParquetSink`, six Parquet files.
Reported as JSON lines: conversations/s of both, the ratio flatten/parse (target: within 3x), and
peak RSS of the flatten step for 10,000 vs 100,000 conversations (memory must not grow with the day).
"""

from __future__ import annotations

import argparse
import contextlib
import gzip
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from datetime import date, datetime, timezone
from pathlib import Path

DAY = date(2024, 5, 8)
AS_OF = datetime(2024, 5, 12, tzinfo=timezone.utc)  # days after: every conversation of DAY has ended
SEED = 7
SMALL = 10_000


def generate(directory: Path, conversations: int) -> tuple[Path, Path, Path]:
    """Write `raw.jsonl.gz` (N conversations), `raw-10k.jsonl.gz` (its first 10,000) and `lookups.json`."""
    import orjson

    from genesys_pipeline.local.emulator.synthetic import ContactCentre

    centre = ContactCentre(SEED, conversations)
    as_of_ms = int(AS_OF.timestamp() * 1000)
    big, small = directory / "raw.jsonl.gz", directory / "raw-10k.jsonl.gz"
    with gzip.GzipFile(big, "wb", compresslevel=1, mtime=0) as out_big, gzip.GzipFile(
        small, "wb", compresslevel=1, mtime=0
    ) as out_small:
        for number, plan in enumerate(centre.day_plans(DAY)):
            line = orjson.dumps(centre.render(plan, as_of_ms, with_attributes=True)) + b"\n"
            out_big.write(line)
            if number < SMALL:
                out_small.write(line)
    lookups = directory / "lookups.json"
    lookups.write_bytes(orjson.dumps({
        "queues": centre.queues, "wrapup_codes": centre.wrapup_codes,
        "users": centre.users, "divisions": centre.divisions,
    }))  # fmt: skip
    return big, small, lookups


def _one_core() -> None:
    import pyarrow as pa

    with contextlib.suppress(AttributeError, OSError):
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})
    pa.set_cpu_count(1)
    pa.set_io_thread_count(1)


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def measure(mode: str, raw: Path, lookups_path: Path, out_dir: Path) -> dict:
    """One measurement in this process (the parent runs it in a fresh subprocess)."""
    import orjson

    from genesys_pipeline.steps.flatten import (
        Lookups,
        ParquetSink,
        flatten,
        read_raw_records,
    )

    _one_core()
    rss_before_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    result: dict = {"mode": mode, "input": raw.name, "input_bytes": raw.stat().st_size}
    if mode == "parse":
        wall, cpu = time.perf_counter(), _cpu_seconds()
        count = 0
        with open(raw, "rb") as handle:
            for _ in read_raw_records(handle, str(raw)):
                count += 1
        wall, cpu = time.perf_counter() - wall, _cpu_seconds() - cpu
    else:
        listings = orjson.loads(lookups_path.read_bytes())
        lookups = Lookups.from_listings(**listings)
        out_dir.mkdir(parents=True, exist_ok=True)

        def open_output(table: str):
            return open(out_dir / f"{table}.parquet", "wb")

        wall, cpu = time.perf_counter(), _cpu_seconds()
        with open(raw, "rb") as handle, ParquetSink(open_output) as sink:
            report = flatten(
                read_raw_records(handle, str(raw)), lookups, sink, partition_date=DAY, run_id="benchmark",
                extracted_at=AS_OF, source=str(raw),
            )  # fmt: skip
        wall, cpu = time.perf_counter() - wall, _cpu_seconds() - cpu
        count = report.conversations
        result["rows"] = report.rows
        result["parquet_bytes"] = sum(p.stat().st_size for p in out_dir.glob("*.parquet"))
    result.update(
        conversations=count,
        wall_seconds=round(wall, 3),
        cpu_seconds=round(cpu, 3),
        conversations_per_second=round(count / wall),
        rss_after_imports_mb=round(rss_before_kb / 1024, 1),
        peak_rss_mb=round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    )
    return result


def in_subprocess(mode: str, raw: Path, lookups: Path, out_dir: Path) -> dict:
    command = [sys.executable, __file__, "--measure", mode, "--raw", str(raw), "--lookups", str(lookups),
               "--out", str(out_dir)]  # fmt: skip
    completed = subprocess.run(command, check=True, capture_output=True, text=True)
    return json.loads(completed.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--conversations", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=1, help="runs per measurement; the fastest counts")
    parser.add_argument("--measure", choices=("parse", "flatten"), help=argparse.SUPPRESS)
    parser.add_argument("--raw", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--lookups", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.measure:
        print(json.dumps(measure(args.measure, args.raw, args.lookups, args.out)))
        return 0

    with tempfile.TemporaryDirectory(prefix="flatten-bench-") as scratch:
        directory = Path(scratch)
        started = time.perf_counter()
        big, small, lookups = generate(directory, args.conversations)
        print(json.dumps({"setup": "generated", "conversations": args.conversations,
                          "raw_bytes": big.stat().st_size,
                          "seconds": round(time.perf_counter() - started, 1)}), flush=True)  # fmt: skip
        results: dict[tuple[str, str], dict] = {}
        inputs = [small, big] if args.conversations > SMALL else [big]
        for raw in inputs:
            for mode in ("parse", "flatten"):
                runs = [in_subprocess(mode, raw, lookups, directory / f"out-{raw.stem}") for _ in range(args.repeat)]
                best = min(runs, key=lambda r: r["wall_seconds"])
                best["peak_rss_mb"] = max(r["peak_rss_mb"] for r in runs)
                results[(raw.name, mode)] = best
                print(json.dumps(best), flush=True)
        for raw in inputs:
            parse, flat = results[(raw.name, "parse")], results[(raw.name, "flatten")]
            print(json.dumps({
                "summary": raw.name,
                "conversations": flat["conversations"],
                "parse_conversations_per_second": parse["conversations_per_second"],
                "flatten_conversations_per_second": flat["conversations_per_second"],
                "flatten_over_parse_ratio": round(flat["wall_seconds"] / parse["wall_seconds"], 2),
                "target_ratio": 3.0,
                "flatten_peak_rss_mb": flat["peak_rss_mb"],
                "parse_peak_rss_mb": parse["peak_rss_mb"],
            }), flush=True)  # fmt: skip
        if len(inputs) == 2:
            small_rss = results[(small.name, "flatten")]["peak_rss_mb"]
            big_rss = results[(big.name, "flatten")]["peak_rss_mb"]
            print(json.dumps({
                "summary": "memory", "flatten_peak_rss_mb_10k": small_rss,
                f"flatten_peak_rss_mb_{args.conversations // 1000}k": big_rss,
                "growth": round(big_rss / small_rss, 2),
            }))  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
