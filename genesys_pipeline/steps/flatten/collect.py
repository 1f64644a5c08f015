"""The hot loop: a chunk of raw records -> flat Python lists, one per table (benchmarks/flatten_day.py).

Each record is walked once, right after it is parsed, and its fields are copied with
`list.extend(map(obj.get, KEYS))` into one flat list per table: the values of a row next to each
other, so that a column is a strided slice (see `build`). Only what needs a record's own order (first
queue, final wrap-up (agents, users, the dialer), distinct media types, handling and alerted agents, transfers, metric sums) is computed here, per record;
names, timestamps and durations are left to Arrow.
"""

from __future__ import annotations

import dataclasses
from datetime import datetime, timezone
from typing import Any, Iterable, Mapping

import orjson

from genesys_pipeline.steps.flatten.details_collect import DetailRows, add_details
from genesys_pipeline.steps.flatten.diagnosis import (
    Context,
    FlattenError,
    record_path,
    structure_problem,
)
from genesys_pipeline.steps.flatten.fields import (
    CONVERSATION_KEYS,
    FLOW_KEYS,
    HANDLED_METRICS,
    OTHER_WRAPUP_PURPOSES,
    PARTICIPANT_KEYS,
    SEGMENT_KEYS,
    SESSION_KEYS,
    SUMMED_METRICS,
    SYSTEM_WRAPUP_PREFIX,
    TRACKED_METRICS,
    TRANSFER_DISCONNECTS,
)
from genesys_pipeline.steps.flatten.state import State

_NO_FLOW = (None, None, None)
_NO_START = "\uffff"  # sorts after every timestamp: a segment without a start is never "first"
_NO_AGENTS = "[]"  # most conversations have no alerted-only agent: skip the dumps


def _ts_key(text: Any) -> str:
    """An ordering key for an ISO timestamp: the API's own form sorts as text; others are normalised."""
    if text.__class__ is str and len(text) == 24 and text[23] == "Z":
        return text
    if text.__class__ is not str:
        return ""
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(timezone.utc)
    except ValueError:
        return text  # the vectorised parse reports it, with its location
    return parsed.strftime("%Y-%m-%dT%H:%M:%S.") + f"{parsed.microsecond // 1000:03d}Z"


@dataclasses.dataclass
class Collected:
    """A chunk of records as flat Python lists, plus for every child row its parent's row."""

    conversations: int = 0
    conversation_rows: list[Any] = dataclasses.field(default_factory=list)  # CONVERSATION_KEYS per record
    derived: dict[str, list[Any]] = dataclasses.field(default_factory=dict)  # per record, computed columns
    participant_rows: list[Any] = dataclasses.field(default_factory=list)  # PARTICIPANT_KEYS per participant
    participant_parent: list[int] = dataclasses.field(default_factory=list)  # record ordinal in the chunk
    participant_index: list[int] = dataclasses.field(default_factory=list)  # index in the record
    session_rows: list[Any] = dataclasses.field(default_factory=list)  # SESSION_KEYS per session
    flow_rows: list[Any] = dataclasses.field(default_factory=list)  # FLOW_KEYS per session
    session_parent: list[int] = dataclasses.field(default_factory=list)  # participant row
    session_index: list[int] = dataclasses.field(default_factory=list)  # index in the participant
    segment_rows: list[Any] = dataclasses.field(default_factory=list)  # SEGMENT_KEYS per segment
    segment_parent: list[int] = dataclasses.field(default_factory=list)  # session row
    segment_index: list[int] = dataclasses.field(default_factory=list)
    metric_rows: list[Any] = dataclasses.field(default_factory=list)  # METRIC_KEYS per metric
    metric_parent: list[int] = dataclasses.field(default_factory=list)  # session row
    metric_index: list[int] = dataclasses.field(default_factory=list)
    attribute_keys: list[Any] = dataclasses.field(default_factory=list)
    attribute_values: list[Any] = dataclasses.field(default_factory=list)
    attribute_parent: list[int] = dataclasses.field(default_factory=list)  # participant row
    details: DetailRows = dataclasses.field(default_factory=DetailRows)  # the raw JSON, quality and flow tables


