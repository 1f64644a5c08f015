"""The synchronous details query over HTTP: paging, caps, interval rules, filters, ordering."""

from __future__ import annotations

from collections import Counter
from datetime import date, datetime, timezone

from genesys_pipeline.local.emulator.__main__ import build_parser
from genesys_pipeline_tests.conftest import CLOCK, PAST_DAY
from genesys_pipeline_tests.emulator.conftest import DETAILS, ApiSession, day_interval

QUERY = f"{DETAILS}/query"


def test_pages_to_the_end_and_past_it(api):
    interval = day_interval(PAST_DAY)
    conversations = api.query_all(interval, page_size=100)
    ids = [c["conversationId"] for c in conversations]
    assert len(ids) == len(set(ids)) == 300
    assert ids == api.emulator.app.conversations_started(PAST_DAY)
    starts = [c["conversationStart"] for c in conversations]
    assert starts == sorted(starts)  # default order: ascending conversationStart
    past = api.post(QUERY, {"interval": interval, "paging": {"pageSize": 100, "pageNumber": 4}})
    # Past the end: only the (approximate) totalHits, the same estimate every page of the query gives.
    assert past.status_code == 200 and past.json() == {"totalHits": 305}


def test_default_page_size_is_25(api):
    body = api.post(QUERY, {"interval": day_interval(PAST_DAY)}).json()
    assert len(body["conversations"]) == 25 and body["totalHits"] == 305


def test_total_hits_is_approximate_and_the_pages_still_hold_every_match(start_emulator):
    """Genesys blog 2022-04-21: totalHits "reflects the approximate number". The emulator's is 1-3 % off,
    either way, the same on every page of a request and on every asking; the pages end where the data
    does, not where totalHits says (a client that stops there loses the rest of an under-estimated day)."""
    session = ApiSession(start_emulator())
    over, under = day_interval(PAST_DAY), day_interval(date(2024, 5, 7))  # 305 and 291 for 300
    for interval, estimate in ((over, 305), (under, 291)):
        totals = {session.post(QUERY, {"interval": interval, "paging": {"pageSize": 100, "pageNumber": n}}).json()["totalHits"]
                  for n in (1, 2, 3, 4, 1)}  # fmt: skip
        assert totals == {estimate}
        assert len(session.query_all(interval, page_size=100)) == 300
    third = session.post(QUERY, {"interval": under, "paging": {"pageSize": 97, "pageNumber": 3}}).json()
    assert len(third["conversations"]) == 97 and 3 * 97 >= 291  # past the estimate, the data goes on
    fourth = session.post(QUERY, {"interval": under, "paging": {"pageSize": 97, "pageNumber": 4}}).json()
    assert len(fourth["conversations"]) == 300 - 3 * 97
    # A filter is another request: another estimate, off the filtered count.
    email = [{"type": "or", "predicates": [{"dimension": "mediaType", "value": "email"}]}]
    emails = len(session.query_all(under, segmentFilters=email))
    estimate = session.post(QUERY, {"interval": under, "segmentFilters": email}).json()["totalHits"]
    assert estimate != emails and abs(estimate - emails) <= max(1, round(0.03 * emails))
    # Across days: a few per cent either way, never more.
    errors = [session.post(QUERY, {"interval": day_interval(date(2024, 5, d))}).json()["totalHits"] - 300 for d in range(1, 10)]
    assert min(errors) < 0 < max(errors) and all(3 <= abs(e) <= 9 for e in errors)


def test_exact_total_hits_option(start_emulator):
    session = ApiSession(start_emulator(exact_total_hits=True))
    for day in (PAST_DAY, date(2024, 5, 7)):
        assert session.post(QUERY, {"interval": day_interval(day)}).json()["totalHits"] == 300
    past = session.post(QUERY, {"interval": day_interval(PAST_DAY), "paging": {"pageSize": 100, "pageNumber": 4}})
    assert past.json() == {"totalHits": 300}


def test_exact_total_hits_is_a_command_line_flag():
    args = build_parser().parse_args(["--exact-total-hits"])
    assert args.exact_total_hits is True and build_parser().parse_args([]).exact_total_hits is False


def test_page_size_over_the_maximum_is_rejected(api):
    response = api.post(QUERY, {"interval": day_interval(PAST_DAY), "paging": {"pageSize": 101, "pageNumber": 1}})
    assert response.status_code == 400 and "pageSize" in response.json()["message"]


