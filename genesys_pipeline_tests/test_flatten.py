"""The flattener on hand-made records, and `flattened_conversations` materialized through Dagster against
the emulator over HTTP."""

from __future__ import annotations

import copy
import gzip
import io
import json
import shutil
from datetime import date, datetime, timezone
from pathlib import Path
from typing import Any

import dagster as dg
import orjson
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from genesys_pipeline.contracts.paths import (
    flat_manifest_path,
    flat_table_path,
    raw_lookups_path,
    raw_manifest_path,
    raw_records_path,
)
from genesys_pipeline.contracts.tables import TABLES, TABLES_BY_NAME
from genesys_pipeline.defs.flattened_conversations import flattened_conversations
from genesys_pipeline.defs.raw_conversations import raw_conversations
from genesys_pipeline.local.emulator import EmulatorServer, texts
from genesys_pipeline.resources.working_storage import WorkingStorage
from genesys_pipeline.steps.flatten import (
    FlattenError,
    FlattenReport,
    Lookups,
    ParquetSink,
    flatten,
    flatten_to_tables,
    read_raw_records,
)
from genesys_pipeline.steps.flatten.day import RowCountMismatch
from genesys_pipeline.steps.flatten.lookups import LookupsError, load_lookups
from genesys_pipeline_tests.conftest import genesys_for

DAY = date(2024, 5, 8)
EXTRACTED = datetime(2024, 5, 10, 12, 0, tzinfo=timezone.utc)
Q1, Q2, Q_GONE = "q-1", "q-2", "q-deleted"
U1, U2, U_GONE = "u-1", "u-2", "u-unknown"
W1, W2 = "w-1", "w-2"
D1, D_GONE = "d-1", "d-unknown"
DEFAULT_WRAPUP_CODE = "7fb334b0-0e9e-11e4-9191-0800200c9a66"  # the same id in every org, not listed
LOOKUPS = Lookups(
    queues={Q1: "Support", Q2: "Billing"},
    wrapup_codes={W1: "Resolved", W2: "Refund issued"},
    users={U1: "Ann Agent", U2: "Bob Former (deleted)"},
    divisions={D1: "Customer Care"},
)


def ts(minute: int, second: int = 0, ms: int = 0) -> str:
    return f"2024-05-08T10:{minute:02d}:{second:02d}.{ms:03d}Z"


def metric(name: str, value: Any, minute: int = 0) -> dict[str, Any]:
    return {"emitDate": ts(minute), "name": name, "value": value}


def segment(kind: str, start: int, end: int | None, **fields: Any) -> dict[str, Any]:
    out = {"conference": False, "segmentStart": ts(start), "segmentType": kind, **fields}
    if end is not None:
        out["segmentEnd"] = ts(end)
    return out


def record(conversation_id: str = "c-1", **overrides: Any) -> dict[str, Any]:
    """An inbound voice call: customer -> acd (Q1) -> agent U1, wrapped up with W1."""
    base = {
        "conversationEnd": ts(9),
        "conversationId": conversation_id,
        "conversationStart": ts(0),
        "divisionIds": [D1],
        "originatingDirection": "inbound",
        "participants": [
            {"participantId": "p-cust", "participantName": "15551234567", "purpose": "customer",
             "sessions": [{"direction": "inbound", "mediaType": "voice", "sessionId": "s-cust", "ani": "tel:+1555",
                           "metrics": [metric("nConnected", 1), metric("tConnected", 480_000, 8)],
                           "segments": [segment("system", 0, 1),
                                        segment("interact", 1, 8, queueId=Q1, disconnectType="endpoint")]}]},
            {"participantId": "p-acd", "participantName": "Support", "purpose": "acd",
             "sessions": [{"direction": "inbound", "mediaType": "voice", "sessionId": "s-acd", "peerId": "s-cust",
                           "metrics": [metric("nOffered", 1, 1), metric("tAcd", 60_000, 2)],
                           "segments": [segment("delay", 1, 1, queueId=Q1),
                                        segment("interact", 1, 2, queueId=Q1, disconnectType="transfer")]}]},
            {"participantId": "p-agent", "purpose": "agent", "userId": U1,
             "sessions": [{"direction": "inbound", "mediaType": "voice", "sessionId": "s-agent",
                           "metrics": [metric("tTalk", 100_000, 4), metric("tHeld", 30_000, 5),
                                       metric("tTalk", 150_000, 8), metric("tHeld", 20_000, 6),
                                       metric("tAcw", 60_000, 9), metric("tHandle", 360_000, 9)],
                           "segments": [segment("alert", 2, 2, queueId=Q1),
                                        segment("interact", 2, 4, queueId=Q1),
                                        segment("hold", 4, 5, queueId=Q1),
                                        segment("interact", 5, 8, queueId=Q1),
                                        segment("wrapup", 8, 9, queueId=Q1, wrapUpCode=W1,
                                                wrapUpNote="customer asked for balance")]}]},
        ],
    }  # fmt: skip
    base.update(overrides)
    return base


def tables_of(records: list[dict[str, Any]], lookups: Lookups = LOOKUPS, **kwargs: Any) -> dict[str, pa.Table]:
    return flatten_to_tables(records, lookups, partition_date=DAY, run_id="run-1", extracted_at=EXTRACTED, **kwargs)


def rows(table: pa.Table) -> list[dict[str, Any]]:
    return table.to_pylist()


# --- unit tests ----------------------------------------------------------------------------------


def test_every_table_has_exactly_the_schema_of_tables_py():
    flat = tables_of([record()])
    assert list(flat) == [table.name for table in TABLES]
    for table in TABLES:
        assert flat[table.name].schema == table.arrow_schema


def test_a_conversation_row_carries_ids_names_times_and_sums():
    (row,) = rows(tables_of([record()])["conversations"])
    assert row["conversation_id"] == "c-1" and row["partition_date"] == DAY
    assert row["conversation_start"] == datetime(2024, 5, 8, 10, 0, tzinfo=timezone.utc)
    assert row["duration_ms"] == 9 * 60_000 and row["ongoing"] is False
    assert json.loads(row["media_types"]) == ["voice"]
    assert json.loads(row["division_ids"]) == [D1] and json.loads(row["division_names"]) == ["Customer Care"]
    assert (row["first_queue_id"], row["first_queue_name"]) == (Q1, "Support")
    assert json.loads(row["agent_ids"]) == [U1] and json.loads(row["agent_names"]) == ["Ann Agent"]
    assert (row["final_wrapup_code_id"], row["final_wrapup_code_name"]) == (W1, "Resolved")
    assert row["wait_ms"] == 60_000 and row["acw_ms"] == 60_000 and row["handle_ms"] == 360_000
    assert row["abandon_ms"] is None and row["abandoned"] is False and row["transferred"] is False
    assert row["extraction_run_id"] == "run-1" and row["extracted_at"] == EXTRACTED


