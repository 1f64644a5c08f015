"""The backfill benchmark (benchmarks/backfill.py) runs end to end in its smallest case and reports
what it promises: the wall time, the API floor, CPU per process, the limit and the ratio, 429s, and a
breakdown in which every stage of the chain appears."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
STAGES = {"raw", "flatten", "S3", "Snowflake", "check"}


@pytest.mark.slow
@pytest.mark.timeout(600)  # ~1.5-3 min: `dagster dev` starting and a run, on 2 busy cores
def test_the_backfill_benchmark_smallest_case_reports_sane_figures(tmp_path: Path) -> None:
    command = [sys.executable, str(ROOT / "benchmarks" / "backfill.py"), "--days", "1", "--per-day", "200", "--json",
               "--keep", str(tmp_path / "benchmark")]  # fmt: skip
    finished = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=590)
    assert finished.returncode == 0, finished.stderr[-3000:]
    result = json.loads(finished.stdout.strip().splitlines()[-1])

    # The run really happened through Dagster: one range run of the day, both checks evaluated and passed.
    assert (result["mode"], result["days"], result["per_day"]) == ("range", 1, 200)
    assert result["run_statuses"] == ["SUCCESS"] and result["runs"] == 1
    assert result["check_results"] >= 2 and result["failed_checks"] == 0  # each check, and its day's own record
    assert 150 <= result["conversations"] <= 250  # the emulator's day: about the volume asked for

    # The API floor counts what a perfect extractor needs, and the pipeline made at least that many requests.
    floor = result["api_floor_breakdown"]
    assert floor["token"] == 1 and floor["result pages"] == 1 and floor["listing pages"] >= 4
    assert result["api_floor_requests"] == sum(floor.values())
    assert result["requests_made"] >= result["api_floor_requests"]
    assert result["api_floor_seconds"] == pytest.approx(result["api_floor_requests"] / 300 * 60, abs=0.1)
    assert result["429s"] == 0

    # CPU of every kind of process was seen, and the limit and ratio follow from the figures.
    cpu = result["cpu_by_process"]
    assert {"emulator", "stand-ins", "webserver", "daemon", "code server", "run workers"} <= set(cpu), cpu
    # The steps run in the run worker (in-process) or in step processes (multiprocess): either way they cost CPU.
    assert cpu["run workers"] + cpu.get("step processes", 0.0) > 1.0, cpu
    assert result["cpu_seconds"] == pytest.approx(sum(cpu.values()), abs=0.5)
    limit = max(result["api_floor_seconds"], result["cpu_over_cores_seconds"])
    assert result["limit_seconds"] == pytest.approx(limit, abs=0.1)
    assert result["wall_seconds"] > 0 and result["wall_over_limit"] > 0
    assert result["wall_over_limit"] == pytest.approx(result["wall_seconds"] / result["limit_seconds"], rel=0.02)

    # Every stage has its step(s), each with work and start-up time; the run's overhead is there too.
    assert set(result["stages"]) == STAGES
    for name, stage in result["stages"].items():
        assert stage["steps"] == (2 if name == "check" else 1), (name, stage)
        assert stage["work_seconds"] > 0 and stage["startup_seconds"] >= 0, (name, stage)
    assert result["run_startup_seconds"] > 0 and result["queued_seconds"] > 0

    # The tables print the same figures.
    printed = subprocess.run([sys.executable, "-c", "import json, sys; sys.path.insert(0, 'benchmarks'); "
                              "from backfill import table; print(table(json.loads(sys.stdin.read())))"],
                             cwd=ROOT, input=json.dumps(result), capture_output=True, text=True, check=True).stdout  # fmt: skip
    for field in ("wall, launch to last check result", "API floor", "physical limit", "wall / limit", "429s served"):
        assert field in printed
    assert f"| {result['wall_over_limit']} |" in printed
