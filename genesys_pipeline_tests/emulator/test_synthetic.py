"""The synthetic contact centre behind the emulator: plans, ids, records over time, lookups.

Most tests look at one 2000-conversation day (seed 7), rendered as final records; the mix of
scenarios, hostile strings and restatements must all show up in a day of that size.
"""

from __future__ import annotations

import collections
import dataclasses
import json
import re
import threading
import uuid
from collections.abc import Iterator
from datetime import date, datetime, timedelta, timezone
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from genesys_pipeline.local.emulator.clock import iso_ms as clock_iso_ms
from genesys_pipeline.local.emulator.directory import DEFAULT_WRAPUP_CODE_ID
from genesys_pipeline.local.emulator.ids import iso_ms
from genesys_pipeline.local.emulator.shapes import DIALER_CODES
from genesys_pipeline.local.emulator.synthetic import (
    MAX_LIFETIME_MS,
    WRAP_UP_TIMEOUT,
    ContactCentre,
    ConversationPlan,
)
from genesys_pipeline_tests.emulator.conftest import epoch_ms as _ms
from genesys_pipeline_tests.emulator.conftest import sessions_of as _sessions
from genesys_pipeline_tests.sdk_fidelity import check_key_order, sdk_lost_fields

SEED, VOLUME = 7, 2000
DAY = date(2024, 5, 8)
DAY_START_MS = int(datetime(2024, 5, 8, tzinfo=timezone.utc).timestamp() * 1000)
DAY_MS = 86_400_000
HOUR_MS = 3_600_000
MEDIA_TYPES = {"voice", "callback", "chat", "email", "message"}
TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


@pytest.fixture(scope="module")
def centre() -> ContactCentre:
    return ContactCentre(SEED, VOLUME)


@pytest.fixture(scope="module")
def plans(centre: ContactCentre) -> list[ConversationPlan]:
    return centre.day_plans(DAY)


@pytest.fixture(scope="module")
def finals(centre: ContactCentre, plans: list[ConversationPlan]) -> list[dict[str, Any]]:
    """Every conversation of the day as it finally reads, with participant attributes (job results)."""
    return [centre.render(plan, plan.last_change_ms, with_attributes=True) for plan in plans]