def test_repeated_metrics_are_summed_over_all_sessions_and_each_emission_is_a_row():
    conversation = record()
    second_session = copy.deepcopy(conversation["participants"][2]["sessions"][0])
    second_session["sessionId"] = "s-agent-2"
    second_session["metrics"] = [metric("tTalk", 5_000), metric("tHeld", 1_000), metric("tHeld", 2_000)]
    conversation["participants"][2]["sessions"].append(second_session)
    flat = tables_of([conversation])
    (row,) = rows(flat["conversations"])
    assert row["talk_ms"] == 100_000 + 150_000 + 5_000
    assert row["hold_ms"] == 30_000 + 20_000 + 1_000 + 2_000
    metrics = [(r["session_id"], r["metric_index"], r["name"], r["value"]) for r in rows(flat["session_metrics"])]
    assert [m for m in metrics if m[0] == "s-agent-2"] == [
        ("s-agent-2", 0, "tTalk", 5_000), ("s-agent-2", 1, "tHeld", 1_000), ("s-agent-2", 2, "tHeld", 2_000)]
    assert len(metrics) == 2 + 2 + 6 + 3


def test_a_sum_is_null_when_its_metric_never_appears():
    conversation = record()
    conversation["participants"][2]["sessions"][0]["metrics"] = [metric("tAlert", 3_000)]
    (row,) = rows(tables_of([conversation])["conversations"])
    assert row["talk_ms"] is None and row["hold_ms"] is None and row["handle_ms"] is None
    assert row["wait_ms"] == 60_000


def test_system_wrapup_code_is_kept_as_its_own_id_and_name():
    conversation = record()
    conversation["participants"][2]["sessions"][0]["segments"][-1]["wrapUpCode"] = "ININ-WRAP-UP-TIMEOUT"
    report = FlattenReport()
    flat = tables_of([conversation], report=report)
    (row,) = rows(flat["conversations"])
    assert row["final_wrapup_code_id"] == row["final_wrapup_code_name"] == "ININ-WRAP-UP-TIMEOUT"
    wrapup = rows(flat["segments"])[-1]
    assert wrapup["wrapup_code_id"] == wrapup["wrapup_code_name"] == "ININ-WRAP-UP-TIMEOUT"
    assert report.system_wrapup_codes == {"ININ-WRAP-UP-TIMEOUT"} and report.unresolved_counts()["wrapup_codes"] == 0


def test_the_default_wrapup_code_resolves_although_the_listing_lacks_it_and_a_listed_name_wins():
    conversation = record()
    conversation["participants"][2]["sessions"][0]["segments"][-1]["wrapUpCode"] = DEFAULT_WRAPUP_CODE
    report = FlattenReport()
    (row,) = rows(tables_of([conversation], Lookups.from_listings(), report=report)["conversations"])
    assert (row["final_wrapup_code_id"], row["final_wrapup_code_name"]) == (DEFAULT_WRAPUP_CODE, "Default Wrap-up Code")
    assert report.unresolved_counts()["wrapup_codes"] == 0
    renamed = Lookups.from_listings(wrapup_codes=[{"id": DEFAULT_WRAPUP_CODE, "name": "Other (default)"}])
    (row,) = rows(tables_of([conversation], renamed)["conversations"])
    assert row["final_wrapup_code_name"] == "Other (default)"


def test_final_wrapup_is_the_latest_agent_wrapup_even_when_listed_first():
    conversation = record()
    late_agent = copy.deepcopy(conversation["participants"][2])
    late_agent.update(participantId="p-agent-2", userId=U2)
    late_agent["sessions"][0]["sessionId"] = "s-agent-2"
    late_agent["sessions"][0]["segments"] = [segment("interact", 20, 30), segment("wrapup", 30, 31, wrapUpCode=W2)]
    conversation["participants"].insert(0, late_agent)  # first in the record, last in time
    (row,) = rows(tables_of([conversation])["conversations"])
    assert (row["final_wrapup_code_id"], row["final_wrapup_code_name"]) == (W2, "Refund issued")
    # Two agents who both talked, with no transfer metric or disconnect (a consult, say): not a transfer.
    assert json.loads(row["agent_ids"]) == [U2, U1] and row["transferred"] is False


def _party(purpose: str, name: str, *segments: dict[str, Any], **head: Any) -> dict[str, Any]:
    return {"participantId": f"p-{purpose}", "participantName": name, "purpose": purpose, **head,
            "sessions": [{"direction": "outbound", "mediaType": "voice", "sessionId": f"s-{purpose}",
                          "segments": list(segments)}]}  # fmt: skip


@pytest.mark.parametrize("purpose", ["outbound", "dialer", "campaign", "user"])
def test_the_dialer_and_users_wrap_up_too_and_the_latest_wrapup_wins(purpose):
    conversation = record()
    conversation["participants"].append(_party(purpose, "Renewals", segment("dialing", 0, 1),
                                               segment("wrapup", 20, 21, wrapUpCode="ININ-OUTBOUND-MACHINE")))
    (row,) = rows(tables_of([conversation])["conversations"])
    assert row["final_wrapup_code_id"] == row["final_wrapup_code_name"] == "ININ-OUTBOUND-MACHINE"
    conversation["participants"][2]["sessions"][0]["segments"][-1].update(segmentStart=ts(30), segmentEnd=ts(31))
    (row,) = rows(tables_of([conversation])["conversations"])
    assert (row["final_wrapup_code_id"], row["final_wrapup_code_name"]) == (W1, "Resolved")  # the agent's is later


