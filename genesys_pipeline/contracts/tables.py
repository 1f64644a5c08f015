"""The flattened tables: their columns with Arrow and Snowflake types, in one place.

The flatten step builds Arrow tables from these schemas (no type inference), the S3 step publishes
them, and the Snowflake step creates its tables from the same list, so the three cannot drift apart.
List-valued columns (`VARIANT` in Snowflake) travel as JSON array text in Parquet and CSV.
Every table has `partition_date` (the partition's day) and `extraction_run_id`, which the load uses to
replace exactly one partition and the check uses to count it.
"""

from __future__ import annotations

import pyarrow as pa

from genesys_pipeline.contracts.columns import (  # noqa: F401 (TIMESTAMP, Table: re-exported)
    TIMESTAMP,
    Column,
    Table,
    flag,
    json_list,
    number,
    text,
    timestamp,
)

_PARTITION_DATE = Column("partition_date", pa.date32(), "DATE", False, "the partition's day")
_RUN = text("extraction_run_id", "Dagster run that extracted the record", nullable=False)
_CONVERSATION_ID = text("conversation_id", nullable=False)
_PARTICIPANT_ID = text("participant_id", nullable=False)
_SESSION_ID = text("session_id", nullable=False)

CONVERSATIONS = Table(
    "conversations",
    key=("conversation_id",),
    description="One row per conversation: the table an analyst queries first.",
    columns=(
        _CONVERSATION_ID,
        _PARTITION_DATE,
        timestamp("conversation_start", nullable=False),
        timestamp("conversation_end", "absent while ongoing"),
        number("duration_ms", "conversation_end - conversation_start"),
        text("originating_direction"),
        json_list("media_types", "distinct session media types, in order of appearance"),
        json_list("division_ids", "divisionIds of the record"),
        json_list("division_names", "their names; an unresolved id stays an id"),
        text("first_queue_id", "the first queue the conversation reached"),
        text("first_queue_name"),
        json_list("agent_ids", "userIds of agents who handled it (an interact segment, tTalk or tHandle), in order of appearance"),
        json_list("agent_names", "their names (deleted users included); unresolved ids stay ids"),
        json_list("alerted_agent_ids", "userIds of agents alerted who never handled it (RONA, for example), in order of appearance"),
        json_list("alerted_agent_names", "their names (deleted users included); unresolved ids stay ids"),
        text("final_wrapup_code_id", "wrapUpCode of the last agent wrap-up; system codes such as ININ-WRAP-UP-TIMEOUT kept"),
        text("final_wrapup_code_name", "its name; a system or unresolved code stays the code"),
        number("talk_ms", "sum of tTalk"),
        number("hold_ms", "sum of tHeld"),
        number("acw_ms", "sum of tAcw"),
        number("handle_ms", "sum of tHandle"),
        number("wait_ms", "sum of tAcd (time in queue)"),
        number("abandon_ms", "sum of tAbandon"),
        flag("transferred", "an agent or user transferred it: any nTransferred/nBlindTransferred/nConsultTransferred, or a transfer/consultTransfer/conferenceTransfer/forwardTransfer disconnectType on an agent or user segment; RONA and other routing redirects are not transfers"),
        flag("abandoned", "any tAbandon"),
        flag("ongoing", "no conversation_end at extraction", nullable=False),
        _RUN,
        timestamp("extracted_at", "when the record was extracted", nullable=False),
    ),
)

PARTICIPANTS = Table(
    "participants",
    key=("conversation_id", "participant_id"),
    description="One row per participant of a conversation.",
    columns=(
        _CONVERSATION_ID,
        _PARTICIPANT_ID,
        _PARTITION_DATE,
        text("purpose"),
        text("participant_name"),
        text("user_id"),
        text("user_name", "resolved from the users listing (state=any); unresolved ids stay null"),
        text("team_id"),
        text("external_contact_id"),
        _RUN,
    ),
)

SESSIONS = Table(
    "sessions",
    key=("conversation_id", "participant_id", "session_id"),
    description="One row per session of a participant.",
    columns=(
        _CONVERSATION_ID,
        _PARTICIPANT_ID,
        _SESSION_ID,
        _PARTITION_DATE,
        text("media_type"),
        text("direction"),
        text("ani"),
        text("dnis"),
        text("address_from"),
        text("address_to"),
        text("message_type"),
        text("peer_id"),
        text("provider"),
        text("flow_name"),
        text("flow_type"),
        text("flow_exit_reason"),
        text("used_routing"),
        flag("recording"),
        _RUN,
    ),
)

SEGMENTS = Table(
    "segments",
    key=("conversation_id", "participant_id", "session_id", "segment_index"),
    description="One row per segment of a session, in the record's order.",
    columns=(
        _CONVERSATION_ID,
        _PARTICIPANT_ID,
        _SESSION_ID,
        number("segment_index", "position in the session's segments, from 0", nullable=False),
        _PARTITION_DATE,
        text("segment_type"),
        timestamp("segment_start"),
        timestamp("segment_end", "absent while the segment is open"),
        number("duration_ms"),
        text("queue_id"),
        text("queue_name"),
        text("wrapup_code_id"),
        text("wrapup_code_name"),
        text("wrapup_note"),
        text("disconnect_type"),
        text("error_code"),
        flag("conference"),
        text("subject"),
        _RUN,
    ),
)

SESSION_METRICS = Table(
    "session_metrics",
    key=("conversation_id", "participant_id", "session_id", "metric_index"),
    description="One row per metric emission; a metric emitted twice (two holds) is two rows.",
    columns=(
        _CONVERSATION_ID,
        _PARTICIPANT_ID,
        _SESSION_ID,
        number("metric_index", "position in the session's metrics, from 0", nullable=False),
        _PARTITION_DATE,
        text("name", nullable=False),
        number("value", "ms for t-metrics, a count for n-metrics"),
        timestamp("emit_date"),
        _RUN,
    ),
)

PARTICIPANT_ATTRIBUTES = Table(
    "participant_attributes",
    key=("conversation_id", "participant_id", "attribute_key"),
    description="Participant data as key/value rows (detail jobs only; the query omits attributes).",
    columns=(
        _CONVERSATION_ID,
        _PARTICIPANT_ID,
        _PARTITION_DATE,
        text("attribute_key", nullable=False),
        text("attribute_value"),
        _RUN,
    ),
)

TABLES: tuple[Table, ...] = (
    CONVERSATIONS,
    PARTICIPANTS,
    SESSIONS,
    SEGMENTS,
    SESSION_METRICS,
    PARTICIPANT_ATTRIBUTES,
)
TABLES_BY_NAME = {table.name: table for table in TABLES}
