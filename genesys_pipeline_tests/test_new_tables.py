"""CONVERSATIONS_RAW and the quality, survey and flow tables (issue 12) on hand-made records: every field
of the SDK models into its column, the edge cases (no evaluations, several surveys, a flow without
outcomes, stats on a non-voice session), names, keys and errors that say where the bad value is.
The emulator day through the whole pipeline is in test_new_tables_pipeline.py."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

import orjson
import pyarrow.parquet as pq
import pytest

from genesys_pipeline.contracts.tables import TABLES_BY_NAME
from genesys_pipeline.steps.flatten import (
    FlattenError,
    FlattenReport,
    ParquetSink,
    flatten,
)
from genesys_pipeline_tests.test_flatten import (
    DAY,
    EXTRACTED,
    LOOKUPS,
    Q1,
    Q2,
    U1,
    U2,
    U_GONE,
    _broken,
    record,
    tables_of,
    ts,
)

EVALUATOR = U2


def when(minute: int) -> datetime:
    return datetime(2024, 5, 8, 10, minute, tzinfo=timezone.utc)


def evaluation(evaluation_id: str = "e-1", **fields: Any) -> dict[str, Any]:
    """An AnalyticsEvaluation with every field of the SDK model."""
    return {"assigneeApplicable": True, "assigneeId": U1, "calibrationId": None, "contextId": "form-ctx",
            "deleted": False, "evaluationId": evaluation_id, "evaluationStatus": "Finished", "evaluatorId": EVALUATOR,
            "eventTime": ts(30), "formId": "form-v2", "formName": "Voice QA", "queueId": Q1, "released": True,
            "rescored": False, "systemSubmitted": False, "userId": U1, "oTotalCriticalScore": 100,
            "oTotalScore": 87, **fields}  # fmt: skip


def survey(survey_id: str, score: int | None, **fields: Any) -> dict[str, Any]:
    out = {"eventTime": ts(40), "queueId": Q1, "surveyCompletedDate": ts(40), "surveyFormContextId": "sf-ctx",
           "surveyFormId": "sf-1", "surveyFormName": "Post-call NPS", "surveyId": survey_id,
           "surveyPartialResponse": False, "surveyStatus": "Finished", "surveyType": "Voice", "userId": U1,
           "oSurveyTotalScore": 80, **fields}  # fmt: skip
    if score is not None:
        out["surveyPromoterScore"] = score
    return out


def stat(mos: float, **fields: Any) -> dict[str, Any]:
    return {"codecs": ["audio/opus"], "discardedPackets": 3, "duplicatePackets": 1, "eventTime": ts(8),
            "invalidPackets": 0, "maxLatencyMs": 180, "minMos": mos, "minRFactor": 81.25, "overrunPackets": 2,
            "receivedPackets": 24_000, "underrunPackets": 1, **fields}  # fmt: skip


def ivr_participant(flow: dict[str, Any], session_id: str = "s-ivr") -> dict[str, Any]:
    return {"participantId": "p-ivr", "participantName": "Main IVR", "purpose": "ivr",
            "sessions": [{"direction": "inbound", "mediaType": "voice", "sessionId": session_id, "flow": flow,
                          "segments": [{"segmentStart": ts(0), "segmentEnd": ts(1), "segmentType": "ivr"}]}]}  # fmt: skip


FLOW = {"endingLanguage": "en-us", "entryReason": "tel:+18005550100", "entryType": "dnis", "exitReason": "TRANSFER",
        "flowId": "flow-1", "flowName": "Main IVR", "flowType": "INBOUNDCALL", "flowVersion": "12.0",
        "issuedCallback": False, "recognitionFailureReason": "NO_MATCH", "startingLanguage": "en-us",
        "transferTargetAddress": Q1, "transferTargetName": "Support", "transferType": "ACD"}  # fmt: skip
OUTCOMES = [
    {"flowOutcome": "o-auth:SUCCESS", "flowOutcomeEndTimestamp": ts(1), "flowOutcomeId": "o-auth",
     "flowOutcomeStartTimestamp": ts(0), "flowOutcomeValue": "SUCCESS"},
    {"flowOutcome": "o-pay:FAILURE", "flowOutcomeId": "o-pay", "flowOutcomeStartTimestamp": ts(0, 30),
     "flowOutcomeValue": "FAILURE"},
]  # fmt: skip


def rows(records: list[dict[str, Any]], table: str) -> list[dict[str, Any]]:
    return tables_of(records)[table].to_pylist()


def test_the_raw_record_is_the_line_of_the_raw_file_and_its_keys_are_the_conversations(tmp_path):
    records = [record("c-1"), record("c-2", surveys=[survey("sv-1", 9)], unknownNewField={"nested": [1, 2.5]})]
    records = [orjson.loads(orjson.dumps(r)) for r in records]  # as the raw file hands them over
    (first, second) = rows(records, "conversations_raw")
    assert orjson.loads(second["record"]) == records[1]
    assert second["record"].encode() == orjson.dumps(records[1])  # byte for byte the raw file's line
    assert (first["conversation_id"], first["conversation_start"], first["partition_date"]) == ("c-1", when(0), DAY)
    assert (first["extraction_run_id"], first["extracted_at"]) == ("run-1", EXTRACTED)
    with ParquetSink(lambda name: open(tmp_path / f"{name}.parquet", "wb")) as sink:
        report = flatten(records, LOOKUPS, sink, partition_date=DAY, run_id="r", extracted_at=EXTRACTED)
    assert report.rows["conversations_raw"] == 2
    read = pq.read_table(tmp_path / "conversations_raw.parquet")
    assert read.schema.remove_metadata() == TABLES_BY_NAME["conversations_raw"].arrow_schema
    assert [orjson.loads(r) for r in read.column("record").to_pylist()] == records


def test_evaluations_one_row_each_with_names_and_none_for_a_conversation_without():
    with_two = record("c-eval", evaluations=[evaluation("e-1"), evaluation(
        "e-2", evaluationStatus="InProgress", userId=U_GONE, queueId="q-gone", released=False, oTotalScore=None,
        calibrationId="cal-1", assigneeApplicable=None)])  # fmt: skip
    got = rows([record("c-none"), with_two, record("c-empty", evaluations=[])], "evaluations")
    assert [(r["conversation_id"], r["evaluation_id"]) for r in got] == [("c-eval", "e-1"), ("c-eval", "e-2")]
    first, second = got
    assert first == {
        "conversation_id": "c-eval", "evaluation_id": "e-1", "partition_date": DAY, "form_id": "form-v2",
        "form_name": "Voice QA", "form_context_id": "form-ctx", "evaluation_status": "Finished",
        "event_time": when(30), "evaluator_id": EVALUATOR, "evaluator_name": "Bob Former (deleted)",
        "user_id": U1, "user_name": "Ann Agent", "queue_id": Q1, "queue_name": "Support", "assignee_id": U1,
        "assignee_applicable": True, "calibration_id": None, "total_score": 87, "total_critical_score": 100,
        "released": True, "rescored": False, "deleted": False, "system_submitted": False,
        "extraction_run_id": "run-1",
    }  # fmt: skip
    assert (second["user_name"], second["queue_name"], second["total_score"]) == (None, None, None)
    assert (second["evaluation_status"], second["released"], second["calibration_id"]) == ("InProgress", False, "cal-1")


def test_several_surveys_with_their_promoter_categories():
    surveys = [survey("sv-10", 10), survey("sv-9", 9), survey("sv-8", 8, surveyType="Web"), survey("sv-7", 7),
               survey("sv-6", 6, surveyPartialResponse=True), survey("sv-0", 0), survey("sv-none", None)]
    got = rows([record("c-1", surveys=surveys)], "surveys")
    assert [(r["survey_id"], r["promoter_score"], r["promoter_category"]) for r in got] == [
        ("sv-10", 10, "promoter"), ("sv-9", 9, "promoter"), ("sv-8", 8, "passive"), ("sv-7", 7, "passive"),
        ("sv-6", 6, "detractor"), ("sv-0", 0, "detractor"), ("sv-none", None, None),
    ]  # fmt: skip
    first = got[0]
    assert (first["survey_form_id"], first["survey_form_name"], first["survey_form_context_id"]) == ("sf-1", "Post-call NPS", "sf-ctx")
    assert (first["survey_type"], first["survey_status"], first["completed_at"], first["event_time"]) == ("Voice", "Finished", when(40), when(40))
    assert (first["total_score"], first["user_name"], first["queue_name"], first["partial_response"]) == (80, "Ann Agent", "Support", False)
    assert got[2]["survey_type"] == "Web" and got[4]["partial_response"] is True


def test_resolutions_are_keyed_by_their_position():
    resolutions = [{"eventTime": ts(50), "nNextContactAvoided": 1, "queueId": Q2, "userId": U1},
                   {"eventTime": ts(55), "queueId": Q1}]  # fmt: skip
    got = rows([record("c-0"), record("c-1", resolutions=resolutions)], "resolutions")
    assert got == [
        {"conversation_id": "c-1", "resolution_index": 0, "partition_date": DAY, "queue_id": Q2, "queue_name": "Billing",
         "user_id": U1, "user_name": "Ann Agent", "next_contact_avoided": 1, "event_time": when(50), "extraction_run_id": "run-1"},
        {"conversation_id": "c-1", "resolution_index": 1, "partition_date": DAY, "queue_id": Q1, "queue_name": "Support",
         "user_id": None, "user_name": None, "next_contact_avoided": None, "event_time": when(55), "extraction_run_id": "run-1"},
    ]  # fmt: skip


def test_media_endpoint_stats_per_session_also_on_a_non_voice_session():
    call = record("c-1")
    call["participants"][0]["sessions"][0]["mediaEndpointStats"] = [stat(4.38), stat(2.9, codecs=["audio/PCMU", "audio/opus"])]
    chat = record("c-2")
    session = chat["participants"][2]["sessions"][0]
    session["mediaType"] = "chat"
    session["mediaEndpointStats"] = [{"eventTime": ts(3), "receivedPackets": 12}]  # no codecs, no MOS
    got = rows([call, record("c-none"), chat], "media_endpoint_stats")
    keys = [(r["conversation_id"], r["participant_id"], r["session_id"], r["stat_index"]) for r in got]
    assert keys == [("c-1", "p-cust", "s-cust", 0), ("c-1", "p-cust", "s-cust", 1), ("c-2", "p-agent", "s-agent", 0)]
    assert got[0] | {"conversation_id": "-"} == {
        "conversation_id": "-", "participant_id": "p-cust", "session_id": "s-cust", "stat_index": 0, "partition_date": DAY,
        "codecs": '["audio/opus"]', "min_mos": 4.38, "min_r_factor": 81.25, "max_latency_ms": 180,
        "received_packets": 24_000, "discarded_packets": 3, "duplicate_packets": 1, "invalid_packets": 0,
        "overrun_packets": 2, "underrun_packets": 1, "event_time": when(8), "extraction_run_id": "run-1",
    }  # fmt: skip
    assert got[1]["codecs"] == '["audio/PCMU","audio/opus"]' and got[1]["min_mos"] == 2.9
    assert (got[2]["codecs"], got[2]["min_mos"], got[2]["received_packets"]) == (None, None, 12)
    sessions = tables_of([call, chat])["sessions"].to_pylist()
    assert {(r["conversation_id"], r["session_id"]): r["media_type"] for r in sessions}[("c-2", "s-agent")] == "chat"


def test_flows_one_row_per_flow_session_with_outcomes_as_child_rows():
    with_outcomes = record("c-1")
    with_outcomes["participants"].insert(1, ivr_participant(FLOW | {"outcomes": OUTCOMES}))
    in_queue = {"flowId": "flow-q", "flowName": "Hold music", "flowType": "INQUEUECALL", "flowVersion": "3.0"}
    with_outcomes["participants"][2]["sessions"][0]["flow"] = in_queue  # the acd session: no outcomes
    without = record("c-2")
    without["participants"].insert(1, ivr_participant(FLOW))
    flat = tables_of([with_outcomes, without, record("c-3")])
    flows = flat["flows"].to_pylist()
    assert [(r["conversation_id"], r["participant_id"], r["session_id"], r["outcome_count"]) for r in flows] == [
        ("c-1", "p-ivr", "s-ivr", 2), ("c-1", "p-acd", "s-acd", 0), ("c-2", "p-ivr", "s-ivr", 0)]
    assert flows[0] == {
        "conversation_id": "c-1", "participant_id": "p-ivr", "session_id": "s-ivr", "partition_date": DAY,
        "flow_id": "flow-1", "flow_name": "Main IVR", "flow_type": "INBOUNDCALL", "flow_version": "12.0",
        "entry_type": "dnis", "entry_reason": "tel:+18005550100", "exit_reason": "TRANSFER", "transfer_type": "ACD",
        "transfer_target_address": Q1, "transfer_target_name": "Support", "issued_callback": False,
        "starting_language": "en-us", "ending_language": "en-us", "recognition_failure_reason": "NO_MATCH",
        "outcome_count": 2, "extraction_run_id": "run-1",
    }  # fmt: skip
    assert (flows[1]["flow_name"], flows[1]["exit_reason"], flows[1]["entry_type"]) == ("Hold music", None, None)
    outcomes = flat["flow_outcomes"].to_pylist()
    assert [(r["conversation_id"], r["session_id"], r["outcome_index"], r["flow_outcome_id"], r["flow_outcome_value"],
             r["flow_outcome"], r["outcome_start"], r["outcome_end"]) for r in outcomes] == [
        ("c-1", "s-ivr", 0, "o-auth", "SUCCESS", "o-auth:SUCCESS", when(0), when(1)),
        ("c-1", "s-ivr", 1, "o-pay", "FAILURE", "o-pay:FAILURE", datetime(2024, 5, 8, 10, 0, 30, tzinfo=timezone.utc), None),
    ]  # fmt: skip
    # The sessions table keeps its three flow columns.
    sessions = {r["session_id"]: r for r in flat["sessions"].to_pylist() if r["conversation_id"] == "c-1"}
    assert (sessions["s-ivr"]["flow_name"], sessions["s-ivr"]["flow_exit_reason"]) == ("Main IVR", "TRANSFER")


def test_keys_are_unique_and_never_null_across_many_records():
    records = []
    for i in range(40):  # more than a chunk of the hot loop's batches would need, with details everywhere
        r = record(f"c-{i}", evaluations=[evaluation(f"e-{i}-{n}") for n in range(i % 3)],
                   surveys=[survey(f"s-{i}", i % 11)] if i % 4 == 0 else [],
                   resolutions=[{"nNextContactAvoided": 1, "eventTime": ts(i % 60)}] * (i % 2))  # fmt: skip
        r["participants"].insert(1, ivr_participant(FLOW | {"outcomes": OUTCOMES[: i % 3]}))
        r["participants"][0]["sessions"][0]["mediaEndpointStats"] = [stat(4.0)] * (i % 3)
        records.append(r)
    flat = tables_of(records, batch_conversations=7)
    for name in ("conversations_raw", "evaluations", "surveys", "resolutions", "media_endpoint_stats", "flows", "flow_outcomes"):
        table = TABLES_BY_NAME[name]
        keys = [tuple(r[k] for k in table.key) for r in flat[name].to_pylist()]
        assert keys and len(set(keys)) == len(keys) and all(None not in k for k in keys), name
    assert flat["evaluations"].num_rows == sum(i % 3 for i in range(40))
    assert flat["flow_outcomes"].num_rows == sum(i % 3 for i in range(40)) == sum(flat["flows"].column("outcome_count").to_pylist())


def test_ids_the_listings_do_not_know_are_counted_as_unresolved():
    report = FlattenReport()
    tables_of([record(evaluations=[evaluation(evaluatorId="u-evaluator-gone", queueId="q-eval-gone")],
                      resolutions=[{"userId": "u-resolver-gone"}])], report=report)  # fmt: skip
    assert {"u-evaluator-gone", "u-resolver-gone"} <= report.unresolved["users"]
    assert "q-eval-gone" in report.unresolved["queues"]


def _with(path: str, value: Any) -> list[dict[str, Any]]:
    bad = record("c-2")
    bad["participants"].insert(1, ivr_participant(FLOW | {"outcomes": [dict(o) for o in OUTCOMES]}))
    bad["participants"][0]["sessions"][0]["mediaEndpointStats"] = [stat(4.1), stat(3.9)]
    bad["evaluations"], bad["surveys"] = [evaluation("e-1"), evaluation("e-2")], [survey("sv-1", 3)]
    return _broken(path, value, bad=bad)


@pytest.mark.parametrize(
    ("path", "value", "expected"),
    [
        ("evaluations.1.evaluationId", ..., r"line 2 \(conversation c-2\): evaluations\[1\]\.evaluationId is missing"),
        ("evaluations.0.oTotalScore", 87.5, r"line 2 \(conversation c-2\): evaluations\[0\]\.oTotalScore is not an integer: 87\.5"),
        ("evaluations.0.eventTime", "last week", r"evaluations\[0\]\.eventTime is not an ISO-8601 timestamp"),
        ("evaluations", {"evaluationId": "e"}, r"line 2 \(conversation c-2\): evaluations is a dict, not a list"),
        ("surveys.0", "sv-1", r"line 2 \(conversation c-2\): surveys\[0\] is a str, not an object"),
        ("surveys.0.surveyId", ..., r"surveys\[0\]\.surveyId is missing"),
        ("surveys.0.surveyPartialResponse", "no", r"surveys\[0\]\.surveyPartialResponse is not a boolean"),
        ("participants.0.sessions.0.mediaEndpointStats.1.minMos", "good",
         r"line 2 \(conversation c-2\): participants\[0\]\.sessions\[0\]\.mediaEndpointStats\[1\]\.minMos is not a number: 'good'"),
        ("participants.0.sessions.0.mediaEndpointStats.0.codecs", "audio/opus",
         r"participants\[0\]\.sessions\[0\]\.mediaEndpointStats\[0\]\.codecs is a str, not a list"),
        ("participants.1.sessions.0.flow.issuedCallback", "yes",
         r"participants\[1\]\.sessions\[0\]\.flow\.issuedCallback is not a boolean"),
        ("participants.1.sessions.0.flow.outcomes.1.flowOutcomeStartTimestamp", "soon",
         r"line 2 \(conversation c-2\): participants\[1\]\.sessions\[0\]\.flow\.outcomes\[1\]\.flowOutcomeStartTimestamp is not an ISO-8601"),
        ("participants.1.sessions.0.flow.outcomes", "o-auth", r"participants\[1\]\.sessions\[0\]\.flow\.outcomes is a str, not a list"),
    ],
)  # fmt: skip
def test_bad_details_name_the_field_and_where_it_is(path, value, expected):
    with pytest.raises(FlattenError, match=expected):
        tables_of(_with(path, value))