def test_pagination_cap_message(start_emulator):
    session = ApiSession(start_emulator(query_pagination_cap=200))
    ok = session.post(QUERY, {"interval": day_interval(PAST_DAY), "paging": {"pageSize": 100, "pageNumber": 2}})
    assert ok.status_code == 200
    capped = session.post(QUERY, {"interval": day_interval(PAST_DAY), "paging": {"pageSize": 100, "pageNumber": 3}})
    assert capped.status_code == 400
    assert capped.json()["message"].startswith("Pagination may not exceed 200 results.")


def test_default_cap_is_the_real_one(api):
    over = api.post(QUERY, {"interval": day_interval(PAST_DAY), "paging": {"pageSize": 100, "pageNumber": 1001}})
    assert over.status_code == 400
    assert over.json()["message"].startswith("Pagination may not exceed 100000 results.")


def test_interval_length_limits(api):
    eight_days = day_interval(datetime(2024, 4, 1).date(), days=8)
    unfiltered = api.post(QUERY, {"interval": eight_days})
    assert unfiltered.status_code == 400
    assert unfiltered.json()["message"] == (
        "You must specify a search interval as part of your query that does not exceed 7 days."
    )
    voice = [{"type": "and", "predicates": [{"dimension": "mediaType", "value": "voice"}]}]
    assert api.post(QUERY, {"interval": eight_days, "segmentFilters": voice}).status_code == 200
    too_long = api.post(QUERY, {"interval": day_interval(datetime(2024, 3, 1).date(), days=32), "segmentFilters": voice})
    assert too_long.status_code == 400
    assert too_long.json()["message"].endswith("does not exceed 31 days.")


def test_bad_intervals_are_400(api):
    for interval in ("2024-05-08", "2024-05-09T00:00:00Z/2024-05-08T00:00:00Z", "yesterday/today", None):
        response = api.post(QUERY, {"interval": interval})
        assert response.status_code == 400, interval
        assert response.json()["code"] in ("invalid.date", "bad.request")


def test_matching_is_by_utc_start_day_not_by_instant(api):
    """A one-hour interval returns every conversation that started on that UTC day."""
    hour = "2024-05-08T10:00:00.000Z/2024-05-08T11:00:00.000Z"
    conversations = api.query_all(hour)
    assert len(conversations) == 300
    assert any(c["conversationStart"] < "2024-05-08T10:00" for c in conversations)
    # The previous day's conversations still running after midnight are not returned.
    previous_day = api.emulator.app.centre.day_plans(datetime(2024, 5, 7).date())
    crossing = [p.conversation_id for p in previous_day if p.end_ms > _ms("2024-05-08T00:00:00+00:00")]
    assert crossing, "the synthetic centre should have conversations crossing UTC midnight"
    midnight_hour = api.query_all("2024-05-08T00:00:00.000Z/2024-05-08T01:00:00.000Z")
    assert not set(crossing) & {c["conversationId"] for c in midnight_hour}


def test_ongoing_conversations_are_included_and_filterable(api):
    today = CLOCK.date()
    conversations = api.query_all(day_interval(today))
    ongoing = [c for c in conversations if "conversationEnd" not in c]
    assert ongoing, "at noon some conversations are still going on"
    assert all(c["conversationStart"] <= "2024-05-10T12:00:00.000Z" for c in conversations)
    ended_only = api.query_all(
        day_interval(today),
        conversationFilters=[{"type": "and", "predicates": [{"dimension": "conversationEnd", "operator": "exists"}]}],
    )
    assert len(ended_only) == len(conversations) - len(ongoing)
    assert all("conversationEnd" in c for c in ended_only)


def test_segment_filters_select_whole_conversations(api):
    interval = day_interval(PAST_DAY)
    everything = api.query_all(interval)
    email = api.query_all(interval, segmentFilters=[{"type": "or", "predicates": [{"dimension": "mediaType", "value": "email"}]}])
    expected = [c["conversationId"] for c in everything if "email" in _values(c, "mediaType")]
    assert expected and [c["conversationId"] for c in email] == expected
    # Complete records come back, not only the matching segments.
    assert all(len(c["participants"]) >= 2 for c in email)

    queue_id = Counter(q for c in everything for q in _values(c, "queueId")).most_common(1)[0][0]
    by_queue = api.query_all(interval, segmentFilters=[{"type": "and", "predicates": [
        {"type": "dimension", "dimension": "queueId", "operator": "matches", "value": queue_id}]}])
    assert {c["conversationId"] for c in by_queue} == {c["conversationId"] for c in everything if queue_id in _values(c, "queueId")}

    user_id = Counter(u for c in everything for u in _values(c, "userId")).most_common(1)[0][0]
    agent_filter = [{"type": "and", "predicates": [{"dimension": "purpose", "value": "agent"}, {"dimension": "userId", "value": user_id}]}]
    by_agent = api.query_all(interval, segmentFilters=agent_filter)
    assert by_agent and all(user_id in _values(c, "userId") for c in by_agent)