def test_wrapup_codes_of_customers_queues_and_flows_are_not_the_final_wrapup():
    conversation = record()
    conversation["participants"][1]["sessions"][0]["segments"].append(segment("wrapup", 20, 21, wrapUpCode=W2))
    conversation["participants"].append(_party("ivr", "Main IVR", segment("ivr", 0, 1, wrapUpCode=W2)))
    (row,) = rows(tables_of([conversation])["conversations"])
    assert row["final_wrapup_code_id"] == W1


def test_unresolved_ids_stay_ids_and_are_counted():
    conversation = record(divisionIds=[D1, D_GONE])
    agent = conversation["participants"][2]
    agent["userId"] = U_GONE
    agent["sessions"][0]["segments"][-1]["wrapUpCode"] = "w-gone"
    for participant in conversation["participants"]:
        for seg in participant["sessions"][0]["segments"]:
            if "queueId" in seg:
                seg["queueId"] = Q_GONE
    conversation["participants"][1]["participantName"] = "Old queue name"
    report = FlattenReport()
    flat = tables_of([conversation], report=report)
    (row,) = rows(flat["conversations"])
    assert json.loads(row["division_names"]) == ["Customer Care", D_GONE]
    assert json.loads(row["agent_names"]) == [U_GONE]
    assert (row["final_wrapup_code_id"], row["final_wrapup_code_name"]) == ("w-gone", "w-gone")
    # A deleted queue keeps the name the acd participant carries; elsewhere it stays null.
    assert (row["first_queue_id"], row["first_queue_name"]) == (Q_GONE, "Old queue name")
    names = {(r["participant_id"], r["queue_name"]) for r in rows(flat["segments"]) if r["queue_id"]}
    assert names == {("p-cust", None), ("p-acd", "Old queue name"), ("p-agent", None)}
    users = {r["participant_id"]: (r["user_id"], r["user_name"]) for r in rows(flat["participants"])}
    assert users["p-agent"] == (U_GONE, None)
    assert {k: sorted(v) for k, v in report.unresolved.items()} == {
        "queues": [Q_GONE], "users": [U_GONE], "wrapup_codes": ["w-gone"], "divisions": [D_GONE]}


def test_a_deleted_user_resolves_from_the_state_any_listing():
    lookups = Lookups.from_listings(users=[{"id": U1, "name": "Ann Agent", "state": "deleted"}])
    (row,) = rows(tables_of([record()], lookups)["conversations"])
    assert json.loads(row["agent_names"]) == ["Ann Agent"]


def test_first_queue_prefers_the_earliest_acd_segment_then_any_segment():
    conversation = record()
    conversation["participants"][0]["sessions"][0]["segments"][0]["queueId"] = Q2  # customer, earlier, not acd
    (row,) = rows(tables_of([conversation])["conversations"])
    assert row["first_queue_id"] == Q1
    outbound = record()
    del outbound["participants"][1]  # no acd participant: the earliest segment with a queue, anyone's
    outbound["participants"][0]["sessions"][0]["segments"][1]["queueId"] = Q2  # minute 1, before the agent
    (row,) = rows(tables_of([outbound])["conversations"])
    assert (row["first_queue_id"], row["first_queue_name"]) == (Q2, "Billing")


def test_ongoing_conversation_has_no_end_and_no_duration():
    conversation = record()
    del conversation["conversationEnd"]
    wrapup = conversation["participants"][2]["sessions"][0]["segments"][-1]
    del wrapup["segmentEnd"], wrapup["wrapUpCode"]
    report = FlattenReport()
    flat = tables_of([conversation], report=report)
    (row,) = rows(flat["conversations"])
    assert row["conversation_end"] is None and row["duration_ms"] is None and row["ongoing"] is True
    assert row["final_wrapup_code_id"] is None and row["final_wrapup_code_name"] is None
    last = rows(flat["segments"])[-1]
    assert last["segment_end"] is None and last["duration_ms"] is None and last["segment_type"] == "wrapup"
    assert report.ongoing == 1


def test_transfers_and_abandons_set_their_flags():
    transferred = record("c-t")
    transferred["participants"][2]["sessions"][0]["metrics"].append(metric("nBlindTransferred", 1))
    abandoned = record("c-a")
    del abandoned["participants"][2]
    abandoned["participants"][1]["sessions"][0]["metrics"] = [metric("nOffered", 1), metric("tAbandon", 42_000)]
    by_id = {r["conversation_id"]: r for r in rows(tables_of([transferred, abandoned])["conversations"])}
    assert by_id["c-t"]["transferred"] is True and by_id["c-t"]["abandoned"] is False
    assert by_id["c-a"]["abandoned"] is True and by_id["c-a"]["abandon_ms"] == 42_000
    assert by_id["c-a"]["transferred"] is False and by_id["c-a"]["agent_ids"] == "[]"
    assert by_id["c-a"]["alerted_agent_ids"] == "[]" and by_id["c-a"]["alerted_agent_names"] == "[]"


def _rona(user_id: str = U2, disconnect: str = "noAnswerTransfer") -> dict[str, Any]:
    """An agent alerted who did not answer: the alert ends in a routing redirect, tNotResponding."""
    return {"participantId": f"p-rona-{user_id}", "purpose": "agent", "userId": user_id,
            "sessions": [{"direction": "inbound", "mediaType": "voice", "sessionId": f"s-rona-{user_id}",
                          "metrics": [metric("tAlert", 30_000, 2), metric("tNotResponding", 30_000, 2)],
                          "segments": [segment("alert", 1, 2, queueId=Q1, disconnectType=disconnect)]}]}  # fmt: skip


@pytest.mark.parametrize("redirect", ["noAnswerTransfer", "notAvailableTransfer", "dndTransfer"])
def test_a_routing_redirect_is_no_transfer_and_its_agent_was_only_alerted(redirect):
    conversation = record()
    conversation["participants"].insert(2, _rona(disconnect=redirect))
    (row,) = rows(tables_of([conversation])["conversations"])
    assert row["transferred"] is False  # the old rule (more than one agent) said True
    assert json.loads(row["agent_ids"]) == [U1] and json.loads(row["agent_names"]) == ["Ann Agent"]
    assert json.loads(row["alerted_agent_ids"]) == [U2]
    assert json.loads(row["alerted_agent_names"]) == ["Bob Former (deleted)"]