def collect(records: Iterable[Mapping[str, Any]], state: State, context: Context) -> Collected:
    """Walk records into flat lists, each record once, while it is fresh in the CPU cache. The hot
    loop: locals only, one `extend(map(obj.get, KEYS))` per object instead of one call per field."""
    lookups = state.lookups
    # `.decode()` at once: orjson's bytes come from a large malloc'd buffer; kept alive by the
    # thousand they cost ~1.7 us each, a str copy ~0.1 us.
    dumps = orjson.dumps
    queues_get, users_get = lookups.queues.get, lookups.users.get
    codes_get, divisions_get = lookups.wrapup_codes.get, lookups.divisions.get
    divisions_known, unresolved_divisions = lookups.divisions, state.report.unresolved["divisions"]
    out = Collected()
    derived = out.derived = {name: [] for name in (
        "media_types", "division_ids", "division_names", "first_queue_id", "first_queue_name",
        "agent_ids", "agent_names", "alerted_agent_ids", "alerted_agent_names", "final_wrapup_code_id", "final_wrapup_code_name", "transferred",
        *SUMMED_METRICS.values())}  # fmt: skip
    c_rows, p_rows, s_rows, f_rows = (out.conversation_rows.extend, out.participant_rows.extend,
                                      out.session_rows.extend, out.flow_rows.extend)  # fmt: skip
    g_rows, m_rows = out.segment_rows.extend, out.metric_rows.extend
    CK, PK, SK, FK, GK = CONVERSATION_KEYS, PARTICIPANT_KEYS, SESSION_KEYS, FLOW_KEYS, SEGMENT_KEYS  # noqa: N806
    p_parent, p_index = out.participant_parent.append, out.participant_index.append
    s_parent, s_index = out.session_parent.append, out.session_index.append
    g_parent, g_index = out.segment_parent, out.segment_index
    m_parent, m_index = out.metric_parent, out.metric_index
    a_keys, a_values, a_parent = out.attribute_keys, out.attribute_values, out.attribute_parent
    d_media, d_div_ids, d_div_names = (derived["media_types"].append, derived["division_ids"].append,
                                       derived["division_names"].append)  # fmt: skip
    d_fq_id, d_fq_name = derived["first_queue_id"].append, derived["first_queue_name"].append
    d_agent_ids, d_agent_names = derived["agent_ids"].append, derived["agent_names"].append
    d_wrap_id, d_wrap_name = derived["final_wrapup_code_id"].append, derived["final_wrapup_code_name"].append
    d_alerted_ids, d_alerted_names = derived["alerted_agent_ids"].append, derived["alerted_agent_names"].append
    d_transferred = derived["transferred"].append
    transfer_disconnects, handled_metrics = TRANSFER_DISCONNECTS, HANDLED_METRICS
    other_wrappers = OTHER_WRAPUP_PURPOSES
    tracked = TRACKED_METRICS
    summed = [(metric, derived[column].append) for metric, column in SUMMED_METRICS.items()]
    conversation_ids = context.conversation_ids
    details = out.details

    ordinal = -1
    record: Any = None
    pi = si = -1
    prow = srow = 0  # rows of the participants and sessions tables in this chunk
    try:
        for ordinal, record in enumerate(records):  # noqa: B007 (used in the except clause)
            pi = si = -1
            first_session_row = srow
            conversation_ids.append(record.get("conversationId"))
            c_rows(map(record.get, CK))
            divisions = record.get("divisionIds")
            if divisions is None:
                d_div_ids(None)
                d_div_names(None)
            else:
                for division in divisions:
                    if division not in divisions_known:
                        if division.__class__ is not str:
                            raise TypeError("not a list of strings")
                        unresolved_divisions.add(division)
                if divisions.__class__ is not list:
                    raise TypeError("not a list")
                d_div_ids(dumps(divisions).decode())
                d_div_names(dumps([divisions_get(d, d) for d in divisions]).decode())

            media_types: list[Any] = []
            agents: list[Any] = []  # userIds of agent participants that handled it
            alerted: list[Any] = []  # ... and of those that were only alerted (RONA, an unanswered consult)
            transfer = False  # a transfer disconnect on an agent or user segment
            sums: dict[str, int] = {}
            fq_acd = fq_acd_name = fq_any = None
            fq_acd_key = _NO_START
            wrap_code = None
            wrap_key = ""
            wrap_seen = False
            participants = record.get("participants") or ()
            for pi, participant in enumerate(participants):  # noqa: B007
                si = -1
                p_rows(map(participant.get, PK))
                p_parent(ordinal)
                p_index(pi)
                purpose = participant.get("purpose")
                is_acd, is_agent = purpose == "acd", purpose == "agent"
                handled = False
                attributes = participant.get("attributes")
                if attributes:
                    a_keys += attributes.keys()
                    a_values += attributes.values()
                    a_parent += [prow] * len(attributes)

                for si, session in enumerate(participant.get("sessions") or ()):  # noqa: B007
                    get = session.get
                    s_rows(map(get, SK))
                    flow = get("flow")
                    f_rows(_NO_FLOW if flow is None else map(flow.get, FK))
                    s_parent(prow)
                    s_index(si)
                    media = get("mediaType")
                    if media is not None and media not in media_types:
                        media_types.append(media)
                    metrics = get("metrics")
                    if metrics:
                        for metric in metrics:
                            metric_get = metric.get
                            name, value = metric_get("name"), metric_get("value")
                            m_rows((name, value, metric_get("emitDate")))
                            if name in tracked and value is not None:
                                sums[name] = sums.get(name, 0) + value
                        m_parent += [srow] * len(metrics)
                        m_index += range(len(metrics))
                    segments = get("segments")
                    if segments:
                        for segment in segments:
                            g_rows(map(segment.get, GK))
                        g_parent += [srow] * len(segments)
                        g_index += range(len(segments))
                        if is_acd:  # the first queue: the earliest acd segment with a queue
                            for segment in segments:
                                queue = segment.get("queueId")
                                if queue is not None:
                                    key = _ts_key(segment.get("segmentStart") or _NO_START)
                                    if fq_acd is None or key < fq_acd_key:
                                        fq_acd, fq_acd_key = queue, key
                                        fq_acd_name = participant.get("participantName")
                        elif is_agent:  # handled? transferred? the final wrap-up: the latest wrap-up
                            for segment in segments:
                                segment_get = segment.get
                                if segment_get("segmentType") == "interact":
                                    handled = True
                                if segment_get("disconnectType") in transfer_disconnects:
                                    transfer = True
                                code = segment_get("wrapUpCode")
                                if code is not None or segment_get("segmentType") == "wrapup":
                                    key = _ts_key(segment_get("segmentStart") or "")
                                    if not wrap_seen or key >= wrap_key:
                                        wrap_seen, wrap_key, wrap_code = True, key, code
                        elif purpose in other_wrappers:  # a user or the dialer wraps up too; a user transfers
                            for segment in segments:
                                segment_get = segment.get
                                if segment_get("disconnectType") in transfer_disconnects and purpose == "user":
                                    transfer = True
                                code = segment_get("wrapUpCode")
                                if code is not None or segment_get("segmentType") == "wrapup":
                                    key = _ts_key(segment_get("segmentStart") or "")
                                    if not wrap_seen or key >= wrap_key:
                                        wrap_seen, wrap_key, wrap_code = True, key, code
                    if is_agent and not handled and metrics:  # no interact yet: talk or handle time?
                        for metric in metrics:
                            if metric.get("name") in handled_metrics:
                                handled = True
                    srow += 1
                if is_agent:
                    uid = participant.get("userId")
                    if uid is not None:
                        if handled:
                            if uid not in agents:
                                agents.append(uid)
                        elif uid not in alerted:
                            alerted.append(uid)
                prow += 1
            add_details(record, ordinal, first_session_row, details, dumps, context)

            if fq_acd is None:  # no acd participant with a queue: the earliest segment of anyone's
                fq_any_key = _NO_START
                for participant in participants:
                    for session in participant.get("sessions") or ():
                        for segment in session.get("segments") or ():
                            queue = segment.get("queueId")
                            if queue is not None:
                                key = _ts_key(segment.get("segmentStart") or _NO_START)
                                if fq_any is None or key < fq_any_key:
                                    fq_any, fq_any_key = queue, key
                d_fq_id(fq_any)
                d_fq_name(queues_get(fq_any) if fq_any is not None else None)
            else:
                d_fq_id(fq_acd)
                d_fq_name(queues_get(fq_acd, fq_acd_name))
            d_media(dumps(media_types).decode())
            d_agent_ids(dumps(agents).decode())
            d_agent_names(dumps([users_get(a, a) for a in agents]).decode())
            if alerted:  # alerted only: never handled in any of their participants
                alerted = [a for a in alerted if a not in agents]
            if alerted:
                d_alerted_ids(dumps(alerted).decode())
                d_alerted_names(dumps([users_get(a, a) for a in alerted]).decode())
            else:
                d_alerted_ids(_NO_AGENTS)
                d_alerted_names(_NO_AGENTS)
            for metric, append in summed:
                append(sums.get(metric))
            d_transferred(
                transfer or "nTransferred" in sums or "nBlindTransferred" in sums or "nConsultTransferred" in sums
            )
            d_wrap_id(wrap_code)
            if wrap_code is None or wrap_code.__class__ is not str:
                d_wrap_name(wrap_code)  # not a string: reported with its location when converted
            elif wrap_code.startswith(SYSTEM_WRAPUP_PREFIX):
                d_wrap_name(wrap_code)
            else:
                d_wrap_name(codes_get(wrap_code, wrap_code))
    except (AttributeError, TypeError) as error:  # a value of the wrong JSON type somewhere
        where = structure_problem(record) or (
            record_path(pi if pi >= 0 else None, si if si >= 0 else None).rstrip(".") or "the record"
        )
        raise FlattenError(
            f"{context.record(ordinal)}: {where} (unexpected structure: {error})"
        ) from None
    out.conversations = ordinal + 1
    return out