def test_conversation_filter_on_division(api):
    interval = day_interval(PAST_DAY)
    everything = api.query_all(interval)
    division = everything[0]["divisionIds"][0]
    filtered = api.query_all(interval, conversationFilters=[{"type": "or", "predicates": [{"dimension": "divisionId", "value": division}]}])
    assert {c["conversationId"] for c in filtered} == {c["conversationId"] for c in everything if division in c["divisionIds"]}
    assert len(filtered) < len(everything)


def test_unknown_conversation_dimension_is_400(api):
    response = api.post(QUERY, {"interval": day_interval(PAST_DAY), "conversationFilters": [
        {"type": "and", "predicates": [{"dimension": "queueName", "value": "x"}]}]})
    assert response.status_code == 400 and "queueName" in response.json()["message"]


def test_descending_order(api):
    conversations = api.query_all(day_interval(PAST_DAY), order="desc")
    starts = [c["conversationStart"] for c in conversations]
    assert starts == sorted(starts, reverse=True) and len(starts) == 300


def test_live_drift_serves_records_twice(start_emulator):
    session = ApiSession(start_emulator(live_drift=True))
    ids = [c["conversationId"] for c in session.query_all(day_interval(PAST_DAY), page_size=50)]
    assert len(ids) > len(set(ids)) and len(set(ids)) == 300


def test_single_and_multi_get(api):
    conversations = api.query_all(day_interval(PAST_DAY))
    first, second = conversations[0], conversations[1]
    single = api.get(f"/api/v2/analytics/conversations/{first['conversationId']}/details")
    assert single.status_code == 200 and single.json() == first
    multi = api.get(DETAILS, id=f"{first['conversationId']},{second['conversationId']},00000000-0000-4000-8000-000000000000")
    assert multi.status_code == 200 and multi.json()["conversations"] == [first, second]
    unknown = api.get("/api/v2/analytics/conversations/00000000-0000-4000-8000-000000000000/details")
    assert unknown.status_code == 404 and unknown.json()["code"] == "not.found"
    too_many = api.get(DETAILS, id=",".join(c["conversationId"] for c in conversations[:101]))
    assert too_many.status_code == 400


def _values(record, key):
    """Every value of `key` at participant, session or segment level of a record."""
    found = []
    for participant in record["participants"]:
        if key in participant:
            found.append(participant[key])
        for session in participant.get("sessions", []):
            if key in session:
                found.append(session[key])
            for segment in session.get("segments", []):
                if key in segment:
                    found.append(segment[key])
    return found


def _ms(text):
    return int(datetime.fromisoformat(text).astimezone(timezone.utc).timestamp() * 1000)


def test_conversation_end_not_exists_filter_as_the_real_api_takes_it(api):
    """genesys-api-more.md s1.1: the body the pipeline sends, and Genesys's own blog form
    (`"type":"or"`, `"value": null`), both select the conversations still open."""
    today = day_interval(CLOCK.date())
    everything = api.query_all(today)
    open_ids = [c["conversationId"] for c in everything if "conversationEnd" not in c]
    assert open_ids and len(open_ids) < len(everything)
    for predicate in ({"dimension": "conversationEnd", "operator": "notExists"},
                      {"type": "dimension", "dimension": "conversationEnd", "operator": "notExists", "value": None}):
        for kind in ("and", "or"):
            found = api.query_all(today, conversationFilters=[{"type": kind, "predicates": [predicate]}])
            assert [c["conversationId"] for c in found] == open_ids


def test_filters_the_real_api_rejects_are_400(api):
    """No `notMatches`, no negation, no media type at conversation level (v269 enums)."""
    media = {"dimension": "mediaType", "value": "voice"}
    bodies = [
        {"segmentFilters": [{"type": "and", "predicates": [{**media, "operator": "notMatches"}]}]},
        {"segmentFilters": [{"type": "not", "predicates": [media]}]},
        {"conversationFilters": [{"type": "and", "predicates": [media]}]},
        {"conversationFilters": [{"type": "and", "predicates": [
            {"type": "segment", "dimension": "conversationEnd", "operator": "notExists"}]}]},
    ]
    for body in bodies:
        response = api.post(QUERY, {"interval": day_interval(PAST_DAY), **body})
        assert response.status_code == 400, body