@pytest.mark.parametrize("disconnect", ["transfer", "consultTransfer", "conferenceTransfer", "forwardTransfer"])
@pytest.mark.parametrize("purpose", ["agent", "user"])
def test_a_transfer_disconnect_of_an_agent_or_user_is_a_transfer_without_any_metric(disconnect, purpose):
    conversation = record()
    person = conversation["participants"][2]
    person["purpose"] = purpose
    person["sessions"][0]["segments"][3]["disconnectType"] = disconnect
    (row,) = rows(tables_of([conversation])["conversations"])
    assert row["transferred"] is True
    assert json.loads(row["agent_ids"]) == ([U1] if purpose == "agent" else [])


def test_a_transfer_disconnect_of_a_queue_or_customer_is_no_transfer():
    conversation = record()  # the acd participant's interact already ends with `transfer` (to the agent)
    conversation["participants"][0]["sessions"][0]["segments"][1]["disconnectType"] = "transfer"  # a callback
    (row,) = rows(tables_of([conversation])["conversations"])
    assert row["transferred"] is False


def test_an_agent_handled_it_with_talk_or_handle_time_even_without_an_interact_segment():
    conversation = record()
    conversation["participants"] += [_rona(U2, "client"), _rona("u-3", "client")]
    conversation["participants"][3]["sessions"][0]["metrics"].append(metric("tHandle", 5_000, 3))
    conversation["participants"][4]["sessions"][0]["metrics"].append(metric("tTalk", None, 3))  # no value: still talk
    rona_again = _rona(U1, "noAnswerTransfer")  # U1 missed it once, then answered: handled, not alerted
    conversation["participants"].insert(1, rona_again)
    (row,) = rows(tables_of([conversation])["conversations"])
    assert json.loads(row["agent_ids"]) == [U1, U2, "u-3"] and json.loads(row["alerted_agent_ids"]) == []
    assert json.loads(row["agent_names"]) == ["Ann Agent", "Bob Former (deleted)", "u-3"]


def test_attributes_become_one_row_per_key_only_where_present():
    with_attributes = record("c-attr")
    with_attributes["participants"][0]["attributes"] = {"Intent": "billing", "Notes": "multi\nline"}
    flat = tables_of([record("c-plain"), with_attributes])
    assert rows(flat["participant_attributes"]) == [
        {"conversation_id": "c-attr", "participant_id": "p-cust", "partition_date": DAY,
         "attribute_key": key, "attribute_value": value, "extraction_run_id": "run-1"}
        for key, value in (("Intent", "billing"), ("Notes", "multi\nline"))
    ]  # fmt: skip
    empty = tables_of([record()])["participant_attributes"]
    assert empty.num_rows == 0 and empty.schema == TABLES_BY_NAME["participant_attributes"].arrow_schema


def test_unknown_fields_are_ignored_and_missing_fields_become_nulls():
    noisy = record("c-noisy", newTopLevel={"x": [1, 2]}, evaluations=[{"evaluationId": "e"}])
    noisy["participants"][0]["futureField"] = 1
    noisy["participants"][0]["sessions"][0]["mediaEndpointStats"] = [{"minMos": 4.2}]
    noisy["participants"][0]["sessions"][0]["segments"][0]["properties"] = [{"property": "p", "value": True}]
    minimal = {"conversationId": "c-min", "conversationStart": ts(3)}
    flat = tables_of([noisy, minimal])
    assert rows(flat["conversations"])[0]["media_types"] == '["voice"]'
    bare = rows(flat["conversations"])[1]
    assert bare["conversation_end"] is None and bare["division_ids"] is None and bare["media_types"] == "[]"
    assert bare["originating_direction"] is None and bare["first_queue_id"] is None and bare["talk_ms"] is None
    assert flat["participants"].num_rows == 3  # the minimal record has none


def test_timestamps_with_offsets_and_microseconds_are_normalised_to_utc_milliseconds():
    conversation = record(conversationStart="2024-05-08T12:00:00.123456+02:00")
    (row,) = rows(tables_of([conversation])["conversations"])
    assert row["conversation_start"] == datetime(2024, 5, 8, 10, 0, 0, 123000, tzinfo=timezone.utc)


HOSTILE = [
    *texts.WRAPUP_NOTES, *texts.CUSTOMER_NAMES, *texts.EMAIL_SUBJECTS, *texts.ATTRIBUTE_FREE_TEXT,
    texts.long_payload(1024), "", "  padded  ", "tab\there", "nul\x00byte", "\u2028line separator", "\\N", "NULL",
]  # fmt: skip


def test_hostile_strings_round_trip_through_parquet_exactly(tmp_path):
    conversations = []
    for i, text in enumerate(HOSTILE):
        conversation = record(f"c-{i}")
        customer = conversation["participants"][0]
        customer["participantName"] = text
        customer["attributes"] = {text or "empty": text, f"key {i}": "v"}
        wrapup = conversation["participants"][2]["sessions"][0]["segments"][-1]
        wrapup["wrapUpNote"], wrapup["subject"] = text, text[::-1]
        conversations.append(orjson.loads(orjson.dumps(conversation)))  # as the raw file hands it over
    lookups = Lookups(
        queues={Q1: texts.QUEUES[1][0]}, wrapup_codes={W1: texts.WRAPUP_CODES[12]},
        users={U1: texts.HOSTILE_STAFF[4]}, divisions={D1: texts.DIVISIONS[3][0]},
    )  # fmt: skip
    with ParquetSink(lambda name: open(tmp_path / f"{name}.parquet", "wb")) as sink:
        flatten(conversations, lookups, sink, partition_date=DAY, run_id="run-1", extracted_at=EXTRACTED)
    read = {table.name: pq.read_table(tmp_path / f"{table.name}.parquet") for table in TABLES}
    participants = [r for r in rows(read["participants"]) if r["participant_id"] == "p-cust"]
    assert [r["participant_name"] for r in participants] == HOSTILE
    wrapups = [r for r in rows(read["segments"]) if r["segment_type"] == "wrapup"]
    assert [(r["wrapup_note"], r["subject"]) for r in wrapups] == [(t, t[::-1]) for t in HOSTILE]
    attributes = [(r["attribute_key"], r["attribute_value"]) for r in rows(read["participant_attributes"])]
    assert [a for a in attributes if not a[0].startswith("key ")] == [(t or "empty", t) for t in HOSTILE]
    first = rows(read["conversations"])[0]
    assert first["first_queue_name"] == "Billing\nDisputes"
    assert json.loads(first["agent_names"]) == ['Zoë "Zee" Müller']
    assert json.loads(first["division_names"]) == ['Back Office, "EMEA"']
    assert first["final_wrapup_code_name"] == "Follow-up\r\nrequired"
    for table in TABLES:
        assert read[table.name].schema.remove_metadata() == table.arrow_schema


