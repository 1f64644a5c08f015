"""What the records carry beside the interaction (issue 12): evaluations restated as they are
completed, surveys, first-contact resolutions a week later, voice quality per leg, and flow sessions
with their exit fields, outcomes and milestone metrics; each field as the SDK v269 models it, at the
shares a real org has, on one 2000-conversation day (seed 7)."""

from __future__ import annotations

import collections
from datetime import date
from typing import Any, Iterator

import PureCloudPlatformClientV2.models as sdk_models  # noqa: E402  (after sdk_fidelity, which isolates $HOME)
import pytest

from genesys_pipeline.local.emulator import texts
from genesys_pipeline.local.emulator.restatements import NCA_LOOKUP_MS
from genesys_pipeline.local.emulator.synthetic import ContactCentre, ConversationPlan
from genesys_pipeline_tests.emulator.conftest import epoch_ms as _ms
from genesys_pipeline_tests.emulator.conftest import sessions_of as _sessions
from genesys_pipeline_tests.sdk_fidelity import check_key_order, sdk_lost_fields

SEED, VOLUME = 7, 2000
DAY = date(2024, 5, 8)
HOUR_MS = 3_600_000
# SDK fields the synthetic centre never fills (no speech recognition in its flows)
NEVER_FILLED = {"AnalyticsFlow": {"recognitionFailureReason"}}


@pytest.fixture(scope="module")
def centre() -> ContactCentre:
    return ContactCentre(SEED, VOLUME)


@pytest.fixture(scope="module")
def day(centre: ContactCentre) -> list[tuple[ConversationPlan, dict[str, Any]]]:
    return [(p, centre.render(p, p.last_change_ms, with_attributes=False)) for p in centre.day_plans(DAY)]


def _handled_by(record: dict[str, Any]) -> tuple[str, str] | None:
    """(queue id, user id) of the agent who talked to the customer last, through a queue, if any."""
    last: tuple[int, str, str] | None = None
    for participant, session in _sessions(record):
        if participant["purpose"] not in ("agent", "user"):
            continue
        talked = [g for g in session["segments"] if g["segmentType"] not in ("alert", "wrapup") and "queueId" in g]
        if talked:
            end = max(_ms(g["segmentEnd"]) for g in talked)
            if last is None or end > last[0]:
                last = (end, talked[-1]["queueId"], participant["userId"])
    return None if last is None else last[1:]


def _evaluation_history(centre: ContactCentre, plan: ConversationPlan, final: dict[str, Any]) -> list[dict[str, Any]]:
    """An evaluation's versions, oldest first, found by rendering just before each version's time."""
    history = [final]
    while True:
        earlier = centre.render(plan, _ms(history[0]["eventTime"]) - 1, with_attributes=False)
        shown = [e for e in earlier.get("evaluations", []) if e["evaluationId"] == final["evaluationId"]]
        if not shown:
            return history
        history.insert(0, shown[0])


def test_evaluations_are_restated_as_they_are_completed(centre, day):
    statuses, found = collections.Counter(), collections.Counter()
    evaluated = [(p, r) for p, r in day if "evaluations" in r]
    forms: dict[str, set[str]] = collections.defaultdict(set)
    problems: list[str] = []
    for plan, record in evaluated:
        for final in record["evaluations"]:
            history = _evaluation_history(centre, plan, final)
            path = f"{record['conversationId']}.evaluations"
            problems += sdk_lost_fields(history, "list[AnalyticsEvaluation]")
            for version in history:
                check_key_order(version, "AnalyticsEvaluation", path, problems)
            first, *_ = history
            assert first["evaluationStatus"] in ("Pending", "InProgress") and "oTotalScore" not in first
            assert final["evaluationStatus"] == "Finished" and {"oTotalScore", "oTotalCriticalScore"} <= set(final)
            times = [_ms(v["eventTime"]) for v in history]
            assert times == sorted(set(times)) and plan.end_ms < times[0] and times[-1] <= plan.last_change_ms
            order = [v["evaluationStatus"] for v in history]
            assert order == sorted(order, key=["Pending", "InProgress", "Finished"].index), order
            for key in ("evaluationId", "contextId", "formId", "evaluatorId", "userId", "queueId", "assigneeId"):
                assert len({v[key] for v in history}) == 1, key
            assert all(v["deleted"] is False for v in history)
            assert not any(v["released"] or v["rescored"] for v in history if v["evaluationStatus"] != "Finished")
            assert [v["rescored"] for v in history].count(True) <= 1 and not history[0]["rescored"]
            statuses.update(order)
            found["rescored"] += final["rescored"]
            found["not released"] += not final["released"]
            found["evaluations"] += 1
            forms[final["formId"]].add(final["contextId"])
        calibrations = {e.get("calibrationId") for e in record["evaluations"]} - {None}
        if calibrations:
            found["calibration"] += 1
            assert len(record["evaluations"]) == 2 and len(calibrations) == 1
            assert len({e["evaluatorId"] for e in record["evaluations"]}) == 2
    assert problems == []
    assert all(len(context_ids) == 1 for context_ids in forms.values())  # a form's context id, whatever the version
    # Evaluations on a fraction of agent conversations, each seen Pending or InProgress before Finished
    agent_conversations = sum(_handled_by(r) is not None for _, r in day)
    assert 0.03 * agent_conversations < len(evaluated) < 0.1 * agent_conversations
    assert statuses["Pending"] > 0.4 * found["evaluations"] and statuses["InProgress"] > 0.4 * found["evaluations"]
    assert found["rescored"] >= 1 and found["calibration"] >= 3 and 0 < found["not released"] < found["evaluations"] / 3


