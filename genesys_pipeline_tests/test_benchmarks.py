"""The backfill benchmark (benchmarks/backfill.py) runs end to end in its smallest case and reports
what it promises: the wall time, the API floor, CPU per process, the limit and the ratio, 429s, and a
breakdown in which every stage of the chain appears."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
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


def _processes_marked(marker: str) -> list[int]:
    """Our processes whose environment holds the marker: the benchmark's and everything it started."""
    found = []
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and marker.encode() in (entry / "environ").read_bytes():
                found.append(int(entry.name))
        except OSError:  # gone, or not ours
            continue
    return found


def _command_line(pid: int) -> str:
    try:
        return (Path("/proc") / str(pid) / "cmdline").read_bytes().replace(b"\0", b" ").decode()[:200]
    except OSError:
        return "(gone)"


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_a_terminated_benchmark_stops_the_services_it_started(tmp_path: Path) -> None:
    """`timeout` (SIGTERM) ends the benchmark as Ctrl-C does: the emulator, the stand-ins and `dagster dev`
    (each in a session of its own, which the signal does not reach) are stopped, not left running."""
    marker = f"BACKFILL_BENCHMARK_TEST={uuid.uuid4().hex}"
    name, value = marker.split("=")
    command = [sys.executable, str(ROOT / "benchmarks" / "backfill.py"), "--days", "1", "--per-day", "50"]
    benchmark = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                                 env=dict(os.environ, **{name: value}))  # fmt: skip
    try:
        for line in benchmark.stderr:  # type: ignore[union-attr]
            if "Dagster is ready" in line:
                break
        else:
            pytest.fail(f"the benchmark ended before Dagster was ready (exit {benchmark.wait()})")
        services = [pid for pid in _processes_marked(marker) if pid != benchmark.pid]
        assert len(services) >= 4, services  # emulator, stand-ins, dagster dev and what it started
        benchmark.send_signal(signal.SIGTERM)
        assert benchmark.wait(timeout=180) == 128 + signal.SIGTERM, benchmark.stderr.read()[-3000:]  # type: ignore[union-attr]
        deadline = time.monotonic() + 30
        while _processes_marked(marker) and time.monotonic() < deadline:
            time.sleep(0.5)
        left = {pid: _command_line(pid) for pid in _processes_marked(marker)}
        assert left == {}
    finally:
        if benchmark.poll() is None:
            benchmark.kill()
        for pid in _processes_marked(marker):
            os.kill(pid, signal.SIGKILL)
