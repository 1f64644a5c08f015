"""A range run's days extracted side by side (steps/extract_days.py), through Dagster and over HTTP against
the emulator: overlapping detail jobs within the org's limit, each day exactly as a run of it alone,
a failing day named, progress against the API's count, and detail jobs polled soon and then sparingly."""

from __future__ import annotations

import json
import re
import threading
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import dagster as dg
import httpx
import pytest

from genesys_pipeline.contracts.paths import (
    raw_lookups_path,
    raw_manifest_path,
    raw_records_path,
)
from genesys_pipeline.defs.raw_conversations import raw_conversations
from genesys_pipeline.genesys.errors import GenesysError
from genesys_pipeline.genesys.timestamps import format_interval
from genesys_pipeline.local.emulator import (
    DEMO_CLIENT_ID,
    DEMO_CLIENT_SECRET,
    EmulatorConfig,
    EmulatorServer,
)
from genesys_pipeline.resources.working_storage import WorkingStorage
from genesys_pipeline.steps.extract import ExtractionError
from genesys_pipeline.steps.extract_days import Day, extract_days
from genesys_pipeline_tests.conftest import CLOCK, genesys_for
from genesys_pipeline_tests.test_raw_conversations import spoil_the_start_of

DAYS = ["2024-05-06", "2024-05-07", "2024-05-08"]
# Jobs that live about a second, so that the lifetimes of jobs submitted together visibly overlap.
SLOW_JOBS = dict(job_queued_seconds=0.5, job_pending_seconds=0.5)


class JobLog:
    """Each detail job's lifetime as the emulator sees it: from its submission to its last results page
    (or its cancellation)."""

    def __init__(self, emulator: EmulatorServer) -> None:
        store = emulator.app.jobs
        self.submitted: dict[str, float] = {}
        self.ended: dict[str, float] = {}
        self._lock = threading.Lock()
        submit, results, cancel = store.submit, store.results, store.cancel

        def logged_submit(body: dict[str, Any]) -> Any:
            job = submit(body)
            with self._lock:
                self.submitted[job.job_id] = time.monotonic()
            return job

        def logged_results(job_id: str, cursor: str | None, page_size: str | None) -> dict[str, Any]:
            page = results(job_id, cursor, page_size)
            if "cursor" not in page:
                with self._lock:
                    self.ended[job_id] = time.monotonic()
            return page

        def logged_cancel(job_id: str) -> None:
            cancel(job_id)
            with self._lock:
                self.ended.setdefault(job_id, time.monotonic())

        store.submit, store.results, store.cancel = logged_submit, logged_results, logged_cancel  # type: ignore[method-assign]

    def most_at_once(self) -> int:
        events = sorted([(t, 1) for t in self.submitted.values()] + [(t, -1) for t in self.ended.values()],
                        key=lambda event: (event[0], event[1]))  # fmt: skip
        alive = most = 0
        for _, change in events:
            alive += change
            most = max(most, alive)
        return most


def range_run(emulator: EmulatorServer, root: Path, days: list[str] = DAYS, **genesys: Any) -> dg.ExecuteInProcessResult:
    return dg.materialize(
        [raw_conversations],
        resources={"genesys": genesys_for(emulator, **genesys), "working_storage": WorkingStorage(root=str(root))},
        tags={"dagster/asset_partition_range_start": days[0], "dagster/asset_partition_range_end": days[-1]},
    )


def metadata(result: dg.ExecuteInProcessResult) -> dict[str, Any]:
    event = result.asset_materializations_for_node("raw_conversations")[0]
    return {key: value.value for key, value in event.metadata.items()}


def manifest_without_run(root: Path, day: str) -> dict[str, Any]:
    manifest = json.loads((root / raw_manifest_path(day)).read_text())
    for key in ("run_id", "extracted_at"):
        manifest.pop(key)
    return manifest