def test_batches_become_row_groups_with_the_same_rows(tmp_path):
    records = [record(f"c-{i}") for i in range(5)]
    with ParquetSink(lambda name: open(tmp_path / f"{name}.parquet", "wb")) as sink:
        report = flatten(records, LOOKUPS, sink, partition_date=DAY, run_id="r", extracted_at=EXTRACTED,
                         batch_conversations=2)  # fmt: skip
    assert report.batches == 3 and report.conversations == 5
    assert pq.ParquetFile(tmp_path / "segments.parquet").metadata.num_row_groups == 3
    single = flatten_to_tables(records, LOOKUPS, partition_date=DAY, run_id="r", extracted_at=EXTRACTED)
    for table in TABLES:
        assert pq.read_table(tmp_path / f"{table.name}.parquet").equals(single[table.name])


def test_no_records_still_writes_six_valid_empty_files(tmp_path):
    with ParquetSink(lambda name: open(tmp_path / f"{name}.parquet", "wb")) as sink:
        report = flatten([], LOOKUPS, sink, partition_date=DAY, run_id="r", extracted_at=EXTRACTED)
    assert report.conversations == 0
    for table in TABLES:
        read = pq.read_table(tmp_path / f"{table.name}.parquet")
        assert read.num_rows == 0 and read.schema.remove_metadata() == table.arrow_schema


