"""The queries of docs/analyst-queries.md and the views they read (contracts/views.py), checked on a real day.

One pipeline run per module (emulator -> raw -> flattened -> S3 -> Snowflake, over HTTP, on the
stand-ins) loads an emulator day. Each query is read from the markdown file itself, run as it is on the
local Snowflake, and its figures compared per queue and per agent with the same figures computed here,
independently, from the raw API records of that day (the raw working file): per queue session
(`Visit`) and per agent participant that handled the conversation (`Handling`), by Genesys's metric
definitions. So the document, the views and the definitions cannot drift apart.
"""

from __future__ import annotations

import dataclasses
import gzip
import json
import re
import uuid
from collections import defaultdict
from datetime import datetime
from pathlib import Path
from typing import Any, Callable, Iterator, Optional

import pytest

from genesys_pipeline.contracts.paths import raw_records_path
from genesys_pipeline.contracts.tables import TABLES
from genesys_pipeline.contracts.views import VIEWS
from genesys_pipeline.defs.flattened_conversations import flattened_conversations
from genesys_pipeline.defs.raw_conversations import raw_conversations
from genesys_pipeline.defs.s3_conversations import s3_conversations
from genesys_pipeline.defs.snowflake_conversations import snowflake_conversations
from genesys_pipeline.local import stand_ins
from genesys_pipeline.resources.warehouse import SnowflakeTarget
from genesys_pipeline.steps.snowflake_session import SnowflakeSession
from genesys_pipeline.steps.views import ViewError, create_views
from genesys_pipeline_tests.conftest import (
    PAST_DAY,
    run_emulator_day,
    run_query,
)

pytestmark = pytest.mark.slow  # one pipeline run for the module (~40 s)

QUERIES_FILE = Path(__file__).resolve().parents[1] / "docs" / "analyst-queries.md"
SCHEMA = "GENESYS"
TARGET_MS = 20_000  # the service-level target in the document's query


def documented_queries() -> dict[str, str]:
    """`<!-- query: name -->` followed by a ```sql block: name -> the SQL, as the document shows it."""
    found = re.findall(r"<!-- query: (\w+) -->\s*```sql\n(.*?)```", QUERIES_FILE.read_text(), re.S)
    queries = dict(found)
    assert len(queries) == len(found), "two queries share a name"
    return {name: sql.strip().rstrip(";") for name, sql in queries.items()}


# ##### THE DAY: one pipeline run, and the raw records it loaded


@dataclasses.dataclass
class LoadedDay:
    snowflake: Any
    records: list[dict[str, Any]]

    def query(self, sql: str, params: Any = None) -> list[dict[str, Any]]:
        return run_query(self.snowflake, sql, params)


@pytest.fixture(scope="module")
def day(stack: stand_ins.LocalStack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LoadedDay]:
    working = tmp_path_factory.mktemp("working")
    assets = [raw_conversations, flattened_conversations, s3_conversations, snowflake_conversations]
    snowflake, _ = run_emulator_day(stack, working, PAST_DAY, assets, "analyst")  # seed 7, 300 conversations
    with gzip.open(working / raw_records_path(PAST_DAY.isoformat()), "rt", encoding="utf-8") as lines:
        records = [json.loads(line) for line in lines]
    yield LoadedDay(snowflake, records)


# ##### THE SAME FIGURES FROM THE RAW RECORDS


