"""`raw_conversations` materialized through Dagster against the emulator over HTTP."""

from __future__ import annotations

import gzip
import json
import re
from datetime import date, datetime, timezone
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import dagster as dg
import pytest

from genesys_pipeline.contracts.paths import (
    raw_lookups_path,
    raw_manifest_path,
    raw_records_path,
)
from genesys_pipeline.defs.raw_conversations import raw_conversations
from genesys_pipeline.local.emulator import DEMO_CLIENT_SECRET, EmulatorServer
from genesys_pipeline.resources.working_storage import WorkingStorage
from genesys_pipeline.steps.extract import ExtractionError, extract_window
from genesys_pipeline_tests.conftest import CLOCK, genesys_for

PAST_DAY = "2024-05-08"  # before the watermark (clock - 6 h): detail jobs
TODAY = "2024-05-10"  # after it: the details query, with ongoing conversations

# The emulators come from conftest.py's `start_emulator` (seed 7, 300 a day, CLOCK, frozen).


def materialize(emulator: EmulatorServer, root: Path, partition: str, **genesys: Any) -> dg.ExecuteInProcessResult:
    result = dg.materialize(
        [raw_conversations],
        partition_key=partition,
        resources={"genesys": genesys_for(emulator, **genesys), "working_storage": WorkingStorage(root=str(root))},
    )
    assert result.success
    return result


def written_ids(root: Path, partition: str) -> list[str]:
    with gzip.open(root / raw_records_path(partition), "rt", encoding="utf-8") as lines:
        return [json.loads(line)["conversationId"] for line in lines]


def assert_each_once(ids: list[str], expected: list[str]) -> None:
    """Every expected conversation exactly once, in any order: those still open at the watermark (e.g.
    email open for days) are read again from the live query and written after the others."""
    assert len(ids) == len(set(ids)) and sorted(ids) == sorted(expected)


def metadata(result: dg.ExecuteInProcessResult) -> dict[str, Any]:
    event = result.asset_materializations_for_node("raw_conversations")[0]
    return {key: value.value for key, value in event.metadata.items()}


def test_past_day_arrives_exactly_once_through_jobs(start_emulator, tmp_path):
    emulator = start_emulator()
    result = materialize(emulator, tmp_path, PAST_DAY)
    assert_each_once(written_ids(tmp_path, PAST_DAY), emulator.app.conversations_started(date(2024, 5, 8)))
    meta = metadata(result)
    assert meta["extraction_path"] == "jobs" and meta["records_written"] == 300
    # The API's own count is the details query's totalHits, which is approximate: 305 for this day's 300.
    assert meta["api_reported"] == 305
    assert meta["rate_limited_429s"] == 0 and meta["requests"] > 0
    manifest = json.loads((tmp_path / raw_manifest_path(PAST_DAY)).read_text())
    assert manifest["records"] == 300 and manifest["files"] == [raw_records_path(PAST_DAY)]
    assert manifest["extraction"]["api_reported"] == 305
    assert manifest["extraction"]["api_count_note"] == "details-query totalHits for UTC 2024-05-08, approximate"
    assert emulator.app.stats.snapshot().get("requests.submit_job", 0) >= 1


def test_the_orgs_limits_and_the_waits_for_job_slots_are_in_the_metadata(start_emulator, tmp_path):
    # Another integration holds the org's detail-job slots for the first 1.5 s of submitting.
    emulator = start_emulator(max_concurrent_jobs=4, jobs_busy_seconds=1.5)
    meta = metadata(materialize(emulator, tmp_path, PAST_DAY))
    assert_each_once(written_ids(tmp_path, PAST_DAY), emulator.app.conversations_started(date(2024, 5, 8)))
    assert meta["analytics_limits"]["details.jobs.concurrent.access.max"] == 4
    assert meta["job_slot_waits"] >= 1 and meta["job_slot_wait_seconds"] >= 1.0


def test_limits_the_oauth_client_may_not_read_are_noted_and_the_run_goes_on(start_emulator, tmp_path):
    emulator = start_emulator(limits_forbidden=True)
    meta = metadata(materialize(emulator, tmp_path, PAST_DAY))
    assert meta["records_written"] == 300 and meta["job_slot_waits"] == 0
    assert meta["analytics_limits"].startswith("not readable (HTTP 403 not.authorized")
    assert "the OAuth client may lack the permission" in meta["analytics_limits"]


