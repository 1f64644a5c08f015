"""A chunk's raw records and details (see `details_collect`) -> the arrays of CONVERSATIONS_RAW and of the
quality, survey and flow tables, vectorised like `build`: ids of child rows taken from their parent
rows, names looked up, the NPS category computed in Arrow. `DetailLocator` leads a row back to its
place in the record, for error messages.
"""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc

from genesys_pipeline.contracts.quality_and_flow_tables import (
    EVALUATIONS,
    FLOW_OUTCOMES,
    FLOWS,
    MEDIA_ENDPOINT_STATS,
    RESOLUTIONS,
    SURVEYS,
)
from genesys_pipeline.contracts.tables import CONVERSATIONS_RAW, Table
from genesys_pipeline.steps.flatten.arrays import int32, strided_columns, take
from genesys_pipeline.steps.flatten.collect import Collected
from genesys_pipeline.steps.flatten.details_collect import (
    EVALUATION_COLUMNS,
    EVALUATION_KEYS,
    FLOW_DETAIL_COLUMNS,
    FLOW_DETAIL_KEYS,
    OUTCOME_COLUMNS,
    OUTCOME_KEYS,
    RESOLUTION_COLUMNS,
    RESOLUTION_KEYS,
    STAT_COLUMNS,
    STAT_KEYS,
    SURVEY_COLUMNS,
    SURVEY_KEYS,
)
from genesys_pipeline.steps.flatten.diagnosis import Context, record_path, to_array
from genesys_pipeline.steps.flatten.pool import POOL
from genesys_pipeline.steps.flatten.state import State

Arrays = dict[str, pa.Array]

# Per table: the record list its rows come from (the DetailRows field), its path in the record, and
# column -> record key, for error messages.
_SOURCES: dict[str, tuple[str, str, dict[str, str]]] = {
    EVALUATIONS.name: ("evaluations", "evaluations", dict(zip(EVALUATION_COLUMNS, EVALUATION_KEYS))),
    SURVEYS.name: ("surveys", "surveys", dict(zip(SURVEY_COLUMNS, SURVEY_KEYS))),
    RESOLUTIONS.name: ("resolutions", "resolutions", dict(zip(RESOLUTION_COLUMNS, RESOLUTION_KEYS))),
    MEDIA_ENDPOINT_STATS.name: ("stats", "mediaEndpointStats", dict(zip(STAT_COLUMNS, STAT_KEYS)) | {"codecs": "codecs"}),
    FLOWS.name: ("flows", "flow", dict(zip(FLOW_DETAIL_COLUMNS, FLOW_DETAIL_KEYS))),
    FLOW_OUTCOMES.name: ("outcomes", "flow.outcomes", dict(zip(OUTCOME_COLUMNS, OUTCOME_KEYS))),
}
_SESSION_LEVEL = {MEDIA_ENDPOINT_STATS.name, FLOWS.name}
_TYPES = {
    table.name: {c.name: c.arrow_type for c in table.columns}
    for table in (CONVERSATIONS_RAW, EVALUATIONS, SURVEYS, RESOLUTIONS, MEDIA_ENDPOINT_STATS, FLOWS, FLOW_OUTCOMES)
}


class DetailLocator:
    """Describes row `row` of a detail table of a chunk: record number, conversation id, path, field."""

    def __init__(self, table: Table, collected: Collected, context: Context) -> None:
        self.table, self.collected, self.context = table, collected, context

    def describe(self, row: int, column: str) -> str:
        c, name = self.collected, self.table.name
        if name == CONVERSATIONS_RAW.name:
            return f"{self.context.record(row)}: the record"
        source, path, fields = _SOURCES[name]
        listed = c.details.of(source)
        field = fields.get(column, column)
        item = "" if name == FLOWS.name else f"[{listed.index[row]}]"
        where = f"{path}{item}.{field}"
        parent = listed.parent[row]
        if name == FLOW_OUTCOMES.name:
            parent = c.details.flows.parent[parent]  # the flow's session row
        elif name not in _SESSION_LEVEL:
            return f"{self.context.record(parent)}: {where}"
        participant = c.session_parent[parent]
        prefix = record_path(c.participant_index[participant], c.session_index[parent])
        return f"{self.context.record(c.participant_parent[participant])}: {prefix}{where}"


