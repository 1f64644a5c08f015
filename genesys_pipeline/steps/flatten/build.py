"""A chunk's flat lists (see `collect`) -> one Arrow record batch per table, vectorised.

Every column becomes an Arrow array once, from a strided slice of its table's flat list. Ids of child
rows are taken from their parent row (`take`); segment and participant names are looked up,
timestamps parsed and durations subtracted in Arrow. `RowLocator` leads a row of a built table back
to its place in the record, for error messages.
"""

from __future__ import annotations

from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from genesys_pipeline.contracts.columns import Table
from genesys_pipeline.contracts.quality_and_flow_tables import (
    EVALUATIONS,
    RESOLUTIONS,
    SURVEYS,
)
from genesys_pipeline.contracts.tables import (
    CONVERSATIONS,
    PARTICIPANT_ATTRIBUTES,
    PARTICIPANTS,
    SEGMENTS,
    SESSION_METRICS,
    SESSIONS,
    TABLES,
)
from genesys_pipeline.steps.flatten.arrays import int32, strided_columns, take
from genesys_pipeline.steps.flatten.collect import Collected
from genesys_pipeline.steps.flatten.details_build import build_details
from genesys_pipeline.steps.flatten.diagnosis import (
    Context,
    FlattenError,
    record_path,
    to_array,
)
from genesys_pipeline.steps.flatten.fields import (
    CONVERSATION_COLUMNS,
    CONVERSATION_KEYS,
    FLOW_COLUMNS,
    FLOW_KEYS,
    METRIC_COLUMNS,
    METRIC_KEYS,
    PARTICIPANT_COLUMNS,
    PARTICIPANT_KEYS,
    SEGMENT_COLUMNS,
    SEGMENT_KEYS,
    SESSION_COLUMNS,
    SESSION_KEYS,
    SYSTEM_WRAPUP_PREFIX,
)
from genesys_pipeline.steps.flatten.pool import POOL
from genesys_pipeline.steps.flatten.state import State

CORE_TABLES = (CONVERSATIONS, PARTICIPANTS, SESSIONS, SEGMENTS, SESSION_METRICS, PARTICIPANT_ATTRIBUTES)
_TYPES = {table.name: {c.name: c.arrow_type for c in table.columns} for table in CORE_TABLES}

# Column -> where it comes from in the record, for error messages.
_FIELDS: dict[str, dict[str, str]] = {
    CONVERSATIONS.name: dict(zip(CONVERSATION_COLUMNS, CONVERSATION_KEYS)),
    PARTICIPANTS.name: dict(zip(PARTICIPANT_COLUMNS, PARTICIPANT_KEYS)),
    SESSIONS.name: dict(zip(SESSION_COLUMNS, SESSION_KEYS)) | {
        c: f"flow.{k}" for c, k in zip(FLOW_COLUMNS, FLOW_KEYS)},
    SEGMENTS.name: dict(zip(SEGMENT_COLUMNS, SEGMENT_KEYS)),
    SESSION_METRICS.name: dict(zip(METRIC_COLUMNS, METRIC_KEYS)),
    PARTICIPANT_ATTRIBUTES.name: {},
}  # fmt: skip


class RowLocator:
    """Describes row `row` of one table of a chunk: record number, conversation id, path, field."""

    def __init__(self, table: Table, collected: Collected, context: Context) -> None:
        self.table, self.collected, self.context = table, collected, context

    def describe(self, row: int, column: str) -> str:
        name, collected = self.table.name, self.collected
        field = _FIELDS[name].get(column, column)
        if name == CONVERSATIONS.name:
            return f"{self.context.record(row)}: {field}"
        session = None
        participant = row
        if name == PARTICIPANT_ATTRIBUTES.name:
            participant = collected.attribute_parent[row]
            field = f"attributes[{collected.attribute_keys[row]!r}]" + (" (its key)" if column == "attribute_key" else "")
        elif name == SESSIONS.name:
            session = row
        elif name == SEGMENTS.name:
            session = collected.segment_parent[row]
            field = f"segments[{collected.segment_index[row]}].{field}"
        elif name == SESSION_METRICS.name:
            session = collected.metric_parent[row]
            field = f"metrics[{collected.metric_index[row]}].{field}"
        if session is not None:
            participant = collected.session_parent[session]
        ordinal = collected.participant_parent[participant]
        path = record_path(
            collected.participant_index[participant],
            None if session is None else collected.session_index[session],
        )
        return f"{self.context.record(ordinal)}: {path}{field}"


