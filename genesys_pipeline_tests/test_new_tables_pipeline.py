"""CONVERSATIONS_RAW and the quality, survey and flow tables through the whole pipeline: one emulator day
over HTTP (raw -> flattened -> S3 -> Snowflake on the stand-ins, then the row-count check), compared with
the raw records of that day. The hand-made edge cases are in test_new_tables.py."""

from __future__ import annotations

import dataclasses
import gzip
import json
from datetime import timedelta
from pathlib import Path
from typing import Any, Iterator

import dagster as dg
import pytest

from genesys_pipeline.contracts.paths import raw_records_path
from genesys_pipeline.contracts.quality_and_flow_tables import QUALITY_AND_FLOW_TABLES
from genesys_pipeline.contracts.tables import CONVERSATIONS_RAW, TABLES_BY_NAME
from genesys_pipeline.defs.checks import ROW_COUNT_CHECK, row_counts_match_across_stages
from genesys_pipeline.defs.flattened_conversations import flattened_conversations
from genesys_pipeline.defs.raw_conversations import raw_conversations
from genesys_pipeline.defs.s3_conversations import s3_conversations
from genesys_pipeline.defs.snowflake_conversations import snowflake_conversations
from genesys_pipeline.local import stand_ins
from genesys_pipeline_tests.conftest import (
    CLOCK,
    run_emulator_day,
    run_query,
)

pytestmark = pytest.mark.slow  # one pipeline run for the module (~40 s)

NEW_TABLES = (CONVERSATIONS_RAW, *QUALITY_AND_FLOW_TABLES)
# A day whose records Genesys has finished restating: evaluations finished days after the end, and
# first-contact resolutions a week after it, are in them.
DAY = CLOCK.date() - timedelta(days=12)


@dataclasses.dataclass
class LoadedDay:
    snowflake: Any
    records: list[dict[str, Any]]
    result: dg.ExecuteInProcessResult

    def query(self, sql: str, params: Any = None) -> list[dict[str, Any]]:
        return run_query(self.snowflake, sql, params)


@pytest.fixture(scope="module")
def day(stack: stand_ins.LocalStack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LoadedDay]:
    working = tmp_path_factory.mktemp("working")
    assets = [raw_conversations, flattened_conversations, s3_conversations, snowflake_conversations,
              row_counts_match_across_stages]  # fmt: skip
    snowflake, result = run_emulator_day(stack, working, DAY, assets, "details")  # seed 7, 300 conversations
    with gzip.open(Path(working) / raw_records_path(DAY.isoformat()), "rb") as lines:
        records = [json.loads(line) for line in lines]
    yield LoadedDay(snowflake, records, result)


def expected_counts(records: list[dict[str, Any]]) -> dict[str, int]:
    """Rows per new table, counted plainly from the raw records."""
    counts = dict.fromkeys((t.name for t in NEW_TABLES), 0)
    for record in records:
        counts["conversations_raw"] += 1
        for name in ("evaluations", "surveys", "resolutions"):
            counts[name] += len(record.get(name, []))
        for participant in record["participants"]:
            for session in participant.get("sessions", []):
                counts["media_endpoint_stats"] += len(session.get("mediaEndpointStats", []))
                counts["flows"] += "flow" in session
                counts["flow_outcomes"] += len(session.get("flow", {}).get("outcomes", []))
    return counts


def test_each_new_table_holds_the_days_rows_and_the_row_count_check_passes(day: LoadedDay) -> None:
    expected = expected_counts(day.records)
    got = {table.name: day.query(f"SELECT COUNT(*) AS N FROM {table.name.upper()} WHERE PARTITION_DATE = %s",
                                 (DAY,))[0]["n"] for table in NEW_TABLES}  # fmt: skip
    assert got == expected
    assert all(expected.values()), expected  # the emulator renders every one of them
    (check,) = [e for e in day.result.get_asset_check_evaluations() if e.check_name == ROW_COUNT_CHECK]
    assert check.passed, check.description
    comparison = check.metadata["comparison"].value
    for table in NEW_TABLES:
        n = expected[table.name]
        assert f"| {DAY} | {table.name} |  | {n} | {n} | {n} | {n} | ok |" in comparison, table.name