def test_today_arrives_through_jobs_and_the_query_with_ongoing_marked(start_emulator, tmp_path):
    emulator = start_emulator()
    meta = metadata(materialize(emulator, tmp_path, TODAY))
    ids = written_ids(tmp_path, TODAY)
    assert len(ids) == len(set(ids))
    assert sorted(ids) == sorted(emulator.app.conversations_started(date(2024, 5, 10)))
    # Jobs up to the watermark (06:00), the query newest-first after it.
    assert meta["extraction_path"] == "jobs+query" and meta["ongoing_conversations"] > 0
    assert meta["api_reported"] == 57 and len(ids) == 56  # totalHits: approximate


@pytest.mark.parametrize("partition", [PAST_DAY, TODAY])
def test_faults_do_not_change_what_arrives(start_emulator, tmp_path, partition):
    # Late in the day and a larger volume: enough requests that faults really are injected.
    late = dict(now=datetime(2024, 5, 10, 23, 0, tzinfo=timezone.utc), daily_volume=800)
    clean, faulty = start_emulator(**late), start_emulator(fault_rate=0.3, **late)
    materialize(clean, tmp_path / "clean", partition)
    meta = metadata(materialize(faulty, tmp_path / "faulty", partition))
    assert written_ids(tmp_path / "faulty", partition) == written_ids(tmp_path / "clean", partition)
    assert meta["retries"] > 0
    assert sum(v for k, v in faulty.app.stats.snapshot().items() if k.startswith("faults.")) > 0


def test_a_day_larger_than_the_job_cap_arrives_whole(start_emulator, tmp_path):
    emulator = start_emulator(job_result_cap=90)
    meta = metadata(materialize(emulator, tmp_path, PAST_DAY, job_result_cap=90))
    assert_each_once(written_ids(tmp_path, PAST_DAY), emulator.app.conversations_started(date(2024, 5, 8)))
    assert meta["extraction_path"] == "jobs"
    assert emulator.app.stats.snapshot()["requests.submit_job"] >= 4  # 300 / (0.8 * 90) pieces


def test_jobs_sized_from_an_under_estimated_total_still_read_the_whole_day(start_emulator, tmp_path):
    """2024-05-07's totalHits is 291 for its 300 conversations. With a job cap of 370 (80 %: 296), the
    estimate asks for one job where the true count would ask for two: the fill target's headroom takes
    the error, the one job stays under the cap, and every conversation arrives once."""
    emulator = start_emulator(job_result_cap=370)
    meta = metadata(materialize(emulator, tmp_path, "2024-05-07", job_result_cap=370))
    assert_each_once(written_ids(tmp_path, "2024-05-07"), emulator.app.conversations_started(date(2024, 5, 7)))
    assert meta["records_written"] == 300 and meta["api_reported"] == 291
    assert emulator.app.stats.snapshot()["requests.submit_job"] == 1


def test_a_day_larger_than_the_query_cap_arrives_whole(start_emulator, tmp_path):
    late = datetime(2024, 5, 10, 23, 0, tzinfo=timezone.utc)
    emulator = start_emulator(now=late, query_pagination_cap=200)
    started = emulator.app.conversations_started(date(2024, 5, 10))
    assert len(started) > 200
    materialize(emulator, tmp_path, TODAY, query_result_cap=200)
    assert sorted(written_ids(tmp_path, TODAY)) == sorted(started)


def test_token_expiring_mid_run_is_replaced(start_emulator, tmp_path):
    emulator = start_emulator(token_lifetime_seconds=1, job_queued_seconds=0.8, job_pending_seconds=0.8)
    materialize(emulator, tmp_path, PAST_DAY)
    assert_each_once(written_ids(tmp_path, PAST_DAY), emulator.app.conversations_started(date(2024, 5, 8)))
    assert emulator.app.stats.snapshot()["requests.oauth_token"] >= 2


def test_rerun_replaces_the_partition_with_the_same_bytes(start_emulator, tmp_path):
    emulator = start_emulator()
    materialize(emulator, tmp_path, PAST_DAY)
    first = [(tmp_path / path(PAST_DAY)).read_bytes() for path in (raw_records_path, raw_lookups_path)]
    materialize(emulator, tmp_path, PAST_DAY)
    assert [(tmp_path / path(PAST_DAY)).read_bytes() for path in (raw_records_path, raw_lookups_path)] == first
    assert sorted(p.name for p in (tmp_path / raw_records_path(PAST_DAY)).parent.iterdir()) == [
        "conversations.jsonl.gz", "lookups.json.gz", "manifest.json"]