@pytest.mark.slow
def test_a_range_run_reads_its_days_side_by_side_each_exactly_as_a_run_of_that_day_alone(start_emulator, tmp_path):
    emulator = start_emulator(**SLOW_JOBS)
    jobs = JobLog(emulator)
    result = range_run(emulator, tmp_path / "range")
    assert result.success
    # One job a day (300 conversations), and their lifetimes overlap: the days did not wait for each other.
    assert len(jobs.submitted) == 3 and jobs.most_at_once() >= 2
    meta = metadata(result)
    assert meta["records_written"] == 900 and meta["detail_jobs_at_once"] >= 2
    assert meta["rate_limited_429s"] == 0 and meta["job_slot_waits"] == 0
    assert meta["lookup_sizes"]["users"] > 0 and "| 2024-05-07 | jobs | 300 |" in meta["partitions"]
    for day in DAYS:  # the same emulator, its clock frozen: a run of the day alone is the reference
        assert dg.materialize([raw_conversations], partition_key=day, resources={
            "genesys": genesys_for(emulator), "working_storage": WorkingStorage(root=str(tmp_path / "alone"))}).success
        for path in (raw_records_path, raw_lookups_path):
            assert (tmp_path / "range" / path(day)).read_bytes() == (tmp_path / "alone" / path(day)).read_bytes()
        assert manifest_without_run(tmp_path / "range", day) == manifest_without_run(tmp_path / "alone", day)


@pytest.mark.parametrize("org_slots, limits_forbidden, setting, expected", [
    (2, False, 4, 2),  # the org's limit, read from the limits endpoint, binds
    (5, True, 1, 1),  # the limits cannot be read: the setting binds
], ids=["org-limit", "setting"])  # fmt: skip
def test_the_jobs_at_once_stay_within_the_orgs_limit_or_the_setting(
    start_emulator, tmp_path, org_slots, limits_forbidden, setting, expected
):
    emulator = start_emulator(max_concurrent_jobs=org_slots, limits_forbidden=limits_forbidden, **SLOW_JOBS)
    jobs = JobLog(emulator)
    days = [*DAYS, "2024-05-09"]
    meta = metadata(range_run(emulator, tmp_path, days, detail_jobs_at_once=setting))
    assert meta["records_written"] == 1200 and len(jobs.submitted) == 4
    assert jobs.most_at_once() == expected == meta["detail_jobs_at_once"]
    # The client never caused the concurrent-jobs 429 itself.
    assert meta["job_slot_waits"] == 0 and emulator.app.stats.snapshot().get("status.429", 0) == 0


def test_a_failing_day_fails_the_range_run_naming_it_and_no_day_is_left_half_written(start_emulator, tmp_path):
    emulator = start_emulator(**SLOW_JOBS)
    victim = emulator.app.conversations_started(datetime(2024, 5, 7).date())[7]
    spoil_the_start_of(emulator, victim, "yesterday")
    with pytest.raises(ExtractionError) as raised:
        range_run(emulator, tmp_path)
    assert f"Conversation {victim} " in str(raised.value)
    assert any("Partition 2024-05-07 failed" in note for note in getattr(raised.value, "__notes__", [])), raised.value
    assert not (tmp_path / raw_records_path("2024-05-07")).exists()
    for day in ("2024-05-06", "2024-05-08"):  # stopped (nothing written) or finished (complete, with its manifest)
        if (tmp_path / raw_records_path(day)).exists():
            assert json.loads((tmp_path / raw_manifest_path(day)).read_text())["records"] == 300
    folders = [p for day in DAYS if (tmp_path / raw_records_path(day)).parent.exists()
               for p in (tmp_path / raw_records_path(day)).parent.iterdir()]  # fmt: skip
    assert not [p for p in folders if p.name.startswith(".partial")]
    assert emulator.app.stats.snapshot().get("requests.submit_job", 0) <= 3


PROGRESS_LINE = re.compile(r"^2024-05-08: (\d[\d,]*) of ~(\d+) conversations \((\d+) %\)$")


