"""The analyst views over the conversation tables: their columns, types and definitions, in one place.

The conversation table sums every agent's metrics into one row per conversation, and a consult or a
transfer puts two agents' handle time into that one row. These views keep Genesys's own units:

    QUEUE_VISITS     one row per time a conversation waited in a queue (an `acd` session):
                     offered, waited, abandoned, flowed out, over the service level
    AGENT_HANDLING   one row per agent or user participant that handled a conversation:
                     answered, talk, hold, after-call work, handle, transfers, consults, wrap-up

so that average handle time (Genesys: total tHandle / number of handles) can be taken per agent and
per queue without counting anyone's time twice. The load (steps/views.py) creates them with
CREATE OR REPLACE VIEW, every column cast to the type below; `{participants}` and the like in the SQL
are the conversation tables' names in the target schema.
"""

from __future__ import annotations

import dataclasses

import pyarrow as pa

from genesys_pipeline.contracts.columns import (
    Column,
    Table,
    flag,
    number,
    text,
    timestamp,
)
from genesys_pipeline.contracts.tables import TABLES


@dataclasses.dataclass(frozen=True)
class View:
    table: Table  # the view's name, key (unique within a partition), columns and description
    select: str  # SELECT over `{<table name>}` placeholders, one output column per contract column

    @property
    def name(self) -> str:
        return self.table.name

    def select_sql(self, table_names: dict[str, str]) -> str:
        """The SELECT with each conversation table's placeholder replaced by `table_names[name]`."""
        return self.select.format(**{table.name: table_names[table.name] for table in TABLES})


_PARTITION_DATE = Column(
    "partition_date", pa.date32(), "DATE", False, "the partition's day: the day the conversation started"
)


def _view(name: str, key: tuple[str, ...], description: str, columns: tuple[Column, ...], select: str) -> View:
    return View(Table(name, key=key, columns=columns, description=description), select)


# Metrics summed per participant-session or participant: a metric can be emitted more than once (one
# tHeld per hold), so sums and counts, never a single value.
def _sum(metric: str) -> str:
    return f"SUM(CASE WHEN name = '{metric}' THEN value END)"


def _count(metric: str) -> str:
    return f"COUNT(CASE WHEN name = '{metric}' THEN 1 END)"


QUEUE_VISITS = _view(
    "queue_visits",
    key=("conversation_id", "participant_id", "session_id"),
    description=(
        "One row per time a conversation waited in a queue: a session of an `acd` participant. A "
        "conversation transferred to a second queue has a row per queue. Offered, abandoned and service "
        "level per queue are counted here; answered is counted on AGENT_HANDLING (tAnswered)."
    ),
    columns=(
        text("conversation_id", "the conversation (CONVERSATIONS.conversation_id)", nullable=False),
        text("participant_id", "the queue's `acd` participant (PARTICIPANTS.participant_id)", nullable=False),
        text("session_id", "its session (SESSIONS.session_id)", nullable=False),
        _PARTITION_DATE,
        text("queue_id", "queueId of the session's first segment that has one"),
        text("queue_name", "that queue's name (SEGMENTS.queue_name)"),
        text("media_type", "mediaType of the session: voice, callback, chat, email, message..."),
        timestamp("entered_at", "segmentStart of the session's first segment: when the conversation entered the queue"),
        number("offered", "count of nOffered: 1 once the queue offered the conversation to agents, 0 before", nullable=False),
        number("acd_ms", "sum of tAcd: time waiting in the queue (CONVERSATIONS.wait_ms is its sum over the conversation's queues)"),
        number("abandon_ms", "sum of tAbandon: time in the queue before the customer (or the system) disconnected without reaching an agent"),
        flag("abandoned", "a tAbandon was emitted: the conversation was abandoned in this queue", nullable=False),
        flag("short_abandoned", "a tShortAbandon was emitted: abandoned within the org's short-abandon threshold", nullable=False),
        flag("flowed_out", "a tFlowOut was emitted: the conversation left the queue by a flow action (for example to another queue or a callback), neither answered nor abandoned", nullable=False),
        number("over_sla", "count of nOverSla: answered or abandoned after the queue's service-level target", nullable=False),
    ),
    select="""
WITH queued AS (
    SELECT s.conversation_id, s.participant_id, s.session_id, s.partition_date, s.media_type
    FROM {sessions} s
    JOIN {participants} p
      ON p.conversation_id = s.conversation_id AND p.participant_id = s.participant_id
     AND p.partition_date = s.partition_date
    WHERE p.purpose = 'acd'
),
first_segment AS (
    SELECT conversation_id, participant_id, session_id, partition_date, queue_id, queue_name, segment_start,
           ROW_NUMBER() OVER (PARTITION BY conversation_id, participant_id, session_id, partition_date
                              ORDER BY CASE WHEN queue_id IS NULL THEN 1 ELSE 0 END, segment_index) AS position
    FROM {segments}
),
metrics AS (
    SELECT conversation_id, participant_id, session_id, partition_date,
           """ + _count("nOffered") + """ AS offered,
           """ + _sum("tAcd") + """ AS acd_ms,
           """ + _sum("tAbandon") + """ AS abandon_ms,
           """ + _count("tAbandon") + """ AS abandons,
           """ + _count("tShortAbandon") + """ AS short_abandons,
           """ + _count("tFlowOut") + """ AS flow_outs,
           """ + _count("nOverSla") + """ AS over_sla
    FROM {session_metrics}
    GROUP BY conversation_id, participant_id, session_id, partition_date
)
SELECT q.conversation_id, q.participant_id, q.session_id, q.partition_date,
       f.queue_id, f.queue_name, q.media_type, f.segment_start AS entered_at,
       COALESCE(m.offered, 0) AS offered, m.acd_ms, m.abandon_ms,
       COALESCE(m.abandons, 0) > 0 AS abandoned,
       COALESCE(m.short_abandons, 0) > 0 AS short_abandoned,
       COALESCE(m.flow_outs, 0) > 0 AS flowed_out,
       COALESCE(m.over_sla, 0) AS over_sla
FROM queued q
LEFT JOIN first_segment f
  ON f.conversation_id = q.conversation_id AND f.participant_id = q.participant_id
 AND f.session_id = q.session_id AND f.partition_date = q.partition_date AND f.position = 1
LEFT JOIN metrics m
  ON m.conversation_id = q.conversation_id AND m.participant_id = q.participant_id
 AND m.session_id = q.session_id AND m.partition_date = q.partition_date
""",
)

