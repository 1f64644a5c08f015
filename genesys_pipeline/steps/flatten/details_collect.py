"""A record's raw JSON and its quality, survey and flow details -> flat Python lists (collect.py's
companion for the tables of contracts/quality_and_flow_tables.py and CONVERSATIONS_RAW).

`add_details` is called once per record by `collect`, after the record's participants: it walks the
record's evaluations, surveys and resolutions, then its sessions again (in the order `collect` numbered
them) for their media endpoint stats and flows. Values are copied as in `collect`, one
`extend(map(obj.get, KEYS))` per object; `details_build` turns them into Arrow arrays.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable

from genesys_pipeline.steps.flatten.diagnosis import Context, FlattenError, record_path
from genesys_pipeline.steps.flatten.fields import _orjson_keys

# Record key -> column, in the order of the flat row lists (a column is a strided slice).
EVALUATION_KEYS = _orjson_keys(
    "evaluationId", "formId", "formName", "contextId", "evaluationStatus", "eventTime", "evaluatorId", "userId",
    "queueId", "assigneeId", "assigneeApplicable", "calibrationId", "oTotalScore", "oTotalCriticalScore",
    "released", "rescored", "deleted", "systemSubmitted",
)  # fmt: skip
EVALUATION_COLUMNS = (
    "evaluation_id", "form_id", "form_name", "form_context_id", "evaluation_status", "event_time", "evaluator_id",
    "user_id", "queue_id", "assignee_id", "assignee_applicable", "calibration_id", "total_score",
    "total_critical_score", "released", "rescored", "deleted", "system_submitted",
)  # fmt: skip
SURVEY_KEYS = _orjson_keys(
    "surveyId", "surveyFormId", "surveyFormName", "surveyFormContextId", "surveyType", "surveyStatus",
    "surveyCompletedDate", "surveyPartialResponse", "surveyPromoterScore", "oSurveyTotalScore", "userId",
    "queueId", "eventTime",
)  # fmt: skip
SURVEY_COLUMNS = (
    "survey_id", "survey_form_id", "survey_form_name", "survey_form_context_id", "survey_type", "survey_status",
    "completed_at", "partial_response", "promoter_score", "total_score", "user_id", "queue_id", "event_time",
)  # fmt: skip
RESOLUTION_KEYS = _orjson_keys("queueId", "userId", "nNextContactAvoided", "eventTime")
RESOLUTION_COLUMNS = ("queue_id", "user_id", "next_contact_avoided", "event_time")
STAT_KEYS = _orjson_keys(
    "minMos", "minRFactor", "maxLatencyMs", "receivedPackets", "discardedPackets", "duplicatePackets",
    "invalidPackets", "overrunPackets", "underrunPackets", "eventTime",
)  # fmt: skip
STAT_COLUMNS = (
    "min_mos", "min_r_factor", "max_latency_ms", "received_packets", "discarded_packets", "duplicate_packets",
    "invalid_packets", "overrun_packets", "underrun_packets", "event_time",
)  # fmt: skip
FLOW_DETAIL_KEYS = _orjson_keys(
    "flowId", "flowName", "flowType", "flowVersion", "entryType", "entryReason", "exitReason", "transferType",
    "transferTargetAddress", "transferTargetName", "issuedCallback", "startingLanguage", "endingLanguage",
    "recognitionFailureReason",
)  # fmt: skip
FLOW_DETAIL_COLUMNS = (
    "flow_id", "flow_name", "flow_type", "flow_version", "entry_type", "entry_reason", "exit_reason", "transfer_type",
    "transfer_target_address", "transfer_target_name", "issued_callback", "starting_language", "ending_language",
    "recognition_failure_reason",
)  # fmt: skip
OUTCOME_KEYS = _orjson_keys(
    "flowOutcomeId", "flowOutcomeValue", "flowOutcome", "flowOutcomeStartTimestamp", "flowOutcomeEndTimestamp"
)
OUTCOME_COLUMNS = ("flow_outcome_id", "flow_outcome_value", "flow_outcome", "outcome_start", "outcome_end")

# The conversation-level lists, as (record key, its rows' keys).
CONVERSATION_LISTS = (("evaluations", EVALUATION_KEYS), ("surveys", SURVEY_KEYS), ("resolutions", RESOLUTION_KEYS))


@dataclasses.dataclass
class Listed:
    """The objects of one kind of list in a chunk: their flat rows, their parent row, their index in it."""

    rows: list[Any] = dataclasses.field(default_factory=list)
    parent: list[int] = dataclasses.field(default_factory=list)
    index: list[int] = dataclasses.field(default_factory=list)

    def add(self, items: list[Any], keys: tuple[str, ...], parent: int) -> None:
        extend = self.rows.extend
        for item in items:
            extend(map(item.get, keys))
        self.parent += [parent] * len(items)
        self.index += range(len(items))


@dataclasses.dataclass
class DetailRows:
    """A chunk's raw records as JSON text and their details as flat lists (see `Collected`)."""

    records: list[str] = dataclasses.field(default_factory=list)  # one per record, in order
    evaluations: Listed = dataclasses.field(default_factory=Listed)  # parent: record ordinal
    surveys: Listed = dataclasses.field(default_factory=Listed)
    resolutions: Listed = dataclasses.field(default_factory=Listed)
    stats: Listed = dataclasses.field(default_factory=Listed)  # parent: session row
    stat_codecs: list[Any] = dataclasses.field(default_factory=list)  # JSON array text per stat
    flows: Listed = dataclasses.field(default_factory=Listed)  # parent: session row (index unused)
    outcome_counts: list[int] = dataclasses.field(default_factory=list)  # per flow
    outcomes: Listed = dataclasses.field(default_factory=Listed)  # parent: flow row

    def of(self, name: str) -> Listed:
        return getattr(self, name)