def test_progress_is_logged_against_the_apis_estimate_at_most_every_tenth(start_emulator, tmp_path):
    emulator = start_emulator()
    lines: list[str] = []
    with genesys_for(emulator).get_client() as client:
        extract_days(client, WorkingStorage(root=str(tmp_path)), [Day("2024-05-08", *day_bounds("2024-05-08"))],
                     "run-1", job_result_cap=400_000, log=lines.append, progress_seconds=0, progress_every=10)  # fmt: skip
    progress = [PROGRESS_LINE.match(line) for line in lines if PROGRESS_LINE.match(line)]
    written = [int(match.group(1).replace(",", "")) for match in progress]
    # The estimate is the details query's totalHits (approximate: 305 for the day's 300); a line comes
    # once the day has gained 10 % of it since the last one.
    estimate = int(progress[0].group(2))
    assert 290 <= estimate <= 310 and 5 <= len(written) <= 10, lines
    assert all(later - earlier >= estimate / 10 for earlier, later in zip([0, *written], written))
    assert [int(m.group(3)) for m in progress] == [round(100 * min(n / estimate, 1)) for n in written]
    # The time rule: with the default 10 s between lines, a day read in a second logs no progress line.
    quiet: list[str] = []
    with genesys_for(emulator).get_client() as client:
        extract_days(client, WorkingStorage(root=str(tmp_path)), [Day("2024-05-08", *day_bounds("2024-05-08"))],
                     "run-2", job_result_cap=400_000, log=quiet.append, progress_every=10)  # fmt: skip
    assert not [line for line in quiet if PROGRESS_LINE.match(line)] and any("300 conversations via jobs" in q for q in quiet)


def day_bounds(day: str) -> tuple[datetime, datetime]:
    start = datetime.fromisoformat(day).replace(tzinfo=timezone.utc)
    return start, start.replace(day=start.day + 1)


@pytest.mark.slow
def test_the_emulator_enforces_the_platforms_limits_by_default():
    """No option set: five detail jobs at once (the sixth is the concurrent-jobs 429) and 300 requests a
    minute per token (the 301st is the rate limit's 429), as the real service has them."""
    defaults = EmulatorConfig()
    assert (defaults.max_concurrent_jobs, defaults.rate_limit_per_minute, defaults.fault_rate) == (5, 300, 0)
    with EmulatorServer(EmulatorConfig(now=CLOCK, clock_rate=0.0, daily_volume=50)) as emulator:
        http = httpx.Client(base_url=emulator.base_url, timeout=30)
        token = http.post("/oauth/token", auth=(DEMO_CLIENT_ID, DEMO_CLIENT_SECRET),
                          data={"grant_type": "client_credentials"}).json()["access_token"]  # fmt: skip
        http.headers["Authorization"] = f"Bearer {token}"
        body = {"interval": format_interval(*day_bounds("2024-05-08"))}
        answers = [http.post("/api/v2/analytics/conversations/details/jobs", json=body) for _ in range(6)]
        assert [a.status_code for a in answers] == [202] * 5 + [429]
        assert "concurrent" in answers[-1].json()["message"] and int(answers[-1].headers["Retry-After"]) >= 1
        statuses = [http.get("/api/v2/analytics/conversations/details/jobs/availability").status_code
                    for _ in range(300)]  # fmt: skip
        assert statuses.count(200) == 300 - 6 and statuses[-6:] == [429] * 6


def test_lookups_that_cannot_be_read_fail_the_run_and_leave_each_days_files_as_they_were(start_emulator, tmp_path):
    emulator = start_emulator()
    storage = WorkingStorage(root=str(tmp_path))
    days = [Day(day, *day_bounds(day)) for day in DAYS[:2]]
    with genesys_for(emulator).get_client() as client:
        extract_days(client, storage, days, "run-1", job_result_cap=400_000)
    before = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    with genesys_for(emulator).get_client() as client:
        def broken(*_: Any, **__: Any) -> Any:
            raise GenesysError("GET /api/v2/authorization/divisions page 1: the listing broke")

        client.iter_divisions = broken  # type: ignore[method-assign]
        with pytest.raises(GenesysError, match="the listing broke") as raised:
            extract_days(client, storage, days, "run-2", job_result_cap=400_000)
    assert "Reading the names of queues, users, wrap-up codes and divisions failed" in raised.value.__notes__[0]
    assert {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()} == before