def _duration(start: pa.Array, end: pa.Array) -> pa.Array:
    return pc.subtract(
        end.cast(pa.int64(), memory_pool=POOL), start.cast(pa.int64(), memory_pool=POOL), memory_pool=POOL
    )


def _columns(
    rows: list[Any], names: tuple[str, ...], table: Table, collected: Collected, context: Context
) -> dict[str, pa.Array]:
    """A flat row list (`len(names)` values per row) as one Arrow array per column (strided slices)."""
    return strided_columns(rows, names, _TYPES[table.name], RowLocator(table, collected, context))


def build(collected: Collected, state: State, context: Context) -> dict[str, pa.RecordBatch]:
    """A chunk's flat lists as one Arrow record batch per table."""
    c = collected
    report = state.report
    located: dict[str, Any] = {table.name: RowLocator(table, c, context) for table in CORE_TABLES}

    # Metric values first: the conversations' sums add them up, so a value that is not an integer
    # is reported here, where it is.
    met = _columns(c.metric_rows, METRIC_COLUMNS, SESSION_METRICS, c, context)
    conv = _columns(c.conversation_rows, CONVERSATION_COLUMNS, CONVERSATIONS, c, context)
    conv["duration_ms"] = _duration(conv["conversation_start"], conv["conversation_end"])
    conv["ongoing"] = pc.is_null(conv["conversation_end"], memory_pool=POOL)
    report.ongoing += conv["ongoing"].true_count

    part = _columns(c.participant_rows, PARTICIPANT_COLUMNS, PARTICIPANTS, c, context)
    part_parent = int32(c.participant_parent)
    part["conversation_id"] = take(conv["conversation_id"], part_parent)
    part["user_name"] = state.user_names(part["user_id"])

    sess = _columns(c.session_rows, SESSION_COLUMNS, SESSIONS, c, context)
    sess.update(_columns(c.flow_rows, FLOW_COLUMNS, SESSIONS, c, context))
    sess_parent = int32(c.session_parent)
    sess["conversation_id"] = take(part["conversation_id"], sess_parent)
    sess["participant_id"] = take(part["participant_id"], sess_parent)

    seg = _columns(c.segment_rows, SEGMENT_COLUMNS, SEGMENTS, c, context)
    seg_parent = int32(c.segment_parent)
    for name in ("conversation_id", "participant_id", "session_id"):
        seg[name] = take(sess[name], seg_parent)
    seg["segment_index"] = pa.array(c.segment_index, pa.int64(), memory_pool=POOL)
    seg["duration_ms"] = _duration(seg["segment_start"], seg["segment_end"])
    seg_participant = take(sess_parent, seg_parent)
    queue_names = state.queue_names(seg["queue_id"])
    # A queue the listing does not know (deleted): the acd participant's name for it, if any.
    missing = pc.and_(pc.is_null(queue_names), pc.is_valid(seg["queue_id"]), memory_pool=POOL)
    if missing.true_count:
        from_acd = pc.and_(missing, pc.equal(take(part["purpose"], seg_participant), "acd"))
        queue_names = pc.if_else(
            from_acd, take(part["participant_name"], seg_participant), queue_names, memory_pool=POOL
        )
    seg["queue_name"] = queue_names
    codes = seg["wrapup_code_id"]
    seg["wrapup_code_name"] = pc.if_else(
        pc.starts_with(codes, SYSTEM_WRAPUP_PREFIX, memory_pool=POOL), codes,
        pc.coalesce(state.code_names(codes), codes, memory_pool=POOL), memory_pool=POOL,
    )  # fmt: skip

    met_parent = int32(c.metric_parent)
    for name in ("conversation_id", "participant_id", "session_id"):
        met[name] = take(sess[name], met_parent)
    met["metric_index"] = pa.array(c.metric_index, pa.int64(), memory_pool=POOL)

    att = {
        "attribute_key": to_array(c.attribute_keys, pa.string(), located[PARTICIPANT_ATTRIBUTES.name], "attribute_key"),
        "attribute_value": to_array(c.attribute_values, pa.string(), located[PARTICIPANT_ATTRIBUTES.name], "attribute_value"),
    }  # fmt: skip
    att_parent = int32(c.attribute_parent)
    att["conversation_id"] = take(part["conversation_id"], att_parent)
    att["participant_id"] = take(part["participant_id"], att_parent)

    # Last: the columns derived from the rows above, whose values have been checked there.
    for name, values in c.derived.items():
        conv[name] = to_array(values, _TYPES[CONVERSATIONS.name][name], located[CONVERSATIONS.name], name)
    conv["abandoned"] = pc.is_valid(conv["abandon_ms"], memory_pool=POOL)

    tables = {CONVERSATIONS.name: conv, PARTICIPANTS.name: part, SESSIONS.name: sess, SEGMENTS.name: seg,
              SESSION_METRICS.name: met, PARTICIPANT_ATTRIBUTES.name: att}  # fmt: skip
    details, detail_locators = build_details(c, conv, sess, state, context)
    tables.update(details)
    located.update(detail_locators)
    batches = {}
    for table in TABLES:
        arrays = tables[table.name]
        arrays.update(state.constants.columns(len(arrays[table.columns[0].name])))
        for column in table.columns:
            if not column.nullable and arrays[column.name].null_count:
                row = arrays[column.name].is_null().index(True).as_py()
                raise FlattenError(f"{located[table.name].describe(row, column.name)} is missing")
        batches[table.name] = pa.RecordBatch.from_arrays(
            [arrays[column.name] for column in table.columns], schema=table.arrow_schema
        )
    _note(batches, state)
    return batches