def _broken(path: str, value: Any, conversation_id: str = "c-2", bad: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """Three good records with one field of the second (`bad`, else a `record`) replaced (or removed, for value=...)."""
    bad = bad if bad is not None else record(conversation_id)
    *parents, last = path.split(".")
    target: Any = bad
    for step in parents:
        target = target[int(step)] if step.isdigit() else target[step]
    if value is ...:
        del target[last]
    else:
        target[int(last) if last.isdigit() else last] = value
    return [record("c-1"), bad, record("c-3")]


@pytest.mark.parametrize(
    ("path", "value", "expected"),
    [
        ("conversationId", ..., r"records line 2: conversationId is missing"),
        ("conversationStart", ..., r"line 2 \(conversation c-2\): conversationStart is missing"),
        ("conversationStart", "2024-05-08 10:00", r"line 2 \(conversation c-2\): conversationStart is not an ISO-8601 timestamp"),
        ("participants.2.sessions.0.segments.3.segmentStart", "yesterday",
         r"line 2 \(conversation c-2\): participants\[2\]\.sessions\[0\]\.segments\[3\]\.segmentStart is not an ISO-8601 timestamp with a zone: 'yesterday'"),
        ("participants.1.sessions.0.metrics.1.emitDate", "2024-13-01T00:00:00.000Z",
         r"participants\[1\]\.sessions\[0\]\.metrics\[1\]\.emitDate is not an ISO-8601"),
        ("participants.2.sessions.0.metrics.1.value", 1.5,
         r"line 2 \(conversation c-2\): participants\[2\]\.sessions\[0\]\.metrics\[1\]\.value is not an integer: 1\.5"),
        ("participants.2.sessions.0.metrics.4.value", "60000", r"participants\[2\]\.sessions\[0\]\.metrics\[4\]\.value is not an integer: '60000'"),
        ("participants.2.sessions.0.metrics.0.value", True, r"metrics\[0\]\.value is not an integer: True"),
        ("participants.2.sessions.0.metrics.0.name", ..., r"participants\[2\]\.sessions\[0\]\.metrics\[0\]\.name is missing"),
        ("participants.1.participantId", ..., r"line 2 \(conversation c-2\): participants\[1\]\.participantId is missing"),
        ("participants.0.sessions.0.sessionId", ..., r"participants\[0\]\.sessions\[0\]\.sessionId is missing"),
        ("participants.0.sessions.0.ani", 15551234567, r"participants\[0\]\.sessions\[0\]\.ani is not a string: 15551234567"),
        ("participants.0.sessions.0.segments.1.conference", "no", r"segments\[1\]\.conference is not a boolean"),
        ("participants.1.sessions", {"sessionId": "s"}, r"line 2 \(conversation c-2\): participants\[1\]\.sessions is a dict, not a list"),
        ("participants.2.sessions.0.segments.4.wrapUpCode", ["w-1"], r"segments\[4\]\.wrapUpCode is not a string"),
        ("divisionIds", "d-1", r"divisionIds is not a list of strings"),
    ],
)  # fmt: skip
def test_bad_input_names_the_field_and_where_it_is(path, value, expected):
    with pytest.raises(FlattenError, match=expected):
        tables_of(_broken(path, value))


def test_bad_lines_in_the_raw_file_name_the_file_and_line(tmp_path):
    good = orjson.dumps(record()) + b"\n"
    for content, expected in ((good + b"{not json\n" + good, "line 2: not a JSON record"),
                              (good + good + b"[1, 2]\n", "line 3: expected a JSON object, got list"),
                              (good + b"\n", "line 2: not a JSON record")):  # fmt: skip
        path = tmp_path / "raw.jsonl.gz"
        path.write_bytes(gzip.compress(content))
        with open(path, "rb") as handle, pytest.raises(FlattenError, match=f"raw.jsonl.gz {expected}"):
            list(read_raw_records(handle, "raw.jsonl.gz"))


def test_the_raw_file_may_hold_several_gzip_members(tmp_path):
    one, two = (gzip.compress(orjson.dumps(record(f"c-{i}")) + b"\n") for i in (1, 2))
    records = list(read_raw_records(io.BytesIO(one + two), "raw"))
    assert [r["conversationId"] for r in records] == ["c-1", "c-2"]


def test_a_failed_flatten_leaves_the_previous_files(tmp_path):
    storage = WorkingStorage(root=str(tmp_path))
    with ParquetSink(lambda name: storage.writer(f"out/{name}.parquet")) as sink:
        flatten([record()], LOOKUPS, sink, partition_date=DAY, run_id="r", extracted_at=EXTRACTED)
    before = {p.name: p.read_bytes() for p in (tmp_path / "out").iterdir()}
    with pytest.raises(FlattenError):
        with ParquetSink(lambda name: storage.writer(f"out/{name}.parquet")) as sink:
            flatten(_broken("conversationStart", ...), LOOKUPS, sink, partition_date=DAY, run_id="r",
                    extracted_at=EXTRACTED)  # fmt: skip
    assert {p.name: p.read_bytes() for p in (tmp_path / "out").iterdir()} == before


# --- through Dagster, against the emulator over HTTP --------------------------------------------

PAST_DAY = "2024-05-08"


@pytest.fixture(scope="module")
def emulator(module_emulator: EmulatorServer) -> EmulatorServer:
    """One emulator (conftest's EMULATOR_CONFIG) for the module: these tests only read from it."""
    return module_emulator


def resources(emulator: EmulatorServer, root: Path) -> dict[str, Any]:
    return {"genesys": genesys_for(emulator), "working_storage": WorkingStorage(root=str(root))}


@pytest.fixture(scope="module")
def materialized(emulator, tmp_path_factory):
    root = tmp_path_factory.mktemp("working")
    result = dg.materialize(
        [raw_conversations, flattened_conversations], partition_key=PAST_DAY, resources=resources(emulator, root)
    )
    assert result.success
    return root, result


def read_flat(root: Path, partition: str = PAST_DAY) -> dict[str, pa.Table]:
    return {table.name: pq.read_table(root / flat_table_path(partition, table.name)) for table in TABLES}


def raw_records(root: Path, partition: str = PAST_DAY) -> list[dict[str, Any]]:
    with gzip.open(root / raw_records_path(partition), "rb") as lines:
        return [json.loads(line) for line in lines]


def test_every_conversation_of_the_day_becomes_one_row(materialized, emulator):
    root, _ = materialized
    conversations = read_flat(root)["conversations"]
    # in the raw file's order: those still open at the watermark (open for days) come after the others
    ids = conversations.column("conversation_id").to_pylist()
    assert ids == [r["conversationId"] for r in raw_records(root)]
    assert sorted(ids) == sorted(emulator.app.conversations_started(date(2024, 5, 8)))
    assert set(conversations.column("partition_date").to_pylist()) == {date(2024, 5, 8)}


def test_row_counts_match_a_simple_count_of_the_raw_records(materialized):
    root, result = materialized
    expected = dict.fromkeys((t.name for t in TABLES), 0)
    for conversation in raw_records(root):
        expected["conversations"] += 1
        expected["conversations_raw"] += 1
        for name in ("evaluations", "surveys", "resolutions"):
            expected[name] += len(conversation.get(name, []))
        for participant in conversation.get("participants", []):
            expected["participants"] += 1
            expected["participant_attributes"] += len(participant.get("attributes", {}))
            for session in participant.get("sessions", []):
                expected["sessions"] += 1
                expected["segments"] += len(session.get("segments", []))
                expected["session_metrics"] += len(session.get("metrics", []))
                expected["media_endpoint_stats"] += len(session.get("mediaEndpointStats", []))
                expected["flows"] += "flow" in session
                expected["flow_outcomes"] += len(session.get("flow", {}).get("outcomes", []))
    flat = read_flat(root)
    assert {name: table.num_rows for name, table in flat.items()} == expected
    assert expected["participant_attributes"] > 0  # detail jobs carry attributes
    manifest = json.loads((root / flat_manifest_path(PAST_DAY)).read_text())
    raw_manifest = json.loads((root / raw_manifest_path(PAST_DAY)).read_text())
    assert manifest["partition_key"] == PAST_DAY and manifest["raw_records"] == raw_manifest["records"] == 300
    assert manifest["api_reported"] == raw_manifest["extraction"]["api_reported"]  # the API's estimate
    assert abs(manifest["api_reported"] - 300) <= 10 and manifest["extraction_run_id"] == raw_manifest["run_id"]
    assert {name: entry["rows"] for name, entry in manifest["tables"].items()} == expected
    for name, entry in manifest["tables"].items():
        assert entry["path"] == flat_table_path(PAST_DAY, name)
        assert entry["bytes"] == (root / entry["path"]).stat().st_size
    meta = {k: v.value for k, v in result.asset_materializations_for_node("flattened_conversations")[0].metadata.items()}
    assert meta["dagster/row_count"] == 300 and meta["total_rows"] == sum(expected.values())
    assert meta["rows_session_metrics"] == expected["session_metrics"] and "| 2024-05-08 |" in meta["rows"]
    assert meta["unresolved_users"] == 0 and meta["lookup_sizes"]["users"] == 60
    assert meta["unresolved_wrapup_codes"] == 0  # the Default Wrap-up Code resolves although it is not listed


def test_names_resolve_for_queues_users_and_wrapup_codes_including_deleted_users(materialized, emulator):
    root, _ = materialized
    flat = read_flat(root)
    centre = emulator.app.centre
    queues = {q["id"]: q["name"] for q in centre.queues}
    users = {u["id"]: (u["name"], u["state"]) for u in centre.users}
    codes = {w["id"]: w["name"] for w in centre.wrapup_codes}
    assert DEFAULT_WRAPUP_CODE not in codes  # the listing lacks it, as the real one does
    codes[DEFAULT_WRAPUP_CODE] = "Default Wrap-up Code"
    segments = rows(flat["segments"])
    assert all(r["queue_name"] == queues[r["queue_id"]] for r in segments if r["queue_id"])
    coded = [r for r in segments if r["wrapup_code_id"]]
    assert coded and all(
        r["wrapup_code_name"] == (r["wrapup_code_id"] if r["wrapup_code_id"].startswith("ININ-") else codes[r["wrapup_code_id"]])
        for r in coded
    )  # fmt: skip
    agents = [r for r in rows(flat["participants"]) if r["purpose"] == "agent"]
    assert agents and all(r["user_name"] == users[r["user_id"]][0] for r in agents)
    assert any(users[r["user_id"]][1] == "deleted" for r in agents), "no deleted agent in the day's conversations"
    defaulted = [r for r in rows(flat["conversations"]) if r["final_wrapup_code_id"] == DEFAULT_WRAPUP_CODE]
    assert defaulted and all(r["final_wrapup_code_name"] == "Default Wrap-up Code" for r in defaulted)
    for row in rows(flat["conversations"]):
        ids, names = json.loads(row["agent_ids"]), json.loads(row["agent_names"])
        assert names == [users[i][0] for i in ids]
        if row["first_queue_id"]:
            assert row["first_queue_name"] == queues[row["first_queue_id"]]


_PERSON_TRANSFERS = {"transfer", "consultTransfer", "conferenceTransfer", "forwardTransfer"}


def _expected_transfer_and_agents(conversation: dict[str, Any]) -> tuple[bool, list[str], list[str]]:
    """The definitions, written out plainly: transferred by an agent or user (n-metrics or a transfer
    disconnect on their segment; routing redirects such as RONA are not), agents who handled it (an
    interact segment, tTalk or tHandle) and agents only alerted."""
    transferred, handled, alerted = False, [], []
    for participant in conversation["participants"]:
        sessions = participant.get("sessions", [])
        segments = [g for s in sessions for g in s.get("segments", [])]
        names = {m["name"] for s in sessions for m in s.get("metrics", []) if m.get("value") is not None}
        transferred |= bool(names & {"nTransferred", "nBlindTransferred", "nConsultTransferred"})
        if participant["purpose"] in ("agent", "user"):
            transferred |= any(g.get("disconnectType") in _PERSON_TRANSFERS for g in segments)
        if participant["purpose"] == "agent":
            talked = any(g["segmentType"] == "interact" for g in segments) or bool(names & {"tTalk", "tHandle"})
            (handled if talked else alerted).append(participant["userId"])
    unique = lambda ids: list(dict.fromkeys(ids))  # noqa: E731
    return transferred, unique(handled), [a for a in unique(alerted) if a not in handled]


def test_transferred_and_agents_follow_the_genesys_definitions_on_an_emulator_day(materialized, emulator):
    root, _ = materialized
    users = {u["id"]: u["name"] for u in emulator.app.centre.users}
    by_id = {r["conversation_id"]: r for r in rows(read_flat(root)["conversations"])}
    seen = {"RONA only": 0, "consult, no transfer": 0, "blind": 0, "consult transfer": 0, "old rule wrong": 0}
    for conversation in raw_records(root):
        row = by_id[conversation["conversationId"]]
        transferred, handled, alerted = _expected_transfer_and_agents(conversation)
        assert (row["transferred"], json.loads(row["agent_ids"]), json.loads(row["alerted_agent_ids"])) == (
            transferred, handled, alerted), conversation["conversationId"]  # fmt: skip
        assert json.loads(row["alerted_agent_names"]) == [users[a] for a in alerted]
        metrics = {m["name"] for p in conversation["participants"] for s in p["sessions"] for m in s.get("metrics", [])}
        disconnects = {g.get("disconnectType") for p in conversation["participants"] if p["purpose"] == "agent"
                       for s in p["sessions"] for g in s["segments"]}  # fmt: skip
        seen["RONA only"] += "tNotResponding" in metrics and "noAnswerTransfer" in disconnects and not transferred
        seen["consult, no transfer"] += "nConsult" in metrics and not transferred and len(handled) > 1
        seen["blind"] += "nBlindTransferred" in metrics and "transfer" in disconnects and transferred
        seen["consult transfer"] += "nConsultTransferred" in metrics and "consultTransfer" in disconnects
        seen["old rule wrong"] += len(handled + alerted) > 1 and not transferred  # "more than one agent"
    assert all(count > 0 for count in seen.values()), seen


_WRAPPING_UP = ("agent", "user", "outbound", "dialer", "campaign")


def _wrapups(conversation: dict[str, Any], purposes: tuple[str, ...] = _WRAPPING_UP) -> list[dict[str, Any]]:
    """The wrap-up segments of the participants with these purposes, in record order."""
    return [g for p in conversation["participants"] if p["purpose"] in purposes
            for s in p["sessions"] for g in s["segments"] if g["segmentType"] == "wrapup"]  # fmt: skip


def _kind_of_wrapup(conversation: dict[str, Any]) -> str | None:
    """Which of the shapes whose wrap-up is not an agent's this conversation is, if any."""
    purposes = {p["purpose"] for p in conversation["participants"]}
    if _wrapups(conversation, ("outbound",)):
        return "campaign call no agent took" if "acd" in purposes else "agentless campaign call"
    if _wrapups(conversation, ("user",)):
        return "call to a user" if "acd" not in purposes else "call transferred to a user"
    return None


@pytest.mark.parametrize("kind", ["campaign call no agent took", "agentless campaign call", "call to a user",
                                  "call transferred to a user"])  # fmt: skip
def test_final_wrapup_comes_from_agents_users_and_the_dialer_on_an_emulator_day(materialized, emulator, kind):
    """The final wrap-up is the latest wrap-up of an agent, a user or the dialer's leg (genesys-api-more.md
    s3.2), written out plainly here: a campaign attempt that reached no agent and an agentless campaign
    call are wrapped up by the dialer, a call to a user by the user, even after an agent's wrap-up."""
    root, _ = materialized
    by_id = {r["conversation_id"]: r for r in rows(read_flat(root)["conversations"])}
    codes = {w["id"]: w["name"] for w in emulator.app.centre.wrapup_codes} | {DEFAULT_WRAPUP_CODE: "Default Wrap-up Code"}
    found = [c for c in raw_records(root) if _kind_of_wrapup(c) == kind]
    assert found, f"no {kind} on the emulator day"
    agents_code_differs = 0
    for conversation in found:
        last = max(enumerate(_wrapups(conversation)), key=lambda item: (item[1]["segmentStart"], item[0]))[1]
        code = last.get("wrapUpCode")
        row = by_id[conversation["conversationId"]]
        assert code and row["final_wrapup_code_id"] == code, conversation["conversationId"]
        assert row["final_wrapup_code_name"] == (code if code.startswith("ININ-") else codes[code])
        agents = _wrapups(conversation, ("agent",))
        agents_code_differs += not agents or agents[-1].get("wrapUpCode") != code
    assert agents_code_differs > 0  # where an agent-only rule gives another answer (or none)


def test_a_rerun_rewrites_identical_rows(materialized, emulator):
    root, _ = materialized
    before = read_flat(root)
    result = dg.materialize([flattened_conversations], partition_key=PAST_DAY, resources=resources(emulator, root))
    assert result.success
    after = read_flat(root)
    for name in before:
        assert after[name].equals(before[name]), name


def test_a_row_count_that_differs_from_the_raw_manifest_fails_and_keeps_the_files(materialized, emulator):
    root, _ = materialized
    manifest_path = root / raw_manifest_path(PAST_DAY)
    original = manifest_path.read_text()
    before = {p.name: p.read_bytes() for p in (root / "flat" / PAST_DAY).iterdir()}
    manifest_path.write_text(json.dumps({**json.loads(original), "records": 301}))
    try:
        with pytest.raises(RowCountMismatch, match="300 conversations flattened .* says 301 records .*lost 1"):
            dg.materialize([flattened_conversations], partition_key=PAST_DAY, resources=resources(emulator, root))
    finally:
        manifest_path.write_text(original)
    assert {p.name: p.read_bytes() for p in (root / "flat" / PAST_DAY).iterdir()} == before


def test_a_range_run_flattens_each_day_of_the_range(emulator, tmp_path):
    result = dg.materialize(
        [raw_conversations, flattened_conversations], resources=resources(emulator, tmp_path),
        tags={"dagster/asset_partition_range_start": "2024-05-06", "dagster/asset_partition_range_end": "2024-05-07"},
    )  # fmt: skip
    assert result.success
    for day in (date(2024, 5, 6), date(2024, 5, 7)):
        conversations = read_flat(tmp_path, day.isoformat())["conversations"]
        ids = conversations.column("conversation_id").to_pylist()  # in the raw file's order
        assert len(ids) == len(set(ids)) and sorted(ids) == sorted(emulator.app.conversations_started(day))
        assert set(conversations.column("partition_date").to_pylist()) == {day}
    meta = {k: v.value for k, v in result.asset_materializations_for_node("flattened_conversations")[0].metadata.items()}
    assert meta["rows_conversations"] == 600 and "| 2024-05-06 |" in meta["rows"] and "| 2024-05-07 |" in meta["rows"]


def test_a_partition_without_raw_output_fails_with_a_clear_message(emulator, tmp_path):
    with pytest.raises(FileNotFoundError, match="materialize raw_conversations for partition 2024-05-01 first"):
        dg.materialize([flattened_conversations], partition_key="2024-05-01", resources=resources(emulator, tmp_path))


def test_errors_in_a_raw_file_name_the_file_line_and_conversation(tmp_path):
    bad = record("c-3")
    bad["participants"][2]["sessions"][0]["segments"][3]["segmentEnd"] = "2024-05-08T25:00:00.000Z"
    path = tmp_path / "conversations.jsonl.gz"
    path.write_bytes(gzip.compress(b"".join(orjson.dumps(r) + b"\n" for r in (record("c-1"), record("c-2"), bad))))
    source = "raw/2024-05-08/conversations.jsonl.gz"
    expected = (r"raw/2024-05-08/conversations.jsonl.gz line 3 \(conversation c-3\): "
                r"participants\[2\]\.sessions\[0\]\.segments\[3\]\.segmentEnd is not an ISO-8601 timestamp")  # fmt: skip
    with open(path, "rb") as handle, pytest.raises(FlattenError, match=expected):
        tables_of(read_raw_records(handle, source), source=source, batch_conversations=2)  # line 3: 2nd batch


# --- the names: saved by the extraction next to each day's raw file, read from there ----------------


def test_flatten_needs_no_genesys_resource_and_no_api(start_emulator, tmp_path):
    emulator = start_emulator()
    assert dg.materialize([raw_conversations], partition_key=PAST_DAY, resources=resources(emulator, tmp_path)).success
    emulator.stop()  # nothing answers at the API's address any more
    result = dg.materialize([flattened_conversations], partition_key=PAST_DAY,
                            resources={"working_storage": WorkingStorage(root=str(tmp_path))})  # fmt: skip
    assert result.success
    conversations = read_flat(tmp_path)["conversations"]
    queue_ids, queue_names = (conversations.column(c).to_pylist() for c in ("first_queue_id", "first_queue_name"))
    assert any(queue_ids) and all(name for queue, name in zip(queue_ids, queue_names) if queue)
    assert any(names for names in conversations.column("agent_names").to_pylist())
    meta = {k: v.value for k, v in result.asset_materializations_for_node("flattened_conversations")[0].metadata.items()}
    assert meta["lookup_sizes"]["users"] > 0 and meta["unresolved_users"] == 0


def test_a_day_extracted_without_its_lookups_says_to_extract_it_again(materialized, tmp_path):
    root, _ = materialized
    shutil.copytree(root / "raw", tmp_path / "raw")
    (tmp_path / raw_lookups_path(PAST_DAY)).unlink()  # as a day extracted by an earlier version has none
    # Not retried: running flatten again cannot bring the names back.
    with pytest.raises(dg.Failure, match=rf"lookups.json.gz does not exist: .* Rematerialize raw_conversations "
                                         rf"for partition {PAST_DAY}, then this asset. \(not retried") as raised:
        dg.materialize([flattened_conversations], partition_key=PAST_DAY,
                       resources={"working_storage": WorkingStorage(root=str(tmp_path))})  # fmt: skip
    assert isinstance(raised.value.__cause__, LookupsError)
    (tmp_path / raw_lookups_path(PAST_DAY)).write_bytes(b"not gzip")
    with pytest.raises(LookupsError, match="is not a lookups file the extraction wrote"):
        load_lookups(WorkingStorage(root=str(tmp_path)), PAST_DAY)


def test_saved_lookups_read_back_as_they_were_and_the_same_names_give_the_same_bytes():
    lookups = Lookups.from_listings(queues=[{"id": "q-1", "name": "Sales \"EU\" 🎧"}],
                                    users=[{"id": "u-2", "name": "Zoë"}, {"id": "u-1", "name": "Ann"}])  # fmt: skip
    data = lookups.to_bytes()
    assert Lookups.from_bytes(data, "test") == lookups and Lookups.from_bytes(data, "test").sizes() == lookups.sizes()
    assert data == Lookups.from_listings(users=[{"id": "u-1", "name": "Ann"}, {"id": "u-2", "name": "Zoë"}],
                                         queues=[{"id": "q-1", "name": "Sales \"EU\" 🎧"}]).to_bytes()  # fmt: skip
