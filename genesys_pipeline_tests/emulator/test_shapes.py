"""The conversation shapes a real org has and the base mix lacks (shapes.py), on by default: outbound
campaign calls, agentless campaign calls, calls to a user rather than a queue, and email and message
conversations open for days; each with its off switch, and the option of a media type newer than v269."""

from __future__ import annotations

import collections
from datetime import date, datetime, timedelta, timezone
from typing import Any

import pytest

from genesys_pipeline.local.emulator import EmulatorConfig
from genesys_pipeline.local.emulator.__main__ import build_parser
from genesys_pipeline.local.emulator.clock import iso_ms
from genesys_pipeline.local.emulator.shapes import DIALER_CODES
from genesys_pipeline.local.emulator.synthetic import (
    MAX_LIFETIME_MS,
    MAX_ORDINARY_LIFETIME_MS,
    ContactCentre,
    Shapes,
)
from genesys_pipeline_tests.conftest import CLOCK
from genesys_pipeline_tests.emulator.conftest import ApiSession, day_interval

SEED, VOLUME = 7, 2000
DAY = date(2024, 5, 8)
DAY_MS = 86_400_000
CAMPAIGN_FIELDS = ("outboundCampaignId", "outboundContactId", "outboundContactListId")
ALL_OFF = Shapes(campaign_calls=False, agentless_calls=False, direct_user_calls=False, digital_open_for_days=False)


@pytest.fixture(scope="module")
def centre() -> ContactCentre:
    return ContactCentre(SEED, VOLUME)


@pytest.fixture(scope="module")
def shaped(centre: ContactCentre) -> dict[str, list[dict[str, Any]]]:
    """The day's final records of each new shape ("lingering": open for days)."""
    found: dict[str, list[dict[str, Any]]] = collections.defaultdict(list)
    for plan in centre.day_plans(DAY):
        if plan.end_ms - plan.start_ms > MAX_ORDINARY_LIFETIME_MS:
            found["lingering"].append(centre.render(plan, plan.last_change_ms, with_attributes=False))
        elif plan.shape:
            found[plan.shape].append(centre.render(plan, plan.last_change_ms, with_attributes=False))
    return found


def _purposes(record: dict[str, Any]) -> collections.Counter[str]:
    return collections.Counter(p["purpose"] for p in record["participants"])


def _wrapups(record: dict[str, Any], purpose: str) -> list[dict[str, Any]]:
    return [
        segment
        for participant in record["participants"]
        if participant["purpose"] == purpose
        for session in participant["sessions"]
        for segment in session["segments"]
        if segment["segmentType"] == "wrapup"
    ]


def test_each_shape_is_a_few_per_cent_of_a_day(centre, shaped):
    shares = {shape: len(records) / VOLUME for shape, records in shaped.items()}
    assert 0.04 < shares["campaign"] < 0.07 and 0.01 < shares["agentless"] < 0.035
    assert 0.02 < shares["direct"] < 0.05
    digital = sum(p.media_type in ("email", "message") for p in centre.day_plans(DAY))
    assert 0.02 < len(shaped["lingering"]) / digital < 0.07


def test_campaign_calls_carry_the_campaign_and_the_dialer_wraps_up_what_no_agent_did(shaped, centre):
    outcomes = collections.Counter()
    for record in shaped["campaign"] + shaped["agentless"]:
        assert record["originatingDirection"] == "outbound"
        sessions = [s for p in record["participants"] for s in p["sessions"]]
        assert all(s["direction"] == "outbound" and all(f in s for f in CAMPAIGN_FIELDS) for s in sessions)
        assert len({tuple(s[f] for f in CAMPAIGN_FIELDS) for s in sessions}) == 1  # one campaign, one contact
        purposes = _purposes(record)
        dialer = next(p for p in record["participants"] if p["purpose"] == "outbound")
        assert dialer["participantName"] and dialer["sessions"][0]["dispositionName"].startswith("disposition.")
        agent_wrapups, dialer_wrapups = _wrapups(record, "agent"), _wrapups(record, "outbound")
        assert len(agent_wrapups) + len(dialer_wrapups) == 1, record["conversationId"]  # exactly one wraps up
        if record in shaped["agentless"]:
            assert purposes["agent"] == purposes["acd"] == 0
        if dialer_wrapups:
            code = dialer_wrapups[0]["wrapUpCode"]
            outcomes["dialer, system code" if code in DIALER_CODES.values() else "dialer, org code"] += 1
            outcomes["agentless" if record in shaped["agentless"] else "campaign, no agent"] += 1
        else:
            outcomes["agent"] += 1
    assert all(outcomes[kind] >= 10 for kind in ("agent", "campaign, no agent", "agentless", "dialer, system code"))
    assert outcomes["dialer, org code"] >= 3  # an agentless campaign's flow set one of the org's codes
    codes = {c["id"] for c in centre.wrapup_codes}
    assert all(
        s["wrapUpCode"] in codes or s["wrapUpCode"].startswith("ININ-")
        for r in shaped["agentless"] for s in _wrapups(r, "outbound")
    )  # fmt: skip