# The columns whose ids are resolved to names, so whose unresolved ids the report counts.
_QUEUE_COLUMNS = ((SEGMENTS.name, "queue_id"), *((t.name, "queue_id") for t in (EVALUATIONS, SURVEYS, RESOLUTIONS)))
_USER_COLUMNS = ((PARTICIPANTS.name, "user_id"), (EVALUATIONS.name, "evaluator_id"),
                 *((t.name, "user_id") for t in (EVALUATIONS, SURVEYS, RESOLUTIONS)))  # fmt: skip


def _note(batches: dict[str, pa.RecordBatch], state: State) -> None:
    """Remember ids the lookups did not resolve, and the span of conversation starts."""
    report, lookups = state.report, state.lookups

    def distinct(table: str, column: str) -> list[str]:
        return [v for v in pc.unique(batches[table].column(column)).to_pylist() if v is not None]

    for table, column in _QUEUE_COLUMNS:
        report.unresolved["queues"].update(q for q in distinct(table, column) if q not in lookups.queues)
    for table, column in _USER_COLUMNS:
        report.unresolved["users"].update(u for u in distinct(table, column) if u not in lookups.users)
    for code in distinct(SEGMENTS.name, "wrapup_code_id"):
        if code.startswith(SYSTEM_WRAPUP_PREFIX):
            report.system_wrapup_codes.add(code)
        elif code not in lookups.wrapup_codes:
            report.unresolved["wrapup_codes"].add(code)
    starts = batches[CONVERSATIONS.name].column("conversation_start")
    if len(starts):
        extremes = pc.min_max(starts)
        low, high = extremes["min"].as_py(), extremes["max"].as_py()
        report.first_start = low if report.first_start is None else min(report.first_start, low)
        report.last_start = high if report.last_start is None else max(report.last_start, high)