AGENT_HANDLING = _view(
    "agent_handling",
    key=("conversation_id", "participant_id"),
    description=(
        "One row per agent or user participant that handled a conversation: it has an interact segment, "
        "a tTalk or a tHandle (the agents of CONVERSATIONS.agent_ids, plus `user` participants, who take "
        "calls without a queue). Agents only alerted (RONA) have no row. The metrics are summed over the "
        "participant's sessions (a callback's agent answers on one session and calls back on another). "
        "A consulted colleague has a row of their own, flagged `consulted`: Genesys counts a handle for "
        "them too. Average handle time = SUM(handle_ms) / SUM(handles)."
    ),
    columns=(
        text("conversation_id", "the conversation (CONVERSATIONS.conversation_id)", nullable=False),
        text("participant_id", "the agent's or user's participant (PARTICIPANTS.participant_id)", nullable=False),
        _PARTITION_DATE,
        text("purpose", "agent (routed from a queue, or placing a queue's outbound call) or user (a call without a queue)"),
        text("user_id", "userId of the agent or user (DIM_USERS.user_id)"),
        text("user_name", "their name (PARTICIPANTS.user_name)"),
        text("queue_id", "queueId of the participant's first interact segment, else of its first segment that has one (an outbound call not answered); null for a user reached without a queue"),
        text("queue_name", "that queue's name (SEGMENTS.queue_name)"),
        timestamp("joined_at", "segmentStart of the participant's first segment (usually the alert)"),
        flag("answered", "a tAnswered was emitted: this agent was the first to accept the conversation from a queue (Genesys's Answered); FALSE for a consulted colleague, a transfer target not routed by a queue, and agent-placed calls", nullable=False),
        number("answer_ms", "sum of tAnswered: from entering the queue to this agent's answer (speed of answer)"),
        number("alert_ms", "sum of tAlert: ringing or alerting time before the answer"),
        number("talk_ms", "sum of tTalk: talking (interacting) time, holds excluded"),
        number("hold_ms", "sum of tHeld: time the customer was on hold, every hold (a consult's included)"),
        number("acw_ms", "sum of tAcw: after-call work (wrap-up) time"),
        number("dialing_ms", "sum of tDialing: dialing time of an agent-placed call"),
        number("contacting_ms", "sum of tContacting: time an agent-placed call rang before it connected"),
        number("handle_ms", "sum of tHandle: talk + hold + after-call work (+ dialing + contacting on agent-placed calls); null until the wrap-up is done"),
        number("handles", "count of tHandle: the number of handles (Genesys's nHandle), 1 once the wrap-up is done, 0 before", nullable=False),
        number("transfers", "count of nTransferred: transfers this agent made (blind and consult)", nullable=False),
        number("blind_transfers", "count of nBlindTransferred", nullable=False),
        number("consult_transfers", "count of nConsultTransferred", nullable=False),
        number("consults", "count of nConsult: consults this agent started", nullable=False),
        flag("consulted", "this participant joined as the target of a consult: not answered from a queue (no tAnswered) and joined at or after an nConsult of another participant of the conversation; also when the consult then became a transfer to them", nullable=False),
        text("wrapup_code_id", "wrapUpCode of the participant's latest segment with one (by segmentStart); system codes such as ININ-WRAP-UP-TIMEOUT kept"),
        text("wrapup_code_name", "its name (SEGMENTS.wrapup_code_name); a system or unresolved code stays the code"),
    ),
    select="""
WITH segment_facts AS (
    SELECT conversation_id, participant_id, partition_date,
           MIN(segment_start) AS joined_at,
           COUNT(CASE WHEN segment_type = 'interact' THEN 1 END) AS interacts
    FROM {segments}
    GROUP BY conversation_id, participant_id, partition_date
),
metrics AS (
    SELECT conversation_id, participant_id, partition_date,
           """ + _count("tAnswered") + """ AS answers,
           """ + _sum("tAnswered") + """ AS answer_ms,
           """ + _sum("tAlert") + """ AS alert_ms,
           """ + _sum("tTalk") + """ AS talk_ms,
           """ + _sum("tHeld") + """ AS hold_ms,
           """ + _sum("tAcw") + """ AS acw_ms,
           """ + _sum("tDialing") + """ AS dialing_ms,
           """ + _sum("tContacting") + """ AS contacting_ms,
           """ + _sum("tHandle") + """ AS handle_ms,
           """ + _count("tHandle") + """ AS handles,
           """ + _count("tTalk") + """ AS talks,
           """ + _count("nTransferred") + """ AS transfers,
           """ + _count("nBlindTransferred") + """ AS blind_transfers,
           """ + _count("nConsultTransferred") + """ AS consult_transfers,
           """ + _count("nConsult") + """ AS consults
    FROM {session_metrics}
    GROUP BY conversation_id, participant_id, partition_date
),
handling_queue AS (
    SELECT conversation_id, participant_id, partition_date, queue_id, queue_name,
           ROW_NUMBER() OVER (PARTITION BY conversation_id, participant_id, partition_date
                              ORDER BY CASE WHEN segment_type = 'interact' THEN 0 ELSE 1 END,
                                       segment_start, session_id, segment_index) AS position
    FROM {segments}
    WHERE queue_id IS NOT NULL
),
latest_wrapup AS (
    SELECT conversation_id, participant_id, partition_date, wrapup_code_id, wrapup_code_name,
           ROW_NUMBER() OVER (PARTITION BY conversation_id, participant_id, partition_date
                              ORDER BY segment_start DESC, session_id DESC, segment_index DESC) AS position
    FROM {segments}
    WHERE wrapup_code_id IS NOT NULL
),
consult_starts AS (
    SELECT conversation_id, participant_id, partition_date, emit_date
    FROM {session_metrics}
    WHERE name = 'nConsult'
)
SELECT p.conversation_id, p.participant_id, p.partition_date, p.purpose, p.user_id, p.user_name,
       q.queue_id, q.queue_name, f.joined_at,
       COALESCE(m.answers, 0) > 0 AS answered,
       m.answer_ms, m.alert_ms, m.talk_ms, m.hold_ms, m.acw_ms, m.dialing_ms, m.contacting_ms,
       m.handle_ms, COALESCE(m.handles, 0) AS handles,
       COALESCE(m.transfers, 0) AS transfers, COALESCE(m.blind_transfers, 0) AS blind_transfers,
       COALESCE(m.consult_transfers, 0) AS consult_transfers, COALESCE(m.consults, 0) AS consults,
       COALESCE(m.answers, 0) = 0 AND EXISTS (
           SELECT 1 FROM consult_starts c
           WHERE c.conversation_id = p.conversation_id AND c.partition_date = p.partition_date
             AND c.participant_id <> p.participant_id AND c.emit_date <= f.joined_at
       ) AS consulted,
       w.wrapup_code_id, w.wrapup_code_name
FROM {participants} p
JOIN segment_facts f
  ON f.conversation_id = p.conversation_id AND f.participant_id = p.participant_id
 AND f.partition_date = p.partition_date
LEFT JOIN metrics m
  ON m.conversation_id = p.conversation_id AND m.participant_id = p.participant_id
 AND m.partition_date = p.partition_date
LEFT JOIN handling_queue q
  ON q.conversation_id = p.conversation_id AND q.participant_id = p.participant_id
 AND q.partition_date = p.partition_date AND q.position = 1
LEFT JOIN latest_wrapup w
  ON w.conversation_id = p.conversation_id AND w.participant_id = p.participant_id
 AND w.partition_date = p.partition_date AND w.position = 1
WHERE p.purpose IN ('agent', 'user')
  AND (f.interacts > 0 OR COALESCE(m.talks, 0) > 0 OR COALESCE(m.handles, 0) > 0)
""",
)

VIEWS: tuple[View, ...] = (QUEUE_VISITS, AGENT_HANDLING)
VIEWS_BY_NAME = {view.name: view for view in VIEWS}