def _segments(record: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for _, session in _sessions(record):
        yield from session["segments"]


def _metric_names(record: dict[str, Any]) -> collections.Counter[str]:
    return collections.Counter(m["name"] for _, s in _sessions(record) for m in s.get("metrics", []))


def _strings(value: Any) -> Iterator[str]:
    """Every string in a JSON value, dictionary keys included."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield key
            yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)


def _without_attributes(record: dict[str, Any]) -> dict[str, Any]:
    participants = [{k: v for k, v in p.items() if k != "attributes"} for p in record["participants"]]
    return record | {"participants": participants}


# --- plans ---


@pytest.mark.parametrize("day", [DAY, date(2024, 3, 10), date(2024, 11, 3)])  # incl. both DST changes
def test_day_plans_are_exactly_the_daily_volume_within_the_utc_day(centre, day):
    plans = centre.day_plans(day)
    start = int(datetime(day.year, day.month, day.day, tzinfo=timezone.utc).timestamp() * 1000)
    assert len(plans) == VOLUME
    assert len({p.conversation_id for p in plans}) == VOLUME
    assert plans == sorted(plans, key=lambda p: (p.start_ms, p.conversation_id))
    assert all(start <= p.start_ms < start + DAY_MS for p in plans)
    assert all(p.start_ms < p.end_ms <= p.start_ms + MAX_LIFETIME_MS for p in plans)
    # a first-contact resolution is reported a week after the end; an evaluation may be rescored days later
    assert all(p.end_ms <= p.last_change_ms <= p.end_ms + 10 * DAY_MS for p in plans)
    assert {p.media_type for p in plans} == MEDIA_TYPES
    assert {p.originating_direction for p in plans} == {"inbound", "outbound"}
    with pytest.raises(dataclasses.FrozenInstanceError):
        plans[0].start_ms = 0  # type: ignore[misc]


def test_day_plans_depend_only_on_seed_and_day(plans):
    other = ContactCentre(SEED, VOLUME)
    other.day_plans(DAY + timedelta(days=1))
    other.day_plans(DAY - timedelta(days=3))
    assert other.day_plans(DAY) == plans
    small = ContactCentre(SEED, 50)
    first = small.day_plans(DAY)
    for offset in range(1, 21):  # more days than the cache holds: DAY is evicted and recomputed
        small.day_plans(DAY + timedelta(days=offset))
    assert small.day_plans(DAY) == first
    first.clear()  # callers get a copy: mutating it does not touch the cache
    assert len(small.day_plans(DAY)) == 50


def test_day_plans_is_thread_safe():
    days = [DAY + timedelta(days=n) for n in range(4)]
    expected = {day: ContactCentre(SEED, 500).day_plans(day) for day in days}
    shared, results = ContactCentre(SEED, 500), collections.defaultdict(list)

    def work(order: list[date]) -> None:  # a failing thread leaves its results out: caught below
        for day in order:
            results[day].append(shared.day_plans(day))

    threads = [threading.Thread(target=work, args=(days[n % 4 :] + days[: n % 4],)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert all(len(found) == 8 for found in results.values()) and set(results) == set(days)
    assert all(result == expected[day] for day, found in results.items() for result in found)


def test_start_times_follow_a_diurnal_curve_in_the_site_time_zone(plans):
    local_hours = collections.Counter(
        datetime.fromtimestamp(p.start_ms / 1000, ZoneInfo("America/Chicago")).hour for p in plans
    )
    busy = sum(local_hours[h] for h in range(9, 17)) / 8
    night = sum(local_hours[h] for h in range(1, 5)) / 4
    assert busy > 5 * night > 0
    tokyo = ContactCentre(SEED, VOLUME, site_timezone="Asia/Tokyo").day_plans(DAY)
    peak_utc_hour = collections.Counter(p.start_ms // HOUR_MS % 24 for p in plans).most_common(1)[0][0]
    tokyo_peak = collections.Counter(p.start_ms // HOUR_MS % 24 for p in tokyo).most_common(1)[0][0]
    assert 13 <= peak_utc_hour <= 23 and not 13 <= tokyo_peak <= 23


def test_some_conversations_run_across_utc_midnight(plans):
    crossing = [p for p in plans if p.end_ms >= DAY_START_MS + DAY_MS]
    assert len(crossing) >= 5


def test_constructor_rejects_bad_arguments():
    with pytest.raises(ValueError, match="daily_volume"):
        ContactCentre(SEED, -1)
    with pytest.raises(KeyError):  # zoneinfo.ZoneInfoNotFoundError
        ContactCentre(SEED, 10, site_timezone="Mars/Olympus_Mons")


# --- ids ---


def test_fast_timestamps_match_the_emulator_clock_format():
    """The server formats instants with clock.iso_ms and compares them with rendered records."""
    samples = [0, 999, DAY_START_MS - 1, DAY_START_MS, DAY_START_MS + 12_345_678, 4_102_444_799_999]
    assert [iso_ms(ms) for ms in samples] == [clock_iso_ms(ms) for ms in samples]


def test_find_plan_round_trips_and_rejects_foreign_ids(centre, plans):
    assert all(centre.find_plan(p.conversation_id) == p for p in plans)
    parsed = [uuid.UUID(p.conversation_id) for p in plans]
    assert all(u.version == 4 and u.variant == uuid.RFC_4122 for u in parsed)
    assert all(centre.find_plan(str(uuid.uuid4())) is None for _ in range(20_000))
    for junk in (
        "",
        "not-a-uuid",
        "00000000-0000-4000-8000-000000000000",
        "zz" * 16,
        plans[0].conversation_id[:-1],
    ):
        assert centre.find_plan(junk) is None
    other_seed = ContactCentre(SEED + 1, VOLUME).day_plans(DAY)
    assert all(centre.find_plan(p.conversation_id) is None for p in other_seed)


def test_find_plan_only_knows_the_daily_volume(plans):
    small = ContactCentre(SEED, 10)
    small_plans = small.day_plans(DAY)
    by_id = {p.conversation_id: p for p in plans}
    assert all(by_id[p.conversation_id] == p for p in small_plans)  # a plan does not depend on the volume
    beyond = [p for p in plans if p.conversation_id not in {s.conversation_id for s in small_plans}]
    assert all(small.find_plan(p.conversation_id) is None for p in beyond)


# --- records over time ---


def test_render_is_deterministic_across_instances(centre, plans):
    as_of = DAY_START_MS + 15 * HOUR_MS  # mid-afternoon: ongoing and complete conversations alike
    other = ContactCentre(SEED, VOLUME)

    def rendered(source: ContactCentre, with_attributes: bool) -> list[bytes]:
        return [json.dumps(source.render(p, as_of, with_attributes=with_attributes)).encode() for p in plans]

    for with_attributes in (True, False):
        ours = rendered(centre, with_attributes)
        assert ours == rendered(other, with_attributes)
        assert ours == rendered(centre, with_attributes)  # no state carried from one render to the next


def test_different_seeds_give_different_centres(centre, plans, finals):
    other = ContactCentre(SEED + 1, VOLUME)
    other_plans = other.day_plans(DAY)
    assert not {p.conversation_id for p in plans} & {p.conversation_id for p in other_plans}
    assert [p.start_ms for p in plans] != [p.start_ms for p in other_plans]
    assert {q["id"] for q in centre.queues}.isdisjoint(q["id"] for q in other.queues)
    other_finals = [other.render(p, p.last_change_ms, with_attributes=True) for p in other_plans[:50]]
    assert json.dumps(other_finals) != json.dumps(finals[:50])


def test_render_before_the_start_is_none(centre, plans):
    plan = plans[0]
    assert centre.render(plan, plan.start_ms - 1, with_attributes=False) is None
    assert centre.render(plan, plan.start_ms, with_attributes=False) is not None


def test_ongoing_conversation_is_truncated_at_as_of_then_complete_at_its_end(centre, plans):
    long_ones = [p for p in plans if p.end_ms - p.start_ms > 5 * 60_000]
    assert len(long_ones) > 100
    for plan in long_ones[::10]:
        as_of = (plan.start_ms + plan.end_ms) // 2
        ongoing = centre.render(plan, as_of, with_attributes=False)
        assert "conversationEnd" not in ongoing and "selfServed" not in ongoing
        open_segments = [s for s in _segments(ongoing) if "segmentEnd" not in s]
        assert open_segments
        assert not any("disconnectType" in s or "wrapUpCode" in s for s in open_segments)
        assert all(_ms(s["segmentStart"]) <= as_of for s in _segments(ongoing))
        assert all(_ms(s["segmentEnd"]) <= as_of for s in _segments(ongoing) if "segmentEnd" in s)
        emitted = [m for _, s in _sessions(ongoing) for m in s.get("metrics", [])]
        assert all(_ms(m["emitDate"]) <= as_of for m in emitted)

        complete = centre.render(plan, plan.end_ms, with_attributes=False)
        assert complete["conversationEnd"] == iso_ms(plan.end_ms)
        assert all("segmentEnd" in s for s in _segments(complete))
        assert _metric_names(complete) > _metric_names(ongoing)  # e.g. tHandle only once wrap-up ends
        final = centre.render(plan, plan.last_change_ms, with_attributes=False)
        assert _metric_names(complete) == _metric_names(final)
        assert len(complete["participants"]) >= len(ongoing["participants"])


def test_restatements_appear_only_after_their_time(centre, plans, finals):
    restated = [(p, f) for p, f in zip(plans, finals, strict=True) if p.last_change_ms > p.end_ms]
    assert 0.4 * VOLUME < len(restated) < 0.7 * VOLUME  # most by the resolution reported a week later
    kinds = collections.Counter()
    for plan, final in restated:
        at_end = centre.render(plan, plan.end_ms, with_attributes=True)
        assert at_end != final and at_end["conversationEnd"] == final["conversationEnd"]
        later = centre.render(plan, plan.last_change_ms + 10 * 24 * HOUR_MS, with_attributes=True)
        assert later == final  # nothing changes after last_change_ms
        for key in ("evaluations", "surveys", "resolutions"):
            for item in final.get(key, []):
                kinds[key] += 1
                event = _ms(item["eventTime"])
                assert plan.end_ms < event <= plan.last_change_ms
                before = centre.render(plan, event - 1, with_attributes=False)
                if key == "evaluations":  # an earlier version of it may show (test_quality_and_flows.py)
                    assert item not in before.get(key, [])
                else:
                    assert key not in before
                assert item in centre.render(plan, event, with_attributes=True)[key]
        codes_at_end = [s.get("wrapUpCode") for s in _segments(at_end) if s["segmentType"] == "wrapup"]
        codes_final = [s.get("wrapUpCode") for s in _segments(final) if s["segmentType"] == "wrapup"]
        if codes_at_end != codes_final:
            kinds["late wrap-up" if None in codes_at_end else "changed wrap-up"] += 1
    assert 0.03 * VOLUME < kinds["evaluations"] < 0.08 * VOLUME
    assert 0.015 * VOLUME < kinds["surveys"] < 0.05 * VOLUME
    assert kinds["late wrap-up"] >= 3 and kinds["changed wrap-up"] >= 3


def test_attributes_only_with_attributes_and_truncated_to_1024(centre, plans, finals):
    plain = [centre.render(p, p.last_change_ms, with_attributes=False) for p in plans]
    assert not any("attributes" in participant for record in plain for participant in record["participants"])
    assert [_without_attributes(f) for f in finals] == plain  # attributes are the only difference
    with_any = [f for f in finals if any("attributes" in p for p in f["participants"])]
    assert 0.5 * VOLUME < len(with_any) < 0.7 * VOLUME
    attributes = [p["attributes"] for f in finals for p in f["participants"] if "attributes" in p]
    pairs = [(k, v) for a in attributes for k, v in a.items()]
    assert all(
        isinstance(k, str) and isinstance(v, str) and len(k) <= 1024 and len(v) <= 1024 for k, v in pairs
    )
    assert any(len(v) == 1024 for _, v in pairs) and any(len(k) == 1024 for k, _ in pairs)  # truncated
    purposes = {p["purpose"] for f in finals for p in f["participants"] if "attributes" in p}
    assert {"customer", "agent", "ivr"} <= purposes


# --- what a day contains ---


def test_a_day_has_the_variety_the_pipeline_must_handle(plans, finals):
    found = collections.Counter()
    for record in finals:
        names = _metric_names(record)
        purposes = collections.Counter(p["purpose"] for p in record["participants"])
        found[record["participants"][0]["sessions"][0]["mediaType"]] += 1
        found["outbound"] += record["originatingDirection"] == "outbound"
        found["repeated metric"] += any(
            max(collections.Counter(m["name"] for m in s.get("metrics", [])).values(), default=0) > 1
            for _, s in _sessions(record)
        )
        found["transfer"] += names["nTransferred"] > 0 and purposes["agent"] >= 2
        found["second queue"] += purposes["acd"] >= 2
        found["abandon"] += names["tAbandon"] > 0 and purposes["agent"] == 0
        found["RONA"] += names["tNotResponding"] > 0
        found["consult"] += names["nConsult"] > 0
        found["hold"] += names["tHeld"] > 0
        found["self-served"] += record.get("selfServed", False) and purposes["acd"] == 0
        found["timeout wrap-up"] += any(s.get("wrapUpCode") == WRAP_UP_TIMEOUT for s in _segments(record))
        found["default wrap-up"] += any(s.get("wrapUpCode") == DEFAULT_WRAPUP_CODE_ID for s in _segments(record))
        found["wrap-up note"] += any("wrapUpNote" in s for s in _segments(record))
        found["email subject"] += any("subject" in s for s in _segments(record))
        found["messageType"] += any("messageType" in s for _, s in _sessions(record))
    assert 0.45 * VOLUME < found["voice"] < 0.75 * VOLUME  # inbound and outbound voice
    for kind in ("callback", "chat", "email", "message"):
        assert 0.02 * VOLUME < found[kind] < 0.2 * VOLUME, kind
    assert 0.05 * VOLUME < found["outbound"] < 0.22 * VOLUME  # agent-dialled and campaign calls
    assert 0.02 * VOLUME < found["abandon"] < 0.12 * VOLUME
    assert 0.01 * VOLUME < found["timeout wrap-up"] < 0.06 * VOLUME
    assert 0.01 * VOLUME < found["default wrap-up"] < 0.08 * VOLUME  # 4% of wrap-ups, some conversations have 2+
    for kind in ("repeated metric", "transfer", "second queue", "RONA", "consult", "hold", "self-served",
                 "wrap-up note", "email subject", "messageType"):  # fmt: skip
        assert found[kind] >= 10, kind


def test_rona_consults_and_transfers_carry_the_fields_genesys_gives_them(finals):
    """RONA: an agent alerted until the timeout, `tNotResponding`, the alert ends `noAnswerTransfer`, no
    interact. Blind transfer: nBlindTransferred + nTransferred, the agent's talk ends `transfer`. Consult
    transfer: nConsult, nConsultTransferred + nTransferred, ends `consultTransfer`. A consult without a
    transfer: nConsult and no transfer metric or disconnect (genesys-api-more.md s4.1)."""
    found = collections.Counter()
    transfers = {"transfer", "consultTransfer", "conferenceTransfer", "forwardTransfer"}
    for record in finals:
        names, transferred = _metric_names(record), False
        for participant in record["participants"]:
            if participant["purpose"] != "agent":
                continue
            for session in participant["sessions"]:
                metrics = {m["name"] for m in session.get("metrics", [])}
                segments = session["segments"]
                ends = {g.get("disconnectType") for g in segments}
                transferred |= bool(ends & transfers)
                if "tNotResponding" in metrics:
                    assert [g["segmentType"] for g in segments] == ["alert"], record["conversationId"]
                    assert segments[0]["disconnectType"] == "noAnswerTransfer", record["conversationId"]
                    assert not metrics & {"tTalk", "tHandle", "tAnswered"}
                if "nBlindTransferred" in metrics:
                    found["blind"] += 1
                    assert "nTransferred" in metrics and "transfer" in ends
                if "nConsultTransferred" in metrics:
                    found["consult transfer"] += 1
                    assert {"nTransferred", "nConsult"} <= metrics and "consultTransfer" in ends
                if ends & transfers:  # a transfer disconnect always comes with its metric
                    assert metrics & {"nBlindTransferred", "nConsultTransferred"}, record["conversationId"]
        transferred |= names["nTransferred"] > 0
        found["RONA, no transfer"] += names["tNotResponding"] > 0 and not transferred
        found["consult, no transfer"] += names["nConsult"] > 0 and not transferred
    for kind in ("RONA, no transfer", "consult, no transfer", "blind", "consult transfer"):
        assert found[kind] >= 10, (kind, found)


def test_records_reference_the_lookup_entities(centre, finals):
    queues = {q["id"]: q for q in centre.queues}
    codes = {c["id"] for c in centre.wrapup_codes}
    users = {u["id"]: u for u in centre.users}
    divisions = {d["id"] for d in centre.divisions}
    states = collections.Counter()
    for record in finals:
        assert record["divisionIds"] and set(record["divisionIds"]) <= divisions
        for participant, _ in _sessions(record):
            if "userId" in participant:
                states[users[participant["userId"]]["state"]] += 1
        for participant in record["participants"]:
            if participant["purpose"] == "acd":
                queue_ids = {
                    s["queueId"]
                    for _, ss in _sessions({"participants": [participant]})
                    for s in ss["segments"]
                }
                assert [queues[q]["name"] for q in queue_ids] == [participant["participantName"]]
        for segment in _segments(record):
            assert "queueId" not in segment or segment["queueId"] in queues
            code = segment.get("wrapUpCode")
            system = (WRAP_UP_TIMEOUT, DEFAULT_WRAPUP_CODE_ID, *DIALER_CODES.values())  # the dialer's own codes
            assert code is None or code in codes or code in system
    assert DEFAULT_WRAPUP_CODE_ID not in codes  # carried by records, left out of the listing
    assert states["active"] > states["inactive"] > 0 and states["deleted"] > 0  # history outlives staff


def test_hostile_strings_occur_regularly(centre, finals):
    patterns = {
        "double quote": lambda s: '"' in s, "comma": lambda s: "," in s, "LF": lambda s: "\n" in s,
        "CRLF": lambda s: "\r\n" in s, "leading =": lambda s: s.startswith("="),
        "CJK": lambda s: re.search("[\u3040-\u30ff\u4e00-\u9fff]", s) is not None,
        "Greek": lambda s: re.search("[\u0370-\u03ff]", s) is not None,
        "Arabic": lambda s: re.search("[\u0600-\u06ff]", s) is not None,
        "emoji": lambda s: "🎧" in s or "👍🏽" in s,
    }  # fmt: skip
    record_strings = [list(_strings(_without_attributes(f))) for f in finals]  # without job-only attributes
    for name, matches in patterns.items():
        hits = sum(any(matches(s) for s in strings) for strings in record_strings)
        assert hits >= 10, name
    hostile = sum(any(m(s) for s in strings for m in patterns.values()) for strings in record_strings)
    assert hostile > 0.2 * VOLUME
    entity_names = [e["name"] for e in centre.queues + centre.users + centre.wrapup_codes + centre.divisions]
    for name, matches in patterns.items():
        assert any(matches(n) for n in entity_names), name


def test_values_are_shaped_like_the_api(finals):
    def walk(value: Any, key: str = "") -> None:
        assert value is not None, f"null at {key}"
        if isinstance(value, dict):
            for k, v in value.items():
                walk(v, k)
        elif isinstance(value, list):
            for item in value:
                walk(item, key)
        elif key in (
            "conversationStart",
            "conversationEnd",
            "segmentStart",
            "segmentEnd",
            "emitDate",
            "eventTime",
        ):
            assert TIMESTAMP.match(value), value
        elif key == "value":
            assert type(value) is int and value >= 0

    for record in finals:
        walk(record)


def test_metrics_agree_with_segments(finals):
    def duration(segments: list[dict[str, Any]], kind: str) -> int:
        return sum(
            _ms(s["segmentEnd"]) - _ms(s["segmentStart"]) for s in segments if s["segmentType"] == kind
        )

    checked = 0
    for record in finals:
        for participant, session in _sessions(record):
            totals = collections.Counter()
            for metric in session.get("metrics", []):
                totals[metric["name"]] += metric["value"]
            segments = session["segments"]
            if participant["purpose"] == "acd" and "tAcd" in totals:
                assert totals["tAcd"] == duration(segments, "interact")
            if participant["purpose"] == "agent" and "tHandle" in totals and "tDialing" not in totals:
                assert totals["tTalk"] == duration(segments, "interact")
                assert totals["tHeld"] == duration(segments, "hold")
                assert totals["tAcw"] == duration(segments, "wrapup")
                assert totals["tHandle"] == totals["tTalk"] + totals["tHeld"] + totals["tAcw"]
                checked += 1
    assert checked > VOLUME // 2


# --- lookups ---


def test_lookup_entities(centre):
    assert len(centre.divisions) == 4 and sum(d["homeDivision"] for d in centre.divisions) == 1
    assert len(centre.queues) == 12 and len(centre.wrapup_codes) == 20 and len(centre.users) == 60
    states = collections.Counter(u["state"] for u in centre.users)
    assert states["active"] >= 40 and states["inactive"] >= 3 and states["deleted"] >= 3
    divisions = {d["id"] for d in centre.divisions}
    paths = {"queues": "/api/v2/routing/queues/", "wrapup_codes": "/api/v2/routing/wrapupcodes/",
             "users": "/api/v2/users/", "divisions": "/api/v2/authorization/divisions/"}  # fmt: skip
    for kind, path in paths.items():
        entities = getattr(centre, kind)
        assert [e["name"] for e in entities] == sorted(e["name"] for e in entities)
        assert all(e["selfUri"] == path + e["id"] and uuid.UUID(e["id"]).version == 4 for e in entities)
        assert kind == "divisions" or all(e["division"]["id"] in divisions for e in entities)
    assert all(q["memberCount"] >= q["joinedMemberCount"] > 0 for q in centre.queues)
    assert ContactCentre(SEED, 1).users == centre.users  # the directory depends on the seed alone


def test_keys_follow_the_sdk_models_order(centre, finals):
    problems: list[str] = []
    for record in finals:
        check_key_order(record, "AnalyticsConversation", record["conversationId"], problems)
    for kind, model in (("queues", "Queue"), ("users", "User"), ("wrapup_codes", "WrapupCode"),
                        ("divisions", "AuthzDivision"), ("flow_outcomes", "FlowOutcome")):  # fmt: skip
        for entity in getattr(centre, kind):
            check_key_order(entity, model, entity["name"], problems)
    assert problems == []


# --- fidelity through the official SDK ---


def test_every_record_and_entity_survives_the_official_sdk(centre, plans, finals):
    problems = [p for record in finals for p in sdk_lost_fields(record, "AnalyticsConversation")]
    mid_day = DAY_START_MS + 14 * HOUR_MS
    ongoing = [centre.render(p, mid_day, with_attributes=False) for p in plans if p.start_ms <= mid_day]
    problems += [
        p for record in ongoing for p in sdk_lost_fields(record, "AnalyticsConversationWithoutAttributes")
    ]
    for kind, model in (("queues", "Queue"), ("users", "User"), ("wrapup_codes", "WrapupCode"),
                        ("divisions", "AuthzDivision")):  # fmt: skip
        entities = getattr(centre, kind)
        listing = {
            "entities": entities,
            "pageSize": 100,
            "pageNumber": 1,
            "total": len(entities),
            "pageCount": 1,
        }
        problems += sdk_lost_fields(listing, f"{model}EntityListing")
    assert problems == []


def test_sdk_lost_fields_catches_losses(finals):
    record = finals[0]
    assert sdk_lost_fields(record, "AnalyticsConversation") == []
    # The SDK rewrites timestamps (+00:00, microseconds): equal instants are not a loss.
    assert sdk_lost_fields({"conversationStart": "2024-04-29T17:31:47.956Z"}, "AnalyticsConversation") == []

    def lost(change: dict[str, Any]) -> list[str]:
        return sdk_lost_fields(json.loads(json.dumps(record)) | change, "AnalyticsConversation")

    assert any("outdated_sdk_version" in p for p in lost({"originatingDirection": "sideways"}))
    assert any("bogusField" in p for p in lost({"bogusField": 1}))
    assert any("null" in p for p in lost({"conversationEnd": None}))
    assert any("'12' became 12" in p for p in sdk_lost_fields({"value": "12"}, "AnalyticsSessionMetric"))
    bad_segment = json.loads(json.dumps(record))
    bad_segment["participants"][0]["sessions"][0]["segments"][0]["segmentType"] = "talking"
    problems = sdk_lost_fields(bad_segment, "AnalyticsConversation")
    assert problems and problems[0].startswith("$.participants[0].sessions[0].segments[0].segmentType")
    # Participant attributes exist only on the job model: the query model drops them.
    with_attributes = next(f for f in finals if any("attributes" in p for p in f["participants"]))
    assert any(
        "attributes" in p for p in sdk_lost_fields(with_attributes, "AnalyticsConversationWithoutAttributes")
    )
