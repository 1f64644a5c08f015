"""What serving costs the emulator, and that making it cheaper changed no byte a client sees.

The render cache (render_cache.py) keeps the JSON of served records; a filter that names only what a
plan knows (querying.decided_by_plan) is decided without rendering. Both are checked against the
emulator that renders every record every time (`render_cache=False`, the general filter path).
"""

from __future__ import annotations

import hashlib
import re
from datetime import timedelta
from typing import Any, Iterator

import httpx
import pytest

from genesys_pipeline.local.emulator import EmulatorServer
from genesys_pipeline.local.emulator.render_cache import SHARED, RenderCache
from genesys_pipeline.local.emulator.synthetic import ContactCentre
from genesys_pipeline_tests.conftest import CLOCK, PAST_DAY
from genesys_pipeline_tests.emulator.conftest import (
    DETAILS,
    ApiSession,
    day_interval,
    wait_for_state,
)

STILL_OPEN = [{"type": "and", "predicates": [{"dimension": "conversationEnd", "operator": "notExists"}]}]
# Holds for every record (each has a segment with a start) but names a segment: it makes the query
# render each record to decide, so it gives the general path's answer to the same question.
EVERY_RECORD = [{"type": "and", "predicates": [{"dimension": "segmentStart", "operator": "exists"}]}]
# A cursor holds its job's random id; everything else of a job's page is deterministic.
CURSOR = re.compile(rb'"cursor":"[^"]*"')


class RenderCounter:
    """Counts the records the emulator renders (the cost the cache and the filter avoid)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.calls = 0
        original = ContactCentre.render

        def counted(*args: Any, **kwargs: Any) -> Any:
            self.calls += 1
            return original(*args, **kwargs)

        monkeypatch.setattr(ContactCentre, "render", counted)


def served_bytes(session: ApiSession) -> Iterator[tuple[str, bytes]]:
    """Every kind of response that carries records: a day's detail job (attributes, as of the
    watermark), the day's query pages (unfiltered, and filtered as the extraction does), one record."""
    submitted = session.post(f"{DETAILS}/jobs", {"interval": day_interval(PAST_DAY - timedelta(days=1), days=2)})
    job_id = submitted.json()["jobId"]
    wait_for_state(session, job_id, "FULFILLED")
    cursor, number = None, 0
    while True:
        params = {"pageSize": 150, **({"cursor": cursor} if cursor else {})}
        response = session.get(f"{DETAILS}/jobs/{job_id}/results", **params)
        yield f"job page {number}", CURSOR.sub(b"", response.content)
        cursor, number = response.json().get("cursor"), number + 1
        if not cursor:
            break
    for filters in ({}, {"conversationFilters": STILL_OPEN}):
        for page in (1, 2):
            body = {"interval": day_interval(PAST_DAY), "paging": {"pageSize": 100, "pageNumber": page}, **filters}
            yield f"query {filters} page {page}", session.post(f"{DETAILS}/query", body).content
    first = session.post(f"{DETAILS}/query", {"interval": day_interval(PAST_DAY)}).json()["conversations"][0]
    yield "single get", session.get(f"/api/v2/analytics/conversations/{first['conversationId']}/details").content


def digest(pairs: Iterator[tuple[str, bytes]]) -> dict[str, str]:
    return {name: hashlib.sha256(body).hexdigest() for name, body in pairs}


def set_clock(emulator: EmulatorServer, instant: Any) -> None:
    assert httpx.post(f"{emulator.base_url}/emulator/clock", json={"now": instant.isoformat()}).status_code == 200


@pytest.mark.slow
def test_cached_records_are_the_bytes_rendered_afresh_at_every_clock(start_emulator):
    """A day served by an emulator that renders everything, and twice by one with the render cache,
    at three clocks: restatements pending (records cached as of one instant must not be served at
    another), a day later (some restated since), and weeks later (every record final)."""
    fresh = start_emulator(render_cache=False, rate_limit_per_minute=10_000)
    cached = start_emulator(render_cache=True, rate_limit_per_minute=10_000)
    fresh_api, cached_api = ApiSession(fresh), ApiSession(cached)
    for shift in (timedelta(0), timedelta(days=1), timedelta(days=30)):
        set_clock(fresh, CLOCK + shift)
        set_clock(cached, CLOCK + shift)
        expected = digest(served_bytes(fresh_api))
        hits_before = SHARED.hits
        assert digest(served_bytes(cached_api)) == expected, shift
        assert digest(served_bytes(cached_api)) == expected, shift
        assert SHARED.hits - hits_before >= 600  # the second pass: every job record at least came from the cache


def test_a_record_served_again_is_not_rendered_again(start_emulator, monkeypatch):
    """A rerun of a day (a second job over it at the same watermark) renders nothing."""
    emulator = start_emulator()
    api = ApiSession(emulator)
    conversations, _ = api.run_job({"interval": day_interval(PAST_DAY)})
    assert len(conversations) >= 300
    counter = RenderCounter(monkeypatch)
    again, _ = api.run_job({"interval": day_interval(PAST_DAY)})
    assert again == conversations
    assert counter.calls == 0