def _instant(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def _metrics(sessions: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    by_name: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for session in sessions:
        for metric in session.get("metrics") or ():
            by_name[metric["name"]].append(metric)
    return by_name


def _total(metrics: dict[str, list[dict[str, Any]]], name: str) -> Optional[int]:
    return sum(m["value"] for m in metrics[name]) if metrics.get(name) else None


@dataclasses.dataclass
class Visit:
    """A queue (acd) session: a conversation waiting in a queue."""

    conversation_id: str
    participant_id: str
    session_id: str
    queue_id: Optional[str]
    offered: int
    acd_ms: Optional[int]
    abandon_ms: Optional[int]
    abandoned: bool
    flowed_out: bool
    over_sla: int


@dataclasses.dataclass
class Handling:
    """An agent or user participant that handled the conversation, its sessions' metrics summed."""

    conversation_id: str
    participant_id: str
    purpose: str
    user_id: Optional[str]
    queue_id: Optional[str]
    answered: bool
    answer_ms: Optional[int]
    talk_ms: Optional[int]
    hold_ms: Optional[int]
    acw_ms: Optional[int]
    handle_ms: Optional[int]
    handles: int
    transfers: int
    blind_transfers: int
    consult_transfers: int
    consults: int
    consulted: bool
    wrapup_code_id: Optional[str]


def visits_of(record: dict[str, Any]) -> list[Visit]:
    visits = []
    for participant in record["participants"]:
        if participant.get("purpose") != "acd":
            continue
        for session in participant.get("sessions") or ():
            queues = [s["queueId"] for s in session.get("segments") or () if s.get("queueId")]
            metrics = _metrics([session])
            visits.append(Visit(
                record["conversationId"], participant["participantId"], session["sessionId"],
                queues[0] if queues else None, len(metrics["nOffered"]), _total(metrics, "tAcd"),
                _total(metrics, "tAbandon"), bool(metrics["tAbandon"]), bool(metrics["tFlowOut"]),
                len(metrics["nOverSla"]),
            ))  # fmt: skip
    return visits


def handlings_of(record: dict[str, Any]) -> list[Handling]:
    consults = [  # (who started a consult, when)
        (participant["participantId"], _instant(metric["emitDate"]))
        for participant in record["participants"]
        for metric in _metrics(participant.get("sessions") or [])["nConsult"]
    ]
    handlings = []
    for participant in record["participants"]:
        if participant.get("purpose") not in ("agent", "user"):
            continue
        sessions = participant.get("sessions") or []
        segments = [segment for session in sessions for segment in session.get("segments") or ()]
        metrics = _metrics(sessions)
        interacts = [s for s in segments if s.get("segmentType") == "interact"]
        if not (interacts or metrics["tTalk"] or metrics["tHandle"]):
            continue  # alerted only (RONA): no handling
        by_start = sorted((s for s in segments if s.get("queueId")), key=lambda s: (s.get("segmentType") != "interact", _instant(s["segmentStart"])))
        joined = min(_instant(s["segmentStart"]) for s in segments)
        wrapups = sorted((s for s in segments if s.get("wrapUpCode")), key=lambda s: _instant(s["segmentStart"]))
        answered = bool(metrics["tAnswered"])
        handlings.append(Handling(
            record["conversationId"], participant["participantId"], participant["purpose"], participant.get("userId"),
            by_start[0]["queueId"] if by_start else None, answered, _total(metrics, "tAnswered"),
            _total(metrics, "tTalk"), _total(metrics, "tHeld"), _total(metrics, "tAcw"), _total(metrics, "tHandle"),
            len(metrics["tHandle"]), len(metrics["nTransferred"]), len(metrics["nBlindTransferred"]),
            len(metrics["nConsultTransferred"]), len(metrics["nConsult"]),
            not answered and any(who != participant["participantId"] and at <= joined for who, at in consults),
            wrapups[-1]["wrapUpCode"] if wrapups else None,
        ))  # fmt: skip
    return handlings


@pytest.fixture(scope="module")
def raw(day: LoadedDay) -> tuple[list[Visit], list[Handling]]:
    visits = [visit for record in day.records for visit in visits_of(record)]
    handlings = [handling for record in day.records for handling in handlings_of(record)]
    return visits, handlings


def _sum(values: list[Optional[int]]) -> Optional[int]:
    present = [value for value in values if value is not None]
    return sum(present) if present else None


def _ratio(part: Optional[float], whole: Optional[float], scale: float) -> Optional[float]:
    return None if part is None or not whole else scale * part / whole


def _per_handle(handlings: list[Handling], field: str) -> Optional[float]:
    return _ratio(_sum([getattr(h, field) for h in handlings]), sum(h.handles for h in handlings), 1 / 1000)


def _handle_figures(group: list[Handling]) -> dict[str, Any]:
    routed = [h for h in group if not h.consulted]
    return {
        "handles": sum(h.handles for h in group),
        "consult_handles": sum(h.handles for h in group if h.consulted),
        "aht_s": _per_handle(group, "handle_ms"),
        "avg_talk_s": _per_handle(group, "talk_ms"),
        "avg_hold_s": _per_handle(group, "hold_ms"),
        "avg_acw_s": _per_handle(group, "acw_ms"),
        "aht_without_consults_s": _per_handle(routed, "handle_ms"),
    }


def _grouped(items: list[Any], key: Callable[[Any], Any]) -> dict[Any, list[Any]]:
    groups: dict[Any, list[Any]] = defaultdict(list)
    for item in items:
        groups[key(item)].append(item)
    return groups


# What each documented query must return, from the raw records: (key columns, {key: {column: value}}).
def expect_offered_answered_abandoned(visits: list[Visit], handlings: list[Handling]) -> dict[tuple, dict[str, Any]]:
    answers = _grouped([h for h in handlings if h.answered], lambda h: h.queue_id)
    out = {}
    for queue, group in _grouped(visits, lambda v: v.queue_id).items():
        offered, abandoned = sum(v.offered for v in group), sum(v.abandoned for v in group)
        out[(PAST_DAY, queue)] = {
            "offered": offered, "answered": len(answers.get(queue, [])), "abandoned": abandoned,
            "flowed_out": sum(v.flowed_out for v in group), "abandon_rate_pct": _ratio(abandoned, offered, 100),
        }  # fmt: skip
    return out


def expect_service_level(visits: list[Visit], handlings: list[Handling]) -> dict[tuple, dict[str, Any]]:
    answers = _grouped([h for h in handlings if h.answered], lambda h: h.queue_id)
    out = {}
    for queue, group in _grouped(visits, lambda v: v.queue_id).items():
        answered = answers.get(queue, [])
        within = sum(1 for h in answered if h.answer_ms is not None and h.answer_ms <= TARGET_MS)
        abandoned = sum(v.abandoned for v in group)
        out[(PAST_DAY, queue)] = {
            "answered": len(answered), "answered_within_target": within, "abandoned": abandoned,
            "service_level_pct": _ratio(within, len(answered) + abandoned, 100),
        }  # fmt: skip
    return out


def expect_aht_per_queue(visits: list[Visit], handlings: list[Handling]) -> dict[tuple, dict[str, Any]]:
    handled = [h for h in handlings if h.handles > 0 and h.queue_id is not None]
    return {(PAST_DAY, queue): _handle_figures(group) for queue, group in _grouped(handled, lambda h: h.queue_id).items()}


def expect_aht_per_agent(visits: list[Visit], handlings: list[Handling]) -> dict[tuple, dict[str, Any]]:
    handled = [h for h in handlings if h.handles > 0]
    out = {}
    for user, group in _grouped(handled, lambda h: h.user_id).items():
        figures = _handle_figures(group)
        del figures["aht_without_consults_s"]
        out[(user,)] = figures | {"answered": sum(h.answered for h in group)}
    return out


def expect_transfer_rate(visits: list[Visit], handlings: list[Handling]) -> dict[tuple, dict[str, Any]]:
    out = {}
    for queue, group in _grouped([h for h in handlings if h.queue_id], lambda h: h.queue_id).items():
        answered, transfers = sum(h.answered for h in group), sum(h.transfers for h in group)
        out[(PAST_DAY, queue)] = {
            "answered": answered, "transferred": transfers, "blind_transferred": sum(h.blind_transfers for h in group),
            "consult_transferred": sum(h.consult_transfers for h in group),
            "transfer_rate_pct": _ratio(transfers, answered, 100),
        }  # fmt: skip
    return out


def expect_wrapup_distribution(visits: list[Visit], handlings: list[Handling]) -> dict[tuple, dict[str, Any]]:
    wrapped = [h for h in handlings if h.wrapup_code_id and h.queue_id]
    out = {}
    for queue, group in _grouped(wrapped, lambda h: h.queue_id).items():
        for code, coded in _grouped(group, lambda h: h.wrapup_code_id).items():
            out[(queue, code)] = {"handlings": len(coded), "share_pct": _ratio(len(coded), len(group), 100)}
    return out


# The queries that read fields no table maps, from CONVERSATIONS_RAW: expected from the records themselves.
def expect_self_service_per_ivr_flow(records: list[dict[str, Any]]) -> dict[tuple, dict[str, Any]]:
    flows: dict[str, dict[str, Any]] = defaultdict(lambda: {"conversations": set(), "self_served": set(), "name": None})
    for record in records:
        for participant in record["participants"]:
            for session in participant.get("sessions") or ():
                flow = session.get("flow") or {}
                if flow.get("flowType") == "INBOUNDCALL":
                    seen = flows[flow["flowId"]]
                    seen["conversations"].add(record["conversationId"])
                    if record.get("selfServed") is True:
                        seen["self_served"].add(record["conversationId"])
                    seen["name"] = flow.get("flowName")
    return {
        (PAST_DAY, flow_id): {
            "flow_name": seen["name"], "conversations": len(seen["conversations"]), "self_served": len(seen["self_served"]),
            "self_served_pct": _ratio(len(seen["self_served"]), len(seen["conversations"]), 100),
        }
        for flow_id, seen in flows.items()
    }  # fmt: skip


def expect_calls_and_quality_per_edge(records: list[dict[str, Any]]) -> dict[tuple, dict[str, Any]]:
    edges: dict[str, dict[str, Any]] = defaultdict(lambda: {"conversations": set(), "sessions": set(), "mos": []})
    for record in records:
        for participant in record["participants"]:
            for session in participant.get("sessions") or ():
                if session.get("edgeId") is None:
                    continue
                seen = edges[session["edgeId"]]
                seen["conversations"].add(record["conversationId"])
                seen["sessions"].add(session["sessionId"])
                seen["mos"] += [s["minMos"] for s in session.get("mediaEndpointStats") or () if s.get("minMos") is not None]
    return {
        (PAST_DAY, edge): {
            "conversations": len(seen["conversations"]), "voice_sessions": len(seen["sessions"]),
            "worst_mos": min(seen["mos"]) if seen["mos"] else None,
            "avg_min_mos": sum(seen["mos"]) / len(seen["mos"]) if seen["mos"] else None,
        }
        for edge, seen in edges.items()
    }  # fmt: skip


FROM_RAW_RECORDS = {
    "self_service_per_ivr_flow": (("partition_date", "flow_id"), expect_self_service_per_ivr_flow),
    "calls_and_quality_per_edge": (("partition_date", "edge_id"), expect_calls_and_quality_per_edge),
}

EXPECTED: dict[str, tuple[tuple[str, ...], Callable[..., dict[tuple, dict[str, Any]]]]] = {
    "offered_answered_abandoned": (("partition_date", "queue_id"), expect_offered_answered_abandoned),
    "service_level": (("partition_date", "queue_id"), expect_service_level),
    "aht_per_queue": (("partition_date", "queue_id"), expect_aht_per_queue),
    "aht_per_agent": (("user_id",), expect_aht_per_agent),
    "transfer_rate": (("partition_date", "queue_id"), expect_transfer_rate),
    "wrapup_distribution": (("queue_id", "wrapup_code_id"), expect_wrapup_distribution),
    **FROM_RAW_RECORDS,
}


# ##### THE TESTS


def test_every_documented_query_is_checked_here() -> None:
    assert sorted(documented_queries()) == sorted(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_the_documented_query_matches_the_raw_records(day: LoadedDay, raw: tuple[list[Visit], list[Handling]], name: str) -> None:
    key_columns, expect = EXPECTED[name]
    expected = expect(day.records) if name in FROM_RAW_RECORDS else expect(*raw)
    rows = day.query(documented_queries()[name])
    got = {tuple(row[k] for k in key_columns): row for row in rows}
    assert len(got) == len(rows), f"{name}: a key repeats"
    assert sorted(got, key=str) == sorted(expected, key=str), name
    assert len(expected) > 1, f"{name}: the day should have several {key_columns}"
    for key, figures in expected.items():
        for column, value in figures.items():
            actual = got[key][column]
            if value is None or actual is None:
                assert actual == value, (name, key, column)
            elif isinstance(value, float):  # the query rounds to one decimal
                assert abs(float(actual) - value) <= 0.05 + 1e-9, (name, key, column, actual, value)
            else:
                assert actual == value, (name, key, column, actual, value)


def test_the_views_hold_one_row_per_queue_visit_and_per_handling_agent(day: LoadedDay, raw: tuple[list[Visit], list[Handling]]) -> None:
    visits, handlings = raw
    got_visits = {
        (r["conversation_id"], r["participant_id"], r["session_id"]): r for r in day.query("SELECT * FROM QUEUE_VISITS")
    }
    assert got_visits.keys() == {(v.conversation_id, v.participant_id, v.session_id) for v in visits}
    for visit in visits:
        row = got_visits[(visit.conversation_id, visit.participant_id, visit.session_id)]
        assert {field: row[field] for field in dataclasses.asdict(visit)} == dataclasses.asdict(visit)
    got = {(r["conversation_id"], r["participant_id"]): r for r in day.query("SELECT * FROM AGENT_HANDLING")}
    assert got.keys() == {(h.conversation_id, h.participant_id) for h in handlings}
    for handling in handlings:
        row = got[(handling.conversation_id, handling.participant_id)]
        assert {field: row[field] for field in dataclasses.asdict(handling)} == dataclasses.asdict(handling)
    # The day has what the views are for: consults, transfers, RONA (alerted agents without a row),
    # abandons, answered agents, and conversations whose agents' handle times add up in one row.
    assert sum(h.consulted for h in handlings) and sum(h.consults for h in handlings)
    assert sum(h.transfers for h in handlings) and sum(v.abandoned for v in visits)
    assert all(r["partition_date"] == PAST_DAY for r in got.values())


def test_the_conversation_totals_are_the_sums_of_the_views_rows(day: LoadedDay) -> None:
    """CONVERSATIONS.handle_ms sums every agent's tHandle; AGENT_HANDLING splits it per agent, no time
    lost or counted twice (conversations with a consult are where averaging the total goes wrong).
    Likewise wait_ms, abandon_ms and abandoned are QUEUE_VISITS's summed over the conversation's queues."""
    rows = day.query(
        "SELECT c.conversation_id, c.handle_ms, SUM(a.handle_ms) AS agents_ms, COUNT(a.participant_id) AS agents, "
        "MAX(CASE WHEN a.consulted THEN 1 ELSE 0 END) AS with_consult "
        "FROM CONVERSATIONS c LEFT JOIN AGENT_HANDLING a ON a.conversation_id = c.conversation_id "
        "AND a.partition_date = c.partition_date GROUP BY c.conversation_id, c.handle_ms"
    )
    assert [r for r in rows if r["handle_ms"] != (None if r["agents_ms"] is None else int(r["agents_ms"]))] == []
    consulted = [r for r in rows if r["with_consult"]]
    assert consulted and all(r["agents"] >= 2 for r in consulted)
    queues = day.query(
        "SELECT c.conversation_id, c.wait_ms, c.abandon_ms, c.abandoned, SUM(v.acd_ms) AS acd_ms, "
        "SUM(v.abandon_ms) AS visits_abandon_ms, MAX(CASE WHEN v.abandoned THEN 1 ELSE 0 END) AS visit_abandoned "
        "FROM CONVERSATIONS c LEFT JOIN QUEUE_VISITS v ON v.conversation_id = c.conversation_id "
        "AND v.partition_date = c.partition_date GROUP BY c.conversation_id, c.wait_ms, c.abandon_ms, c.abandoned"
    )
    as_int = lambda value: None if value is None else int(value)  # noqa: E731
    assert [r for r in queues if (r["wait_ms"], r["abandon_ms"], bool(r["abandoned"])) !=
            (as_int(r["acd_ms"]), as_int(r["visits_abandon_ms"]), bool(r["visit_abandoned"]))] == []


@pytest.mark.parametrize("view", VIEWS, ids=lambda view: view.name)
def test_the_views_columns_and_types_are_the_contracts(day: LoadedDay, view: Any) -> None:
    rows = day.query(
        "SELECT column_name, data_type FROM information_schema.columns WHERE table_schema = %s AND table_name = %s "
        "ORDER BY ordinal_position", (SCHEMA, view.name.upper()),
    )  # fmt: skip
    information_schema_type = {"VARCHAR": "TEXT", "NUMBER(38,0)": "NUMBER", "BOOLEAN": "BOOLEAN",
                               "TIMESTAMP_TZ": "TIMESTAMP_TZ", "DATE": "DATE"}  # fmt: skip
    assert [(r["column_name"], r["data_type"]) for r in rows] == [
        (c.name.upper(), information_schema_type[c.snowflake_type]) for c in view.table.columns
    ]



def test_with_a_table_prefix_the_views_read_the_prefixed_tables_and_a_rerun_replaces_them(stack: stand_ins.LocalStack) -> None:
    database = f"PREFIX_{uuid.uuid4().hex[:8].upper()}"
    snowflake = stand_ins.snowflake_resource(stack.snowflake_connection_args, database, SCHEMA)
    target = SnowflakeTarget(stage_aws_key_id="testing", stage_aws_secret_key="not-a-real-secret", table_prefix="GX_")
    with snowflake.get_connection() as connection:
        session = SnowflakeSession(connection)
        session.resolve_target(RuntimeError)
        for table in TABLES:
            session.ensure_table(table, target.table_name(table.name))
        first = create_views(session, target)
        assert create_views(session, target) == first  # CREATE OR REPLACE: a rerun converges
    assert first == [f"{database}.{SCHEMA}.GX_QUEUE_VISITS", f"{database}.{SCHEMA}.GX_AGENT_HANDLING"]
    run_query(snowflake, "INSERT INTO GX_PARTICIPANTS (CONVERSATION_ID, PARTICIPANT_ID, PARTITION_DATE, PURPOSE, "
                         "USER_ID, EXTRACTION_RUN_ID) VALUES ('c', 'p', '2024-05-08', 'agent', 'u', 'r')")
    run_query(snowflake, "INSERT INTO GX_SEGMENTS (CONVERSATION_ID, PARTICIPANT_ID, SESSION_ID, SEGMENT_INDEX, "
                         "PARTITION_DATE, SEGMENT_TYPE, QUEUE_ID, EXTRACTION_RUN_ID) "
                         "VALUES ('c', 'p', 's', 0, '2024-05-08', 'interact', 'q', 'r')")
    (row,) = run_query(snowflake, "SELECT * FROM GX_AGENT_HANDLING")
    assert (row["user_id"], row["queue_id"], row["handles"], row["consulted"]) == ("u", "q", 0, False)
    assert run_query(snowflake, "SELECT * FROM GX_QUEUE_VISITS") == []


def test_a_view_the_role_may_not_create_fails_naming_the_view_and_the_privilege() -> None:
    class Refusing:
        database, schema = "GENESYS", "CONVERSATIONS"

        def qualified(self, name: str) -> str:
            return f"{self.database}.{self.schema}.{name}"

        def execute(self, sql: str, params: Any = None) -> list[dict[str, Any]]:
            raise RuntimeError("003001 (42501): SQL access control error: Insufficient privileges")

    with pytest.raises(ViewError) as raised:
        create_views(Refusing(), SnowflakeTarget(stage_aws_key_id="k", stage_aws_secret_key="not-a-real-secret"))  # type: ignore[arg-type]
    assert str(raised.value).startswith("Could not create the view GENESYS.CONVERSATIONS.QUEUE_VISITS: 003001")
    assert "needs CREATE VIEW on the schema GENESYS.CONVERSATIONS" in str(raised.value)