def test_keys_are_unique_in_snowflake(day: LoadedDay) -> None:
    for table in NEW_TABLES:
        key = ", ".join(table.key)
        duplicated = day.query(f"SELECT {key}, COUNT(*) AS N FROM {table.name.upper()} GROUP BY {key} HAVING COUNT(*) > 1")
        assert duplicated == [], table.name


def test_the_raw_record_is_a_queryable_variant_equal_to_the_api_record(day: LoadedDay) -> None:
    rows = day.query(
        "SELECT conversation_id, record, record:participants[0]:purpose::string AS first_purpose, "
        "record:conversationId::string AS id_in_record, record:participants[0]:sessions[0]:mediaType::string AS media "
        "FROM CONVERSATIONS_RAW WHERE partition_date = %s", (DAY,),
    )  # fmt: skip
    by_id = {r["conversation_id"]: r for r in rows}
    assert sorted(by_id) == sorted(r["conversationId"] for r in day.records)
    for record in day.records:
        row = by_id[record["conversationId"]]  # paths find its fields: an object, not a JSON string
        assert json.loads(row["record"]) == record
        assert (row["id_in_record"], row["first_purpose"]) == (record["conversationId"], record["participants"][0]["purpose"])
        assert row["media"] == record["participants"][0]["sessions"][0].get("mediaType")


def test_evaluations_surveys_stats_and_flows_match_the_raw_records(day: LoadedDay) -> None:
    evaluations = {r["evaluation_id"]: r for r in day.query("SELECT * FROM EVALUATIONS")}
    surveys = {r["survey_id"]: r for r in day.query("SELECT * FROM SURVEYS")}
    for record in day.records:
        for evaluation in record.get("evaluations", []):
            row = evaluations[evaluation["evaluationId"]]
            assert (row["conversation_id"], row["total_score"], row["evaluator_id"], row["form_name"]) == (
                record["conversationId"], evaluation["oTotalScore"], evaluation["evaluatorId"], evaluation["formName"])
            assert row["evaluator_name"] and row["user_name"] and row["queue_name"]  # the listings know them
        for survey in record.get("surveys", []):
            row = surveys[survey["surveyId"]]
            assert (row["promoter_score"], row["survey_type"]) == (survey.get("surveyPromoterScore"), survey["surveyType"])
    stats = day.query("SELECT s.media_type, m.min_mos, m.codecs FROM MEDIA_ENDPOINT_STATS m JOIN SESSIONS s ON "
                      "s.conversation_id = m.conversation_id AND s.participant_id = m.participant_id AND "
                      "s.session_id = m.session_id AND s.partition_date = m.partition_date")  # fmt: skip
    assert stats and all(1.0 <= float(r["min_mos"]) <= 5.0 for r in stats)
    assert all(isinstance(json.loads(r["codecs"]), list) for r in stats)
    flows = day.query("SELECT flow_type, COUNT(*) AS N FROM FLOWS GROUP BY flow_type")
    raw_flows: dict[str, int] = {}
    for record in day.records:
        for participant in record["participants"]:
            for session in participant.get("sessions", []):
                if "flow" in session:
                    raw_flows[session["flow"].get("flowType")] = raw_flows.get(session["flow"].get("flowType"), 0) + 1
    assert {r["flow_type"]: r["n"] for r in flows} == raw_flows and len(raw_flows) >= 2


def test_the_new_tables_types_in_snowflake_are_the_contracts(day: LoadedDay) -> None:
    kinds = {"VARCHAR": "TEXT", "NUMBER(38,0)": "NUMBER", "BOOLEAN": "BOOLEAN", "TIMESTAMP_TZ": "TIMESTAMP_TZ",
             "DATE": "DATE", "VARIANT": "VARIANT", "FLOAT": "FLOAT"}  # fmt: skip
    for table in NEW_TABLES:
        rows = day.query(
            "SELECT column_name, data_type FROM information_schema.columns WHERE table_schema = 'GENESYS' "
            "AND table_name = %s ORDER BY ordinal_position", (table.name.upper(),),
        )  # fmt: skip
        spec = TABLES_BY_NAME[table.name]
        assert [(r["column_name"], r["data_type"]) for r in rows] == [
            (c.name.upper(), kinds[c.snowflake_type]) for c in spec.columns], table.name
