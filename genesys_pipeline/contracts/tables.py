"""The flattened tables: their columns with Arrow and Snowflake types, in one place.

The flatten step builds Arrow tables from these schemas (no type inference), the S3 step publishes
them, and the Snowflake step creates its tables from the same list, so the three cannot drift apart.
List-valued columns (`VARIANT` in Snowflake) travel as JSON array text in Parquet and CSV.
Every table has `partition_date` (the partition's day) and `extraction_run_id`, which the load uses to
replace exactly one partition and the check uses to count it.
"""

from __future__ import annotations

import dataclasses

import pyarrow as pa

TIMESTAMP = pa.timestamp("ms", tz="UTC")


@dataclasses.dataclass(frozen=True)
class Column:
    name: str
    arrow_type: pa.DataType
    snowflake_type: str
    nullable: bool = True
    description: str = ""


@dataclasses.dataclass(frozen=True)
class Table:
    name: str
    key: tuple[str, ...]  # unique within a partition
    columns: tuple[Column, ...]
    description: str

    @property
    def arrow_schema(self) -> pa.Schema:
        return pa.schema([pa.field(c.name, c.arrow_type, nullable=c.nullable) for c in self.columns])

    @property
    def column_names(self) -> list[str]:
        return [column.name for column in self.columns]


def _text(name: str, description: str = "", nullable: bool = True) -> Column:
    return Column(name, pa.string(), "VARCHAR", nullable, description)


def _number(name: str, description: str = "", nullable: bool = True) -> Column:
    return Column(name, pa.int64(), "NUMBER(38,0)", nullable, description)


def _time(name: str, description: str = "", nullable: bool = True) -> Column:
    return Column(name, TIMESTAMP, "TIMESTAMP_TZ", nullable, description)


def _flag(name: str, description: str = "", nullable: bool = True) -> Column:
    return Column(name, pa.bool_(), "BOOLEAN", nullable, description)


def _json_list(name: str, description: str) -> Column:
    return Column(name, pa.string(), "VARIANT", True, description + " (JSON array)")


_PARTITION_DATE = Column("partition_date", pa.date32(), "DATE", False, "the partition's day")
_RUN = _text("extraction_run_id", "Dagster run that extracted the record", nullable=False)
_CONVERSATION_ID = _text("conversation_id", nullable=False)
_PARTICIPANT_ID = _text("participant_id", nullable=False)
_SESSION_ID = _text("session_id", nullable=False)

CONVERSATIONS = Table(
    "conversations",
    key=("conversation_id",),
    description="One row per conversation: the table an analyst queries first.",
    columns=(
        _CONVERSATION_ID,
        _PARTITION_DATE,
        _time("conversation_start", nullable=False),
        _time("conversation_end", "absent while ongoing"),
        _number("duration_ms", "conversation_end - conversation_start"),
        _text("originating_direction"),
        _json_list("media_types", "distinct session media types, in order of appearance"),
        _json_list("division_ids", "divisionIds of the record"),
        _json_list("division_names", "their names; an unresolved id stays an id"),
        _text("first_queue_id", "the first queue the conversation reached"),
        _text("first_queue_name"),
        _json_list("agent_ids", "userIds of agent participants, in order of appearance"),
        _json_list("agent_names", "their names (deleted users included); unresolved ids stay ids"),
        _text("final_wrapup_code_id", "wrapUpCode of the last agent wrap-up; system codes such as ININ-WRAP-UP-TIMEOUT kept"),
        _text("final_wrapup_code_name", "its name; a system or unresolved code stays the code"),
        _number("talk_ms", "sum of tTalk"),
        _number("hold_ms", "sum of tHeld"),
        _number("acw_ms", "sum of tAcw"),
        _number("handle_ms", "sum of tHandle"),
        _number("wait_ms", "sum of tAcd (time in queue)"),
        _number("abandon_ms", "sum of tAbandon"),
        _flag("transferred", "any nTransferred/nBlindTransferred/nConsultTransferred, or more than one agent"),
        _flag("abandoned", "any tAbandon"),
        _flag("ongoing", "no conversation_end at extraction", nullable=False),
        _RUN,
        _time("extracted_at", "when the record was extracted", nullable=False),
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
        _text("purpose"),
        _text("participant_name"),
        _text("user_id"),
        _text("user_name", "resolved from the users listing (state=any); unresolved ids stay null"),
        _text("team_id"),
        _text("external_contact_id"),
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
        _text("media_type"),
        _text("direction"),
        _text("ani"),
        _text("dnis"),
        _text("address_from"),
        _text("address_to"),
        _text("message_type"),
        _text("peer_id"),
        _text("provider"),
        _text("flow_name"),
        _text("flow_type"),
        _text("flow_exit_reason"),
        _text("used_routing"),
        _flag("recording"),
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
        _number("segment_index", "position in the session's segments, from 0", nullable=False),
        _PARTITION_DATE,
        _text("segment_type"),
        _time("segment_start"),
        _time("segment_end", "absent while the segment is open"),
        _number("duration_ms"),
        _text("queue_id"),
        _text("queue_name"),
        _text("wrapup_code_id"),
        _text("wrapup_code_name"),
        _text("wrapup_note"),
        _text("disconnect_type"),
        _text("error_code"),
        _flag("conference"),
        _text("subject"),
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
        _number("metric_index", "position in the session's metrics, from 0", nullable=False),
        _PARTITION_DATE,
        _text("name", nullable=False),
        _number("value", "ms for t-metrics, a count for n-metrics"),
        _time("emit_date"),
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
        _text("attribute_key", nullable=False),
        _text("attribute_value"),
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

# Where the flatten step leaves its output under the working location, per partition.
FLAT_PREFIX = "flat"


def flat_table_path(partition_key: str, table: str) -> str:
    return f"{FLAT_PREFIX}/{partition_key}/{table}.parquet"


def flat_manifest_path(partition_key: str) -> str:
    return f"{FLAT_PREFIX}/{partition_key}/manifest.json"