@pytest.mark.parametrize("partition_day", [date(2024, 5, 8), date(2024, 5, 10)])
def test_a_local_day_holds_exactly_that_local_day(start_emulator, tmp_path, partition_day):
    """A New York day spans two UTC days: both are read and only that local day's starts kept."""
    emulator = start_emulator()
    zone = ZoneInfo("America/New_York")
    start = datetime(partition_day.year, partition_day.month, partition_day.day, tzinfo=zone)
    end = datetime.fromordinal(partition_day.toordinal() + 1).replace(tzinfo=zone)
    storage = WorkingStorage(root=str(tmp_path))
    progress: list[int] = []
    with genesys_for(emulator).get_client() as client:
        report = extract_window(client, start, end, lambda: storage.writer("local.jsonl.gz"),
                                job_result_cap=400_000, on_progress=progress.append, progress_every=50)
    with gzip.open(tmp_path / "local.jsonl.gz", "rt", encoding="utf-8") as lines:
        records = [json.loads(line) for line in lines]
    now_ms = int(CLOCK.timestamp() * 1000) if "query" in report.path else int(report.data_availability_date.timestamp() * 1000)
    expected = [
        plan.conversation_id
        for day in (partition_day, date.fromordinal(partition_day.toordinal() + 1))
        for plan in emulator.app.centre.day_plans(day)
        if start.timestamp() * 1000 <= plan.start_ms < end.timestamp() * 1000 and plan.start_ms <= now_ms
    ]
    assert sorted(r["conversationId"] for r in records) == sorted(expected) and expected
    assert report.records_written == len(expected)
    # The query counts whole UTC days and jobs count nothing: no count of the API's own to compare with.
    assert report.api_reported is None and report.api_count_note.startswith("no independent count: ")
    assert progress == list(range(50, len(expected) + 1, 50))


@pytest.mark.parametrize("new_media_type", [False, True])
def test_hours_after_the_watermark_over_the_query_cap_are_read_from_both_ends(start_emulator, tmp_path, new_media_type):
    late = datetime(2024, 5, 10, 23, 0, tzinfo=timezone.utc)
    # newer_media_type: one conversation in 20 has a media type Genesys added after v269, in every response
    emulator = start_emulator(now=late, query_pagination_cap=250, data_availability_lag_seconds=22 * 3600,
                              newer_media_type="hologram" if new_media_type else "")  # fmt: skip
    started = emulator.app.conversations_started(date(2024, 5, 10))
    assert len(started) > 250
    # Page size 50 so the 250 cap is a whole number of pages, as 100,000 is of 100 on the real API.
    materialize(emulator, tmp_path, TODAY, query_result_cap=250, query_page_size=50)
    assert sorted(written_ids(tmp_path, TODAY)) == sorted(started)
    with gzip.open(tmp_path / raw_records_path(TODAY), "rt") as raw:
        media = {s["mediaType"] for line in raw for p in json.loads(line)["participants"] for s in p["sessions"]}
    assert ("hologram" in media) == new_media_type


def test_a_day_too_deep_for_the_query_from_either_end_fails_clearly_and_keeps_the_old_file(start_emulator, tmp_path):
    late = datetime(2024, 5, 10, 23, 0, tzinfo=timezone.utc)
    emulator = start_emulator(now=late, query_pagination_cap=100, data_availability_lag_seconds=22 * 3600)
    storage = WorkingStorage(root=str(tmp_path))
    with storage.writer(raw_records_path(TODAY)) as handle:
        handle.write(b"previous good file")
    with pytest.raises(ExtractionError, match="between .* deeper than one details query can page from either end"):
        dg.materialize([raw_conversations], partition_key=TODAY, resources={
            "genesys": genesys_for(emulator, query_result_cap=100), "working_storage": storage})
    assert (tmp_path / raw_records_path(TODAY)).read_bytes() == b"previous good file"
    assert not [p for p in (tmp_path / raw_records_path(TODAY)).parent.iterdir() if p.name.startswith(".partial")]


def spoil_the_start_of(emulator: EmulatorServer, conversation_id: str, start: Any) -> None:
    """One conversation is served with `start` as its conversationStart (MISSING: without one), in
    every response, as a broken record from the API would be."""
    render = emulator.app.centre.render

    def with_a_bad_start(plan, as_of_ms, *, with_attributes):  # type: ignore[no-untyped-def]
        record = render(plan, as_of_ms, with_attributes=with_attributes)
        if record is not None and plan.conversation_id == conversation_id:
            record = dict(record)
            record.pop("conversationStart")
            if start is not MISSING:
                record["conversationStart"] = start
        return record

    emulator.app.centre.render = with_a_bad_start  # type: ignore[method-assign]