def build_details(
    collected: Collected, conv: Arrays, sess: Arrays, state: State, context: Context
) -> tuple[dict[str, Arrays], dict[str, DetailLocator]]:
    """The arrays of each detail table (constant columns left to `build`), and their locators."""
    d = collected.details
    located = {name: DetailLocator(table, collected, context) for name, table in (
        (t.name, t) for t in (CONVERSATIONS_RAW, EVALUATIONS, SURVEYS, RESOLUTIONS, MEDIA_ENDPOINT_STATS, FLOWS, FLOW_OUTCOMES))}  # fmt: skip

    def columns(table: Table, rows: list, names: tuple[str, ...]) -> Arrays:
        return strided_columns(rows, names, _TYPES[table.name], located[table.name])

    raw = {
        "conversation_id": conv["conversation_id"],
        "conversation_start": conv["conversation_start"],
        "record": to_array(d.records, pa.string(), located[CONVERSATIONS_RAW.name], "record"),
    }

    tables: dict[str, Arrays] = {CONVERSATIONS_RAW.name: raw}
    for table, names in ((EVALUATIONS, EVALUATION_COLUMNS), (SURVEYS, SURVEY_COLUMNS), (RESOLUTIONS, RESOLUTION_COLUMNS)):
        listed = d.of(_SOURCES[table.name][0])
        arrays = tables[table.name] = columns(table, listed.rows, names)
        arrays["conversation_id"] = take(conv["conversation_id"], int32(listed.parent))
        arrays["queue_name"] = state.queue_names(arrays["queue_id"])
        arrays["user_name"] = state.user_names(arrays["user_id"])
    tables[EVALUATIONS.name]["evaluator_name"] = state.user_names(tables[EVALUATIONS.name]["evaluator_id"])
    tables[RESOLUTIONS.name]["resolution_index"] = pa.array(d.resolutions.index, pa.int64(), memory_pool=POOL)
    surveys = tables[SURVEYS.name]
    surveys["promoter_category"] = promoter_category(surveys["promoter_score"])

    stats = tables[MEDIA_ENDPOINT_STATS.name] = columns(MEDIA_ENDPOINT_STATS, d.stats.rows, STAT_COLUMNS)
    stats["codecs"] = to_array(d.stat_codecs, pa.string(), located[MEDIA_ENDPOINT_STATS.name], "codecs")
    stats["stat_index"] = pa.array(d.stats.index, pa.int64(), memory_pool=POOL)
    _session_keys(stats, sess, d.stats.parent)

    flows = tables[FLOWS.name] = columns(FLOWS, d.flows.rows, FLOW_DETAIL_COLUMNS)
    flows["outcome_count"] = pa.array(d.outcome_counts, pa.int64(), memory_pool=POOL)
    _session_keys(flows, sess, d.flows.parent)

    outcomes = tables[FLOW_OUTCOMES.name] = columns(FLOW_OUTCOMES, d.outcomes.rows, OUTCOME_COLUMNS)
    outcomes["outcome_index"] = pa.array(d.outcomes.index, pa.int64(), memory_pool=POOL)
    _session_keys(outcomes, flows, d.outcomes.parent)
    return tables, located


def _session_keys(arrays: Arrays, parents: Arrays, parent_rows: list[int]) -> None:
    rows = int32(parent_rows)
    for name in ("conversation_id", "participant_id", "session_id"):
        arrays[name] = take(parents[name], rows)


def promoter_category(scores: pa.Array) -> pa.Array:
    """NPS's reading of the 0-10 answer: promoter (9-10), passive (7-8), detractor (0-6); null stays null."""
    return pc.if_else(
        pc.greater_equal(scores, 9), "promoter",
        pc.if_else(pc.greater_equal(scores, 7), "passive", "detractor", memory_pool=POOL), memory_pool=POOL,
    )  # fmt: skip