def add_details(
    record: Any, ordinal: int, session_row: int, out: DetailRows, dumps: Callable[[Any], bytes], context: Context
) -> None:
    """Add one record's raw JSON and details; `session_row` is the row its first session got in `collect`.

    The raw file was written with orjson, so dumping the parsed record gives back its very line."""
    try:
        out.records.append(dumps(record).decode())
        for name, keys in CONVERSATION_LISTS:
            items = record.get(name)
            if items:
                out.of(name).add(_listed(items), keys, ordinal)
        for participant in record.get("participants") or ():
            for session in participant.get("sessions") or ():
                stats = session.get("mediaEndpointStats")
                if stats:
                    out.stats.add(_listed(stats), STAT_KEYS, session_row)
                    out.stat_codecs += [_codecs(stat.get("codecs"), dumps) for stat in stats]
                flow = session.get("flow")
                if flow is not None:
                    out.flows.rows.extend(map(flow.get, FLOW_DETAIL_KEYS))
                    outcomes = flow.get("outcomes") or ()
                    out.outcome_counts.append(len(outcomes))
                    if outcomes:
                        out.outcomes.add(_listed(outcomes), OUTCOME_KEYS, len(out.flows.parent))
                    out.flows.parent.append(session_row)
                session_row += 1
    except (AttributeError, TypeError) as error:
        raise FlattenError(f"{context.record(ordinal)}: {detail_problem(record) or 'the record'} "
                           f"(unexpected structure: {error})") from None  # fmt: skip


def _listed(items: Any) -> list[Any]:
    if items.__class__ is not list:
        raise TypeError("not a list")
    return items


def _codecs(codecs: Any, dumps: Callable[[Any], bytes]) -> str | None:
    if codecs is None:
        return None
    if codecs.__class__ is not list:
        raise TypeError("codecs is not a list")
    return dumps(codecs).decode()


def detail_problem(record: Any) -> str | None:
    """The first detail of a record whose JSON type is not the API's (the slow path, for the error)."""
    lists = [(name, record.get(name)) for name, _ in CONVERSATION_LISTS]
    for pi, participant in enumerate(record.get("participants") or ()):
        for si, session in enumerate(participant.get("sessions") or ()):
            where = record_path(pi, si)
            stats = session.get("mediaEndpointStats")
            lists.append((where + "mediaEndpointStats", stats))
            for index, stat in enumerate(stats if isinstance(stats, list) else ()):
                codecs = stat.get("codecs") if isinstance(stat, dict) else None
                if codecs is not None and not isinstance(codecs, list):
                    return f"{where}mediaEndpointStats[{index}].codecs is a {type(codecs).__name__}, not a list"
            flow = session.get("flow")
            if flow is not None and not isinstance(flow, dict):
                return f"{where}flow is a {type(flow).__name__}, not an object"
            if flow is not None:
                lists.append((where + "flow.outcomes", flow.get("outcomes")))
    for where, items in lists:
        if items is None:
            continue
        if not isinstance(items, list):
            return f"{where} is a {type(items).__name__}, not a list"
        for index, item in enumerate(items):
            if not isinstance(item, dict):
                return f"{where}[{index}] is a {type(item).__name__}, not an object"
    return None