def test_still_open_query_renders_only_the_page_it_serves(start_emulator, monkeypatch):
    """The extraction's 'still open' query over today decides the filter from the plans: it renders
    the records of its page only, not every record of the day so far (and answers as the rendering
    path does)."""
    emulator = start_emulator(render_cache=False, exact_total_hits=True)
    api = ApiSession(emulator)
    started_today = len(emulator.app.conversations_started(CLOCK.date()))
    counter = RenderCounter(monkeypatch)
    body = {"interval": day_interval(CLOCK.date()), "paging": {"pageSize": 25, "pageNumber": 1}}
    decided = api.post(f"{DETAILS}/query", {**body, "conversationFilters": STILL_OPEN}).json()
    assert decided["conversations"] and started_today > 25
    assert counter.calls == len(decided["conversations"])
    rendered = api.post(f"{DETAILS}/query", {**body, "conversationFilters": STILL_OPEN,
                                             "segmentFilters": EVERY_RECORD}).json()  # fmt: skip
    assert counter.calls >= started_today
    assert decided == rendered
    assert all("conversationEnd" not in record for record in decided["conversations"])


def test_filter_decided_from_plans_selects_what_the_rendered_records_do(start_emulator):
    """Each dimension a plan gives, with each operator, in a detail job over a day of the watermark
    (ongoing and ended records alike): the same records as the rendering path."""
    api = ApiSession(start_emulator(rate_limit_per_minute=10_000))
    interval = day_interval(CLOCK.date() - timedelta(days=1), days=2)
    everything, _ = api.run_job({"interval": interval})
    some = everything[len(everything) // 3]
    predicates = [
        {"dimension": "conversationEnd", "operator": "exists"},
        {"dimension": "conversationEnd", "operator": "notExists"},
        {"dimension": "originatingDirection", "value": "outbound"},
        {"dimension": "conversationId", "value": some["conversationId"]},
        {"dimension": "conversationStart", "value": some["conversationStart"]},
    ]
    for predicate in predicates:
        filters = [{"type": "or", "predicates": [predicate]}]
        decided, _ = api.run_job({"interval": interval, "conversationFilters": filters})
        rendered, _ = api.run_job({"interval": interval, "conversationFilters": filters, "segmentFilters": EVERY_RECORD})
        assert decided, predicate
        assert [r["conversationId"] for r in decided] == [r["conversationId"] for r in rendered], predicate
        assert len(decided) < len(everything) or predicate.get("operator") == "exists"


def test_render_cache_keeps_to_its_capacity():
    cache = RenderCache(capacity_bytes=100)
    for key in range(10):
        cache.put(key, bytes(30))
    assert cache.size_bytes <= 100
    assert cache.get(9) == bytes(30) and cache.get(0) is None  # the least recently used went first
    cache.put("too big", bytes(101))
    assert cache.get("too big") is None


def test_emulators_of_other_options_share_no_cached_record(start_emulator):
    """The cache is the process's; a record of the same seed with --unknown-fields or a newer media
    type is another record, and a centre whose `render` a test replaced is served what it renders."""
    plain, probed = ApiSession(start_emulator()), ApiSession(start_emulator(unknown_fields=True))
    newer = ApiSession(start_emulator(newer_media_type="hologram"))
    page = {"interval": day_interval(PAST_DAY), "paging": {"pageSize": 100, "pageNumber": 1}}
    bodies = [api.post(f"{DETAILS}/query", page).content for api in (plain, probed, newer, plain)]
    assert b"emulatorProbeRecord" in bodies[1] and b"emulatorProbeRecord" not in bodies[0]
    assert b'"mediaType":"hologram"' in bodies[2] and b"hologram" not in bodies[0]
    assert bodies[3] == bodies[0]
    plain.emulator.app.centre.render = lambda *args, **kwargs: {"conversationId": "replaced"}  # type: ignore[method-assign]
    assert plain.post(f"{DETAILS}/query", page).json()["conversations"][0] == {"conversationId": "replaced"}


def test_a_filtered_querys_next_page_renders_nothing_again(start_emulator, monkeypatch):
    """A filter on what only the rendered record shows (a segment's media type) decides on every record
    of the day, for each page; the records are rendered for the first page only."""
    api = ApiSession(start_emulator())
    counter = RenderCounter(monkeypatch)
    body = {"interval": day_interval(PAST_DAY), "segmentFilters": [
        {"type": "and", "predicates": [{"dimension": "mediaType", "value": "voice"}]}]}  # fmt: skip
    first = api.post(f"{DETAILS}/query", {**body, "paging": {"pageSize": 50, "pageNumber": 1}}).json()
    rendered_for_the_first_page = counter.calls
    second = api.post(f"{DETAILS}/query", {**body, "paging": {"pageSize": 50, "pageNumber": 2}}).json()
    assert len(first["conversations"]) == len(second["conversations"]) == 50
    assert counter.calls == rendered_for_the_first_page