def test_surveys_are_on_a_few_per_cent_of_conversations(day):
    surveyed = [r for _, r in day if "surveys" in r]
    assert 0.015 * VOLUME < len(surveyed) < 0.05 * VOLUME
    surveys = [s for r in surveyed for s in r["surveys"]]
    assert sdk_lost_fields(surveys, "list[AnalyticsSurvey]") == []
    assert {s["surveyType"] for s in surveys} == {"Voice", "Web"}
    partial = sum(s["surveyPartialResponse"] for s in surveys)
    assert 0 < partial < len(surveys) / 4


def test_resolutions_come_a_week_after_the_last_agent_handled_the_customer(centre, day):
    eligible = resolved = 0
    problems: list[str] = []
    for plan, record in day:
        handled = _handled_by(record)
        resolutions = record.get("resolutions", [])
        if handled is None or record["originatingDirection"] != "inbound":
            assert not resolutions, record["conversationId"]
            continue
        eligible += 1
        if not resolutions:
            continue
        resolved += 1
        (resolution,) = resolutions
        assert list(resolution) == ["eventTime", "queueId", "userId", "nNextContactAvoided"]
        assert (resolution["queueId"], resolution["userId"]) == handled
        assert resolution["nNextContactAvoided"] == 1
        at = _ms(resolution["eventTime"])
        assert plan.end_ms + NCA_LOOKUP_MS < at < plan.end_ms + NCA_LOOKUP_MS + 24 * HOUR_MS
        assert "resolutions" not in centre.render(plan, at - 1, with_attributes=False)
        problems += sdk_lost_fields(resolutions, "list[AnalyticsResolution]")
    assert problems == []
    assert 0.6 * eligible < resolved < 0.85 * eligible  # the customers who did not come back within 7 days


def test_voice_legs_carry_every_media_endpoint_stat(day):
    fields = list(sdk_models.AnalyticsMediaEndpointStat().attribute_map.values())
    codecs, lossy, legs = collections.Counter(), 0, 0
    for _, record in day:
        for participant, session in _sessions(record):
            stats = session.get("mediaEndpointStats", [])
            assert not stats or session["mediaType"] == "voice"
            for stat in stats:
                legs += 1
                assert list(stat) == fields  # every field, in the model's order
                assert all(type(stat[f]) is int for f in fields if f.endswith(("Packets", "Ms")))
                assert stat["discardedPackets"] >= stat["overrunPackets"] + stat["underrunPackets"]
                assert stat["receivedPackets"] >= stat["discardedPackets"] + stat["duplicatePackets"] + stat["invalidPackets"]
                lossy += stat["discardedPackets"] > 0.01 * stat["receivedPackets"]
                trunk = participant["purpose"] in ("customer", "external", "ivr")
                codecs[trunk, *stat["codecs"]] += 1
    assert set(codecs) == {(True, "audio/PCMU"), (False, "audio/opus")}
    assert 0.01 * legs < lossy < 0.1 * legs


def _flows(record: dict[str, Any]) -> Iterator[tuple[dict[str, Any], dict[str, Any]]]:
    for participant, session in _sessions(record):
        if "flow" in session:
            yield session, session["flow"]