def test_calls_to_a_user_are_wrapped_up_by_the_user(shaped):
    kinds = collections.Counter()
    for record in shaped["direct"]:
        purposes = _purposes(record)
        if purposes["agent"] == 0 and purposes["acd"] == 0:
            kinds["direct"] += 1
            assert purposes["user"] == 1 and not record.get("selfServed")
        elif purposes["user"]:
            kinds["transferred to a user"] += 1
            agent_ends = {s.get("disconnectType") for p in record["participants"] if p["purpose"] == "agent"
                          for s in p["sessions"][0]["segments"]}  # fmt: skip
            assert "transfer" in agent_ends  # the agent transferred the customer to the user
        user_segments = [s for p in record["participants"] if p["purpose"] == "user"
                         for s in p["sessions"][0]["segments"]]  # fmt: skip
        assert all("queueId" not in s for s in user_segments)  # not reached through a queue
        kinds["user wraps up"] += bool(_wrapups(record, "user"))
        kinds["user does not"] += purposes["user"] > 0 and not _wrapups(record, "user")
    assert kinds["direct"] >= 20 and kinds["transferred to a user"] >= 10
    assert kinds["user wraps up"] > 2 * kinds["user does not"] > 0


def test_some_email_and_message_conversations_stay_open_for_days(shaped, centre):
    lasted = [(datetime.fromisoformat(r["conversationEnd"]) - datetime.fromisoformat(r["conversationStart"]))
              for r in shaped["lingering"]]  # fmt: skip
    assert all(timedelta(days=1.5) < d <= timedelta(milliseconds=MAX_LIFETIME_MS) for d in lasted)
    assert max(lasted) > timedelta(days=7)
    assert {r["participants"][0]["sessions"][0]["mediaType"] for r in shaped["lingering"]} <= {"email", "message"}
    routed_again = [r for r in shaped["lingering"] if _purposes(r)["acd"] == 2]
    assert routed_again  # the customer wrote again days later
    # the long-lived ones are found without planning their day, as a detail job looking back needs
    long_lived = centre.long_lived_plans(DAY)
    assert sorted(p.conversation_id for p in long_lived) == sorted(r["conversationId"] for r in shaped["lingering"])


def test_each_shape_turns_off_and_leaves_the_other_conversations_as_they_were(centre):
    plain = ContactCentre(SEED, VOLUME, shapes=ALL_OFF)
    plans, plain_plans = centre.day_plans(DAY), plain.day_plans(DAY)
    assert not any(p.shape for p in plain_plans)
    assert all(p.end_ms - p.start_ms <= MAX_ORDINARY_LIFETIME_MS for p in plain_plans)
    assert plain.long_lived_plans(DAY) == []
    unshaped = [p for p in plans if not p.shape and p.end_ms - p.start_ms <= MAX_ORDINARY_LIFETIME_MS]
    by_id = {p.conversation_id: p for p in plain_plans}
    for plan in unshaped[::7]:
        assert centre.render(plan, plan.last_change_ms, with_attributes=True) == plain.render(
            by_id[plan.conversation_id], plan.last_change_ms, with_attributes=True
        )
    only_direct_off = ContactCentre(SEED, VOLUME, shapes=Shapes(direct_user_calls=False)).day_plans(DAY)
    assert collections.Counter(p.shape for p in only_direct_off) == collections.Counter(
        p.shape if p.shape != "direct" else "" for p in plans
    )


def test_the_command_line_turns_shapes_off_and_sets_a_newer_media_type():
    defaults = EmulatorConfig(**vars(build_parser().parse_args([])))
    assert defaults.campaign_calls and defaults.agentless_calls and defaults.direct_user_calls
    assert defaults.digital_open_for_days and defaults.newer_media_type == ""
    args = build_parser().parse_args(["--no-campaign-calls", "--no-agentless-calls", "--no-direct-user-calls",
                                      "--no-digital-open-for-days", "--newer-media-type", "hologram"])  # fmt: skip
    config = EmulatorConfig(**vars(args))
    assert not (config.campaign_calls or config.agentless_calls or config.direct_user_calls)
    assert not config.digital_open_for_days and config.newer_media_type == "hologram"
    with pytest.raises(ValueError, match="newer_media_type must be a single word"):
        EmulatorConfig(newer_media_type="holo gram")


def test_a_detail_job_serves_a_conversation_that_started_days_before_its_interval(start_emulator):
    """Jobs match by lifetime overlap: a conversation open for days is in the job of every day it
    spans, although it started before the two days a 36-hour bound would look back."""
    emulator = start_emulator(daily_volume=300)
    job_day = CLOCK.date() - timedelta(days=2)
    job_start_ms = int(datetime(job_day.year, job_day.month, job_day.day, tzinfo=timezone.utc).timestamp() * 1000)
    expected = {
        p.conversation_id
        for n in range(3, 22)
        for p in emulator.app.centre.long_lived_plans(job_day - timedelta(days=n))
        if p.end_ms > job_start_ms  # still open on the job's day
    }
    assert expected
    session = ApiSession(emulator)
    served, _ = session.run_job({"interval": day_interval(job_day)}, page_size=1000)
    session.http.close()
    long_before = iso_ms(job_start_ms - 2 * DAY_MS)
    assert {c["conversationId"] for c in served if c["conversationStart"] < long_before} == expected


def test_a_newer_media_type_is_served_over_http_on_a_few_conversations(start_emulator):
    session = ApiSession(start_emulator(newer_media_type="hologram"))
    records = session.query_all(day_interval(date(2024, 5, 8)))
    newer = [r for r in records if r["participants"][0]["sessions"][0]["mediaType"] == "hologram"]
    assert 0 < len(newer) < 0.15 * len(records)
    assert all(s["mediaType"] == "hologram" for r in newer for p in r["participants"] for s in p["sessions"])
    single = session.get(f"/api/v2/analytics/conversations/{newer[0]['conversationId']}/details").json()
    assert single["participants"][0]["sessions"][0]["mediaType"] == "hologram"
    session.http.close()