MISSING = object()


@pytest.mark.parametrize("partition, index, where", [
    (PAST_DAY, 7, r"detail job [0-9a-f-]{36} for 2024-05-0[78]T[0-9:.]+Z/2024-05-0[89]T[0-9:.]+Z, results page 1 \(record \d+\)"),
    (TODAY, -3, r"the details query of 2024-05-10T00:00:00.000Z/2024-05-11T00:00:00.000Z \(order desc\), page \d \(record \d+\)"),
], ids=["jobs", "query"])  # fmt: skip
@pytest.mark.parametrize("start, problem", [
    (MISSING, "conversationStart is missing"),
    (1715335200000, "conversationStart is the int 1715335200000, not an ISO-8601 timestamp string"),
    ("yesterday", "conversationStart is the str 'yesterday', which is not an ISO-8601 timestamp"),
], ids=["missing", "int", "unparseable"])  # fmt: skip
def test_a_record_with_a_missing_or_bad_conversation_start_fails_naming_it_and_where_it_came_from(
    start_emulator, tmp_path, partition, index, where, start, problem
):
    emulator = start_emulator()
    day = date.fromisoformat(partition)
    victim = emulator.app.conversations_started(day)[index]  # read by a detail job, or by the query
    spoil_the_start_of(emulator, victim, start)
    with pytest.raises(ExtractionError) as raised:
        dg.materialize([raw_conversations], partition_key=partition, resources={
            "genesys": genesys_for(emulator), "working_storage": WorkingStorage(root=str(tmp_path))})
    message = str(raised.value)
    assert f"Conversation {victim} " in message and problem in message, message
    assert re.search(f"from {where}", message), message
    assert DEMO_CLIENT_SECRET not in message and "Bearer" not in message and "access_token" not in message
    assert not (tmp_path / raw_records_path(partition)).exists()


@pytest.mark.parametrize("omit_open", [False, True], ids=["jobs-serve-open", "jobs-omit-open"])
@pytest.mark.parametrize("day, now", [
    (date(2024, 5, 8), datetime(2024, 5, 9, 8, 0, tzinfo=timezone.utc)),  # watermark 02:00 the day after
    (date(2024, 5, 10), CLOCK),  # watermark 06:00 the same day: jobs, then the query
])  # fmt: skip
def test_conversations_open_at_the_watermark_arrive_once_as_they_are_now(start_emulator, tmp_path, omit_open, day, now):
    """Detail jobs have data only "up to at least" the watermark: one still open then may be left
    out (`jobs_omit_open_at_watermark`) or served as it stood. Either way it arrives, once, live."""
    emulator = start_emulator(now=now, jobs_omit_open_at_watermark=omit_open)
    watermark_ms, now_ms = int(now.timestamp() * 1000) - 6 * 3600_000, int(now.timestamp() * 1000)
    plans = emulator.app.centre.day_plans(day)
    open_then = {p.conversation_id for p in plans if p.start_ms <= watermark_ms < p.end_ms}
    ended_since = {p.conversation_id for p in plans if p.start_ms <= watermark_ms < p.end_ms <= now_ms}
    assert open_then and ended_since
    materialize(emulator, tmp_path, day.isoformat())
    with gzip.open(tmp_path / raw_records_path(day.isoformat()), "rt", encoding="utf-8") as lines:
        records = {r["conversationId"]: r for r in map(json.loads, lines)}
    ids = written_ids(tmp_path, day.isoformat())
    assert len(ids) == len(set(ids)) and sorted(ids) == sorted(emulator.app.conversations_started(day))
    # The live record wins over the job's (as of the watermark): these have ended since.
    assert all("conversationEnd" in records[conversation_id] for conversation_id in ended_since)
    if not omit_open:  # the job served them: its participant attributes are kept
        assert any("attributes" in p for i in open_then for p in records[i]["participants"])


def test_too_many_open_at_the_watermark_for_the_query_fails_clearly(start_emulator, tmp_path):
    emulator = start_emulator(query_pagination_cap=5, jobs_omit_open_at_watermark=True)
    storage = WorkingStorage(root=str(tmp_path))
    with pytest.raises(ExtractionError, match="2024-05-10 were open at the data-availability watermark"):
        dg.materialize([raw_conversations], partition_key=TODAY, resources={
            "genesys": genesys_for(emulator, query_result_cap=5, query_page_size=5), "working_storage": storage})
    assert not (tmp_path / raw_records_path(TODAY)).exists()
