"""The flattened tables: their columns with Arrow and Snowflake types, in one place.

The flatten step builds Arrow tables from these schemas (no type inference), the S3 step publishes
them, and the Snowflake step creates its tables from the same list, so the three cannot drift apart.
List-valued columns and the raw record (`VARIANT` in Snowflake) travel as JSON text in Parquet and CSV.
The quality, survey and flow tables are in quality_and_flow_tables.py; TABLES lists them all.
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
from genesys_pipeline.contracts.conversation_keys import (
    CONVERSATION_ID,
    EXTRACTION_RUN,
    PARTICIPANT_ID,
    PARTITION_DATE,
    SESSION_ID,
)
from genesys_pipeline.contracts.quality_and_flow_tables import QUALITY_AND_FLOW_TABLES

CONVERSATIONS = Table(
    "conversations",
    key=("conversation_id",),
    description="One row per conversation: the table an analyst queries first.",
    columns=(
        CONVERSATION_ID,
        PARTITION_DATE,
        timestamp("conversation_start", "conversationStart", nullable=False),
        timestamp("conversation_end", "conversationEnd; null while the conversation is ongoing"),
        number("duration_ms", "conversation_end - conversation_start, in ms; null while ongoing"),
        text("originating_direction", "originatingDirection: inbound or outbound"),
        json_list("media_types", "the distinct mediaType values of its sessions (voice, callback, chat, email, message...), in order of appearance"),
        json_list("division_ids", "divisionIds: the divisions of the queues and users it involved"),
        json_list("division_names", "their names (DIM_DIVISIONS.name); an unresolved id stays an id"),
        text("first_queue_id", "queueId of the earliest segment (by segmentStart) of an acd participant, else of anyone's earliest segment with a queueId: the first queue the conversation reached"),
        text("first_queue_name", "its name (DIM_QUEUES.name, else the acd participant's participantName); null if neither knows it"),
        json_list("agent_ids", "userIds of agents who handled it (an interact segment, tTalk or tHandle), in order of appearance"),
        json_list("agent_names", "their names (deleted users included); unresolved ids stay ids"),
        json_list("alerted_agent_ids", "userIds of agents alerted who never handled it (RONA, for example), in order of appearance"),
        json_list("alerted_agent_names", "their names (deleted users included); unresolved ids stay ids"),
        text("final_wrapup_code_id", "wrapUpCode of the latest wrap-up (by segmentStart) of an agent, a user, or the dialer's leg of a campaign call (purpose outbound, dialer or campaign); null while that wrap-up has no code; system codes such as ININ-WRAP-UP-TIMEOUT and ININ-OUTBOUND-* kept"),
        text("final_wrapup_code_name", "its name; a system or unresolved code stays the code"),
        # Conversation totals: every session of every participant summed. A consult or transfer adds a
        # second agent's time, so these are not per-agent figures (AGENT_HANDLING, contracts/views.py).
        number("talk_ms", "tTalk summed over every session of the conversation: the talk time of every agent and user who took part (a consulted colleague's too), holds excluded; null if none was emitted"),
        number("hold_ms", "tHeld summed over every session: every hold by every agent and user (the customer's wait during a consult included)"),
        number("acw_ms", "tAcw summed over every session: the after-call work (wrap-up) time of every agent and user"),
        number("handle_ms", "tHandle summed over every session: the handle time (talk + hold + after-call work, + dialing and contacting on agent-placed calls) of every agent and user who handled it. A consult or transfer adds the second agent's handle time: the conversation's total agent time, not an average handle time (for that, AGENT_HANDLING)"),
        number("wait_ms", "tAcd summed over every session (Genesys emits it on the queue's acd session): time waiting in queue, over every queue the conversation reached (a transfer to another queue adds that queue's wait)"),
        number("abandon_ms", "tAbandon summed over every session (emitted on the queue's acd session): time in queue before the customer, or the system, disconnected without reaching an agent"),
        flag("transferred", "an agent or user transferred it: any nTransferred/nBlindTransferred/nConsultTransferred, or a transfer/consultTransfer/conferenceTransfer/forwardTransfer disconnectType on an agent or user segment; RONA and other routing redirects are not transfers"),
        flag("abandoned", "a tAbandon on any session: abandoned in a queue, also in a second queue after an agent of the first answered and transferred it (per queue: QUEUE_VISITS.abandoned)"),
        flag("ongoing", "no conversationEnd when extracted: a later run of the partition replaces the row", nullable=False),
        EXTRACTION_RUN,
        timestamp("extracted_at", "when the pipeline read the record from the API", nullable=False),
    ),
)

PARTICIPANTS = Table(
    "participants",
    key=("conversation_id", "participant_id"),
    description="One row per participant of a conversation.",
    columns=(
        CONVERSATION_ID,
        PARTICIPANT_ID,
        PARTITION_DATE,
        text("purpose", "purpose: customer, external, ivr, acd (a queue), agent, user (without a queue), outbound (a dialer leg), ..."),
        text("participant_name", "participantName: the queue's, flow's or person's name as Genesys displays it"),
        text("user_id", "userId of an agent or user (DIM_USERS.user_id)"),
        text("user_name", "their name from the users listing (DIM_USERS.name, deleted users included); null if unresolved"),
        text("team_id", "teamId"),
        text("external_contact_id", "externalContactId"),
        EXTRACTION_RUN,
    ),
)

SESSIONS = Table(
    "sessions",
    key=("conversation_id", "participant_id", "session_id"),
    description="One row per session of a participant.",
    columns=(
        CONVERSATION_ID,
        PARTICIPANT_ID,
        SESSION_ID,
        PARTITION_DATE,
        text("media_type", "mediaType: voice, callback, chat, email, message, ..."),
        text("direction", "direction of the session: inbound or outbound"),
        text("ani", "ani: the calling address"),
        text("dnis", "dnis: the called address"),
        text("address_from", "addressFrom"),
        text("address_to", "addressTo"),
        text("message_type", "messageType (messaging: sms, webmessaging, ...)"),
        text("peer_id", "peerId: the session this one is connected to"),
        text("provider", "provider"),
        text("flow_name", "flow.flowName: the Architect flow of an ivr or in-queue session"),
        text("flow_type", "flow.flowType (INBOUNDCALL, INQUEUECALL, ...)"),
        text("flow_exit_reason", "flow.exitReason (TRANSFER, CUSTOMER_DISCONNECT, ...)"),
        text("used_routing", "usedRouting: the routing method (Standard, Bullseye, ...)"),
        flag("recording", "recording: the session was recorded"),
        EXTRACTION_RUN,
    ),
)

SEGMENTS = Table(
    "segments",
    key=("conversation_id", "participant_id", "session_id", "segment_index"),
    description="One row per segment of a session, in the record's order.",
    columns=(
        CONVERSATION_ID,
        PARTICIPANT_ID,
        SESSION_ID,
        number("segment_index", "position in the session's segments, from 0", nullable=False),
        PARTITION_DATE,
        text("segment_type", "segmentType: alert, interact, hold, wrapup, delay, ivr, dialing, contacting, system, ..."),
        timestamp("segment_start", "segmentStart"),
        timestamp("segment_end", "segmentEnd; null while the segment is open"),
        number("duration_ms", "segment_end - segment_start, in ms; null while open"),
        text("queue_id", "queueId (DIM_QUEUES.queue_id)"),
        text("queue_name", "its name (DIM_QUEUES.name; on an acd participant's segment, else its participantName); null if unresolved"),
        text("wrapup_code_id", "wrapUpCode (DIM_WRAPUP_CODES.wrapup_code_id); system codes such as ININ-WRAP-UP-TIMEOUT kept"),
        text("wrapup_code_name", "its name (DIM_WRAPUP_CODES.name); a system or unresolved code stays the code"),
        text("wrapup_note", "wrapUpNote"),
        text("disconnect_type", "disconnectType: endpoint, peer, client, transfer, consultTransfer, noAnswerTransfer (RONA), ..."),
        text("error_code", "errorCode"),
        flag("conference", "conference: the segment is part of a conference"),
        text("subject", "subject (email and other digital media)"),
        EXTRACTION_RUN,
    ),
)

SESSION_METRICS = Table(
    "session_metrics",
    key=("conversation_id", "participant_id", "session_id", "metric_index"),
    description="One row per metric emission; a metric emitted twice (two holds) is two rows.",
    columns=(
        CONVERSATION_ID,
        PARTICIPANT_ID,
        SESSION_ID,
        number("metric_index", "position in the session's metrics, from 0", nullable=False),
        PARTITION_DATE,
        text("name", "metrics[].name: tTalk, tHeld, tAcw, tHandle, tAcd, tAbandon, nOffered, tAnswered, nTransferred, ...", nullable=False),
        number("value", "metrics[].value: ms for t-metrics, a count for n-metrics"),
        timestamp("emit_date", "metrics[].emitDate: when what it measures completed"),
        EXTRACTION_RUN,
    ),
)

PARTICIPANT_ATTRIBUTES = Table(
    "participant_attributes",
    key=("conversation_id", "participant_id", "attribute_key"),
    description="Participant data as key/value rows (detail jobs only; the query omits attributes).",
    columns=(
        CONVERSATION_ID,
        PARTICIPANT_ID,
        PARTITION_DATE,
        text("attribute_key", "a key of participants[].attributes", nullable=False),
        text("attribute_value", "its value, as text"),
        EXTRACTION_RUN,
    ),
)

CONVERSATIONS_RAW = Table(
    "conversations_raw",
    key=("conversation_id",),
    description="One row per conversation: the whole conversation-detail record as the API sent it, for the "
    "fields no other table holds (query it with record:path, e.g. record:participants[0]:purpose). The "
    "GENESYS_PII_* settings were applied to it before it was written, as to every other table.",
    columns=(
        CONVERSATION_ID,
        PARTITION_DATE,
        timestamp("conversation_start", "conversationStart", nullable=False),
        # A JSON object, not a list: VARIANT in Snowflake, the record's JSON text in Parquet and CSV.
        Column("record", pa.string(), "VARIANT", False, "the record: every field Genesys sent, nested as the API nests it (JSON object)"),
        EXTRACTION_RUN,
        timestamp("extracted_at", "when the pipeline read the record from the API", nullable=False),
    ),
)

TABLES: tuple[Table, ...] = (
    CONVERSATIONS,
    PARTICIPANTS,
    SESSIONS,
    SEGMENTS,
    SESSION_METRICS,
    PARTICIPANT_ATTRIBUTES,
    CONVERSATIONS_RAW,
    *QUALITY_AND_FLOW_TABLES,
)
TABLES_BY_NAME = {table.name: table for table in TABLES}