def test_flow_sessions_carry_exit_fields_outcomes_and_milestones(centre, day):
    seen: dict[str, set[str]] = collections.defaultdict(set)
    found, outcome_ids = collections.Counter(), set()
    for plan, record in day:
        for session, flow in _flows(record):
            seen["AnalyticsFlow"] |= set(flow)
            totals = collections.Counter()
            for metric in session.get("metrics", []):
                totals[metric["name"]] += metric["value"]
            if flow["flowType"] in ("INQUEUECALL", "INQUEUEEMAIL", "INQUEUESHORTMESSAGE"):
                if flow.get("issuedCallback"):  # offered to a voice caller who gave up waiting
                    found["callback issued"] += 1
                    assert "tAbandon" in totals and session["mediaType"] == "voice"
                continue
            assert {"entryType", "exitReason", "startingLanguage", "endingLanguage"} <= set(flow), flow
            transfer = {"transferTargetAddress", "transferTargetName", "transferType"}
            assert (flow["exitReason"] == "TRANSFER") == (transfer <= set(flow)), flow
            found["language changed"] += flow["startingLanguage"] != flow["endingLanguage"]
            segment_start = min(_ms(g["segmentStart"]) for g in session["segments"])
            segment_end = max(_ms(g["segmentEnd"]) for g in session["segments"])
            failed = succeeded_ms = 0
            for outcome in flow.get("outcomes", []):
                seen["AnalyticsFlowOutcome"] |= set(outcome)
                outcome_ids.add(outcome["flowOutcomeId"])
                value = outcome["flowOutcomeValue"]
                assert outcome["flowOutcome"] == f"{outcome['flowOutcomeId']}:{value}"
                assert value in ("SUCCESS", "FAILURE") and (value == "SUCCESS") == ("flowOutcomeEndTimestamp" in outcome)
                started = _ms(outcome["flowOutcomeStartTimestamp"])
                assert segment_start <= started <= segment_end
                if value == "SUCCESS":
                    succeeded_ms += _ms(outcome["flowOutcomeEndTimestamp"]) - started
                    assert started <= _ms(outcome["flowOutcomeEndTimestamp"]) <= segment_end
                failed += value == "FAILURE"
                found[flow["flowType"], value] += 1
            outcomes = flow.get("outcomes", [])
            assert totals["nFlowOutcome"] == len(outcomes) and totals["nFlowOutcomeFailed"] == failed
            assert totals["tFlowOutcome"] == succeeded_ms
            found["milestones"] += totals["nFlowMilestone"]
            assert flow["flowType"] != "INBOUNDCALL" or totals["nFlowMilestone"] >= 1
            # While the flow runs it has no exit fields and no outcomes yet
            running = centre.render(plan, segment_start, with_attributes=False)
            running_flow = next(f for s, f in _flows(running) if s["sessionId"] == session["sessionId"])
            assert not {"exitReason", "endingLanguage", "outcomes"} & set(running_flow)
            assert running_flow["startingLanguage"] == flow["startingLanguage"]
    listed = {outcome["id"]: outcome["name"] for outcome in centre.flow_outcomes}  # GET /api/v2/flows/outcomes
    assert outcome_ids <= set(listed) and len(listed) == len(set(listed.values()))
    assert {listed[i] for i in outcome_ids} == {n for names in texts.IVR_FLOW_OUTCOMES for n in names} | set(
        texts.CAMPAIGN_FLOW_OUTCOMES)
    for kind in (("INBOUNDCALL", "SUCCESS"), ("INBOUNDCALL", "FAILURE"), ("OUTBOUNDCALL", "SUCCESS"),
                 ("OUTBOUNDCALL", "FAILURE"), "callback issued", "language changed"):  # fmt: skip
        assert found[kind] >= 3, (kind, found)
    assert found["milestones"] > 0.5 * VOLUME
    for model, keys in seen.items():  # every field of the SDK models shows up in a day
        fields = set(getattr(sdk_models, model)().attribute_map.values())
        assert keys == fields - NEVER_FILLED.get(model, set()), model


def test_every_sdk_field_of_the_quality_models_shows_up_in_a_day(day):
    """The models the new tables read: each field is present somewhere (the evaluation's calibrationId
    only on calibrations, the survey's on every survey...)."""
    seen: dict[str, set[str]] = collections.defaultdict(set)
    for _, record in day:
        for key, model in (("evaluations", "AnalyticsEvaluation"), ("surveys", "AnalyticsSurvey"),
                           ("resolutions", "AnalyticsResolution")):  # fmt: skip
            for item in record.get(key, []):
                seen[model] |= set(item)
    for model in ("AnalyticsEvaluation", "AnalyticsSurvey", "AnalyticsResolution"):
        assert seen[model] == set(getattr(sdk_models, model)().attribute_map.values()), model
