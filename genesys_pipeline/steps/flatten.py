"""Flatten raw conversation-detail records into the six tables of `tables.py`, streaming.

    with storage.reader(path) as raw, ParquetSink(lambda table: storage.writer(...)) as sink:
        report = flatten(read_raw_records(raw, path), Lookups.from_client(client), sink,
                         partition_date=day, run_id=raw_run_id, extracted_at=extracted_at, source=path)

Records go in one at a time (an iterable: the raw asset's gzip JSON lines are read lazily). Out come
Arrow tables of exactly the schemas in `tables.py`, one per table for every `batch_conversations`
records, which `ParquetSink` writes as one Parquet row group each. Memory is bounded by the batch
(as compact Arrow arrays) plus a chunk of a few hundred records as Python values, never by the day.

How it stays fast (benchmarks/flatten_day.py): each record is walked once, right after it is parsed,
and its fields are copied with `list.extend(map(obj.get, KEYS))` into one flat Python list per table
(values of one row next to each other; a column is then a strided slice). Every `CHUNK_CONVERSATIONS`
records the columns become Arrow arrays, once per column. Ids of child rows are taken from their
parent row (`take`); segment and participant names are looked up, timestamps parsed and durations
subtracted in Arrow, vectorised. Only what needs a record's own order (first queue, final wrap-up,
distinct media types and agents, metric sums) is computed in Python, per record.

Rules (genesys-api.md s5, tables.py):
- conversations: `duration_ms` = end - start, null while ongoing; `ongoing` = no `conversationEnd`.
  `media_types` = distinct session `mediaType`s in order of appearance. `division_names`: a division id
  that does not resolve stays the id. `first_queue_id` = `queueId` of the earliest (by `segmentStart`)
  segment of an `acd` participant that carries one, else of any participant's segment;
  `first_queue_name` from the queues listing, else (a deleted queue) the `participantName` of the acd
  participant that segment belongs to (the API's own name for the queue, s5.2/s5.9), else null.
  `agent_ids`: distinct `userId`s of `agent` participants in order of appearance; `agent_names` from
  the users listing (deleted users included); an unresolved id stays the id. Final wrap-up: the
  `wrapUpCode` of the agent `wrapup` segment with the latest `segmentStart` (ties: the later one in
  the record), null if that segment has no code (yet). Codes starting `ININ-` are system codes: the
  code is both id and name; an unresolved code also stays the code as its name. `talk_ms` ...
  `abandon_ms`: sums over all sessions' metrics of tTalk, tHeld, tAcw, tHandle, tAcd, tAbandon (a
  metric emitted several times is summed; an emission without a value is left out), null when the
  record has no such metric. `transferred`:
  any nTransferred/nBlindTransferred/nConsultTransferred, or more than one distinct agent.
  `abandoned`: any tAbandon.
- participants: `user_name` from the users listing; unresolved stays null.
- segments: `queue_name` as `first_queue_name` (listing, else the acd participant's name, else null);
  `wrapup_code_name` as the final wrap-up's name; `duration_ms` = end - start when both exist.
- session_metrics: one row per emission; `metric_index` = position in the session's `metrics`.
- participant_attributes: one row per key of a participant's `attributes` (detail jobs only).
- Timestamps: ISO-8601 with a zone (the API's `...T..:..:...mmmZ`; offsets are converted to UTC,
  digits below the millisecond dropped) to timestamp[ms, UTC].
- Unknown fields are ignored; missing fields become nulls. A missing key (`conversationId`,
  `conversationStart`, `participantId`, `sessionId`, a metric's `name`), a malformed timestamp, a
  metric value that is not an integer, or a value of the wrong JSON type raise `FlattenError` naming
  the field and where it is: the source and line (= record) number, the conversation id, and the
  participant/session/segment/metric index.
"""

from __future__ import annotations

import contextlib
import dataclasses
import gzip
import itertools
import zlib
from datetime import date, datetime, timezone
from typing import IO, Any, Callable, ContextManager, Iterable, Iterator, Mapping

import orjson
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from genesys_pipeline.contracts.tables import (
    CONVERSATIONS,
    PARTICIPANT_ATTRIBUTES,
    PARTICIPANTS,
    SEGMENTS,
    SESSION_METRICS,
    SESSIONS,
    TABLES,
    TIMESTAMP,
    Table,
)

__all__ = [
    "DEFAULT_BATCH_CONVERSATIONS",
    "FlattenError",
    "FlattenReport",
    "Lookups",
    "ParquetSink",
    "SYSTEM_WRAPUP_PREFIX",
    "flatten",
    "flatten_batches",
    "flatten_to_tables",
    "read_raw_records",
]

DEFAULT_BATCH_CONVERSATIONS = 5_000  # conversations per Parquet row group
CHUNK_CONVERSATIONS = 500  # records held as Python values before they become Arrow arrays
SYSTEM_WRAPUP_PREFIX = "ININ-"
PARQUET_COMPRESSION = "zstd"
# The flattener allocates and frees tens of MB of Arrow memory per batch. The default pool (mimalloc)
# returns freed pages to the OS and faults them back in on the next batch; the system allocator
# keeps them: ~8% less time and ~35 MB less peak RSS (benchmarks/flatten_day.py), without touching
# the process-wide default pool that other code uses.
POOL = pa.system_memory_pool()

# Metrics summed into conversation columns, and those that mark a transfer.
_SUMMED = {"tTalk": "talk_ms", "tHeld": "hold_ms", "tAcw": "acw_ms", "tHandle": "handle_ms",
           "tAcd": "wait_ms", "tAbandon": "abandon_ms"}  # fmt: skip
_TRANSFERS = ("nTransferred", "nBlindTransferred", "nConsultTransferred")
_TRACKED = frozenset(_SUMMED) | frozenset(_TRANSFERS)


class FlattenError(ValueError):
    """A raw record cannot be flattened; the message names the field and where it is."""


# --- lookups ---------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Lookups:
    """Id -> name for queues, wrap-up codes, users (every state, deleted included) and divisions."""

    queues: Mapping[str, str] = dataclasses.field(default_factory=dict)
    wrapup_codes: Mapping[str, str] = dataclasses.field(default_factory=dict)
    users: Mapping[str, str] = dataclasses.field(default_factory=dict)
    divisions: Mapping[str, str] = dataclasses.field(default_factory=dict)

    @classmethod
    def from_listings(
        cls,
        *,
        queues: Iterable[Mapping[str, Any]] = (),
        wrapup_codes: Iterable[Mapping[str, Any]] = (),
        users: Iterable[Mapping[str, Any]] = (),
        divisions: Iterable[Mapping[str, Any]] = (),
    ) -> Lookups:
        """From API entities (`{"id": ..., "name": ..., ...}`); entities without both are skipped."""
        return cls(_names(queues), _names(wrapup_codes), _names(users), _names(divisions))

    @classmethod
    def from_client(cls, client: Any) -> Lookups:
        """Read the four listings through a `GenesysClient` (users with `state=any`: deleted agents
        still appear in historical conversations)."""
        return cls.from_listings(
            queues=client.iter_queues(),
            wrapup_codes=client.iter_wrapup_codes(),
            users=client.iter_users(state="any"),
            divisions=client.iter_divisions(),
        )

    def sizes(self) -> dict[str, int]:
        return {"queues": len(self.queues), "wrapup_codes": len(self.wrapup_codes),
                "users": len(self.users), "divisions": len(self.divisions)}  # fmt: skip


def _names(entities: Iterable[Mapping[str, Any]]) -> dict[str, str]:
    names = {}
    for entity in entities:
        entity_id, name = entity.get("id"), entity.get("name")
        if isinstance(entity_id, str) and isinstance(name, str):
            names[entity_id] = name
    return names


class _ArrowLookup:
    """One id -> name mapping as two Arrow arrays, for vectorised lookups (null when unknown)."""

    def __init__(self, names: Mapping[str, str]) -> None:
        self.ids = pa.array(list(names), pa.string(), memory_pool=POOL)
        self.names = pa.array(list(names.values()), pa.string(), memory_pool=POOL)

    def __call__(self, ids: pa.Array) -> pa.Array:
        return pc.take(self.names, pc.index_in(ids, value_set=self.ids, memory_pool=POOL), memory_pool=POOL)


# --- report ----------------------------------------------------------------------------------------


@dataclasses.dataclass
class FlattenReport:
    """What one flatten wrote: rows per table, ongoing conversations, ids the lookups did not know."""

    rows: dict[str, int] = dataclasses.field(default_factory=lambda: {t.name: 0 for t in TABLES})
    batches: int = 0
    ongoing: int = 0
    first_start: datetime | None = None
    last_start: datetime | None = None
    # Distinct ids per kind (queues, users, wrapup_codes, divisions) that did not resolve.
    unresolved: dict[str, set[str]] = dataclasses.field(
        default_factory=lambda: {"queues": set(), "users": set(), "wrapup_codes": set(), "divisions": set()}
    )
    system_wrapup_codes: set[str] = dataclasses.field(default_factory=set)  # ININ-..., kept as codes

    @property
    def conversations(self) -> int:
        return self.rows[CONVERSATIONS.name]

    def unresolved_counts(self) -> dict[str, int]:
        return {kind: len(ids) for kind, ids in self.unresolved.items()}

    def merge(self, other: FlattenReport) -> None:
        for name, count in other.rows.items():
            self.rows[name] = self.rows.get(name, 0) + count
        self.batches += other.batches
        self.ongoing += other.ongoing
        for kind, ids in other.unresolved.items():
            self.unresolved.setdefault(kind, set()).update(ids)
        self.system_wrapup_codes |= other.system_wrapup_codes
        starts = [s for s in (self.first_start, other.first_start) if s is not None]
        self.first_start = min(starts) if starts else None
        ends = [s for s in (self.last_start, other.last_start) if s is not None]
        self.last_start = max(ends) if ends else None


# --- reading the raw file --------------------------------------------------------------------------


def read_raw_records(handle: IO[bytes], source: str) -> Iterator[dict[str, Any]]:
    """The records of a gzip JSON-lines file (several gzip members allowed), one per line.

    Record n is line n: a blank or invalid line raises `FlattenError` naming `source` and the line.
    """
    number = 0
    loads = orjson.loads
    try:
        with gzip.GzipFile(fileobj=handle, mode="rb") as lines:
            for number, line in enumerate(lines, 1):  # noqa: B007 (number is used after the loop)
                try:
                    record = loads(line)
                except orjson.JSONDecodeError as error:
                    raise FlattenError(f"{source} line {number}: not a JSON record ({error})") from None
                if record.__class__ is not dict:
                    raise FlattenError(
                        f"{source} line {number}: expected a JSON object, got {type(record).__name__}"
                    )
                yield record
    except (EOFError, OSError, zlib.error) as error:
        raise FlattenError(f"{source}: unreadable gzip after line {number} ({error})") from None


# --- flattening ------------------------------------------------------------------------------------


def flatten_batches(
    records: Iterable[Mapping[str, Any]],
    lookups: Lookups,
    *,
    partition_date: date,
    run_id: str,
    extracted_at: datetime,
    batch_conversations: int = DEFAULT_BATCH_CONVERSATIONS,
    source: str = "records",
    report: FlattenReport | None = None,
) -> Iterator[dict[str, pa.Table]]:
    """Per batch of at most `batch_conversations` records, one Arrow table per table of `tables.py`
    (by name). A batch is a whole number of chunks of `CHUNK_CONVERSATIONS` records, so with the
    defaults every batch but the last has exactly 5,000 conversations.

    `run_id` and `extracted_at` describe the extraction (the raw manifest's) and go into every row;
    `source` names the input in error messages (record n is "line n"). Counts go into `report`.
    """
    if batch_conversations < 1:
        raise ValueError(f"batch_conversations must be at least 1, got {batch_conversations}")
    if extracted_at.tzinfo is None:
        raise ValueError("extracted_at must be timezone-aware")
    if not run_id:
        raise ValueError("run_id must not be empty")
    report = report if report is not None else FlattenReport()
    state = _State(lookups, _Constants(partition_date, run_id, extracted_at), report)
    chunk_size = min(CHUNK_CONVERSATIONS, batch_conversations)
    iterator = iter(records)
    first_number = 1
    pending: list[dict[str, pa.RecordBatch]] = []
    pending_conversations = 0
    while True:
        context = _Context(source, first_number)
        # Records are consumed one at a time; a chunk holds column values, never its records.
        collected = _collect(itertools.islice(iterator, chunk_size), state, context)
        if collected.conversations:
            pending.append(_build(collected, state, context))
            pending_conversations += collected.conversations
            first_number += collected.conversations
        done = collected.conversations < chunk_size
        if pending and (done or pending_conversations + chunk_size > batch_conversations):
            tables = {
                table.name: pa.Table.from_batches([p[table.name] for p in pending], schema=table.arrow_schema)
                for table in TABLES
            }
            pending, pending_conversations = [], 0
            report.batches += 1
            for name, table in tables.items():
                report.rows[name] += table.num_rows
            yield tables
        if done:
            return


def flatten(
    records: Iterable[Mapping[str, Any]],
    lookups: Lookups,
    sink: ParquetSink,
    *,
    partition_date: date,
    run_id: str,
    extracted_at: datetime,
    batch_conversations: int = DEFAULT_BATCH_CONVERSATIONS,
    source: str = "records",
) -> FlattenReport:
    """Flatten `records` into an open `ParquetSink` (one row group per table per batch)."""
    report = FlattenReport()
    for tables in flatten_batches(
        records, lookups, partition_date=partition_date, run_id=run_id, extracted_at=extracted_at,
        batch_conversations=batch_conversations, source=source, report=report,
    ):  # fmt: skip
        sink.write(tables)
    return report


def flatten_to_tables(
    records: Iterable[Mapping[str, Any]],
    lookups: Lookups,
    *,
    partition_date: date,
    run_id: str,
    extracted_at: datetime,
    batch_conversations: int = DEFAULT_BATCH_CONVERSATIONS,
    source: str = "records",
    report: FlattenReport | None = None,
) -> dict[str, pa.Table]:
    """All six tables in memory (tests, small inputs); empty tables keep their schema."""
    parts: dict[str, list[pa.Table]] = {table.name: [] for table in TABLES}
    for tables in flatten_batches(
        records, lookups, partition_date=partition_date, run_id=run_id, extracted_at=extracted_at,
        batch_conversations=batch_conversations, source=source, report=report,
    ):  # fmt: skip
        for name, table in tables.items():
            parts[name].append(table)
    return {
        table.name: pa.concat_tables(parts[table.name]) if parts[table.name] else table.arrow_schema.empty_table()
        for table in TABLES
    }


class ParquetSink:
    """Six Parquet files, one per table, written batch by batch (one row group per batch).

    `open_output(table_name)` gives a context manager yielding a binary file, e.g.
    `lambda name: storage.writer(flat_table_path(pk, name))`. The files commit (rename/upload) only if
    the `with ParquetSink(...)` block exits without an error, so a failed flatten, or a check that
    raises inside the block, leaves the previous files in place. A table with no rows is still a
    valid Parquet file with the table's schema.
    """

    def __init__(
        self,
        open_output: Callable[[str], ContextManager[IO[bytes]]],
        *,
        compression: str = PARQUET_COMPRESSION,
    ) -> None:
        self._open_output = open_output
        self._compression = compression
        self._stack: contextlib.ExitStack | None = None
        self._writers: dict[str, pq.ParquetWriter] = {}
        self.rows: dict[str, int] = {table.name: 0 for table in TABLES}

    def __enter__(self) -> ParquetSink:
        with contextlib.ExitStack() as stack:
            for table in TABLES:
                handle = stack.enter_context(self._open_output(table.name))
                writer = pq.ParquetWriter(
                    handle, table.arrow_schema, compression=self._compression, memory_pool=POOL,
                    use_dictionary=_DICTIONARY_COLUMNS[table.name],
                    write_statistics=_STATISTICS_COLUMNS[table.name],
                )  # fmt: skip
                stack.callback(writer.close)  # LIFO: the footer is written before the file commits
                self._writers[table.name] = writer
            self._stack = stack.pop_all()
        return self

    def __exit__(self, *exc_info: Any) -> bool:
        assert self._stack is not None
        stack, self._stack = self._stack, None
        return stack.__exit__(*exc_info)

    def write(self, tables: Mapping[str, pa.Table | pa.RecordBatch]) -> None:
        for name, table in tables.items():
            if table.num_rows:
                if isinstance(table, pa.RecordBatch):
                    table = pa.Table.from_batches([table])
                self._writers[name].write_table(table, row_group_size=table.num_rows)
                self.rows[name] += table.num_rows


# Dictionary encoding only where values repeat a lot: for ids it costs time and bytes.
_DICTIONARY_COLUMNS = {
    table.name: [
        c.name for c in table.columns
        if c.arrow_type != TIMESTAMP and not c.name.endswith(("_id", "_ids", "_key", "_value", "_ms", "_note"))
        and c.name not in ("ani", "dnis", "address_from", "address_to", "subject", "participant_name", "value",
                           "agent_names")
    ] + ["extraction_run_id"]
    for table in TABLES
}  # fmt: skip


# Min/max statistics where a reader can prune by them (times, numbers); string statistics cost
# ~15% of the write time and no reader of these files filters on a string range.
_STATISTICS_COLUMNS = {
    table.name: [c.name for c in table.columns if c.arrow_type in (TIMESTAMP, pa.date32(), pa.int64())]
    for table in TABLES
}


# --- internals -------------------------------------------------------------------------------------


def _orjson_keys(*keys: str) -> tuple[str, ...]:
    """The very str objects orjson uses for these object keys (it caches keys it has parsed), so that
    `dict.get` in the hot loop finds them by identity instead of comparing characters."""
    return tuple(orjson.loads(orjson.dumps(dict.fromkeys(keys, 0))))


# The fields copied as they are, in the order of the flat row lists (a column is a strided slice).
_CONVERSATION_KEYS = ("conversationId", "conversationStart", "conversationEnd", "originatingDirection")
_CONVERSATION_COLUMNS = ("conversation_id", "conversation_start", "conversation_end", "originating_direction")
_PARTICIPANT_KEYS = ("participantId", "purpose", "participantName", "userId", "teamId", "externalContactId")
_PARTICIPANT_COLUMNS = ("participant_id", "purpose", "participant_name", "user_id", "team_id", "external_contact_id")
_SESSION_KEYS = ("sessionId", "mediaType", "direction", "ani", "dnis", "addressFrom", "addressTo", "messageType",
                 "peerId", "provider", "usedRouting", "recording")
_SESSION_COLUMNS = ("session_id", "media_type", "direction", "ani", "dnis", "address_from", "address_to",
                    "message_type", "peer_id", "provider", "used_routing", "recording")
_FLOW_KEYS = ("flowName", "flowType", "exitReason")
_FLOW_COLUMNS = ("flow_name", "flow_type", "flow_exit_reason")
_SEGMENT_KEYS = ("segmentType", "segmentStart", "segmentEnd", "queueId", "wrapUpCode", "wrapUpNote",
                 "disconnectType", "errorCode", "conference", "subject")
_SEGMENT_COLUMNS = ("segment_type", "segment_start", "segment_end", "queue_id", "wrapup_code_id", "wrapup_note",
                    "disconnect_type", "error_code", "conference", "subject")
_METRIC_KEYS = ("name", "value", "emitDate")
_METRIC_COLUMNS = ("name", "value", "emit_date")
_NO_FLOW = (None, None, None)
_CK, _PK, _SK, _FK, _GK = (_orjson_keys(*keys) for keys in (
    _CONVERSATION_KEYS, _PARTICIPANT_KEYS, _SESSION_KEYS, _FLOW_KEYS, _SEGMENT_KEYS))  # fmt: skip

# Column -> where it comes from in the record, for error messages.
_FIELDS: dict[str, dict[str, str]] = {
    CONVERSATIONS.name: dict(zip(_CONVERSATION_COLUMNS, _CONVERSATION_KEYS)),
    PARTICIPANTS.name: dict(zip(_PARTICIPANT_COLUMNS, _PARTICIPANT_KEYS)),
    SESSIONS.name: dict(zip(_SESSION_COLUMNS, _SESSION_KEYS)) | {
        c: f"flow.{k}" for c, k in zip(_FLOW_COLUMNS, _FLOW_KEYS)},
    SEGMENTS.name: dict(zip(_SEGMENT_COLUMNS, _SEGMENT_KEYS)),
    SESSION_METRICS.name: dict(zip(_METRIC_COLUMNS, _METRIC_KEYS)),
    PARTICIPANT_ATTRIBUTES.name: {},
}  # fmt: skip
_TYPES = {table.name: {c.name: c.arrow_type for c in table.columns} for table in TABLES}
_KIND = {pa.string(): "a string", pa.bool_(): "a boolean (true/false)", pa.int64(): "a 64-bit integer"}
_NO_START = "\uffff"  # sorts after every timestamp: a segment without a start is never "first"


@dataclasses.dataclass
class _Constants:
    partition_date: date
    run_id: str
    extracted_at: datetime

    def columns(self, rows: int) -> dict[str, pa.Array]:
        return {
            "partition_date": pa.repeat(pa.scalar(self.partition_date, pa.date32()), rows, memory_pool=POOL),
            "extraction_run_id": pa.repeat(pa.scalar(self.run_id, pa.string()), rows, memory_pool=POOL),
            "extracted_at": pa.repeat(pa.scalar(self.extracted_at, TIMESTAMP), rows, memory_pool=POOL),
        }


class _State:
    """What every chunk of one flatten shares."""

    def __init__(self, lookups: Lookups, constants: _Constants, report: FlattenReport) -> None:
        self.lookups, self.constants, self.report = lookups, constants, report
        self.queue_names = _ArrowLookup(lookups.queues)
        self.code_names = _ArrowLookup(lookups.wrapup_codes)
        self.user_names = _ArrowLookup(lookups.users)


@dataclasses.dataclass
class _Context:
    """Where the records of a chunk came from, to describe errors."""

    source: str
    first_number: int  # record (line) number of the chunk's first record
    conversation_ids: list[Any] = dataclasses.field(default_factory=list)

    def record(self, ordinal: int, conversation_id: Any = None) -> str:
        if conversation_id is None and ordinal < len(self.conversation_ids):
            conversation_id = self.conversation_ids[ordinal]
        where = f"{self.source} line {self.first_number + ordinal}"  # record n is line n of the file
        return where + (f" (conversation {conversation_id})" if conversation_id is not None else "")


def _path(participant: int | None = None, session: int | None = None) -> str:
    if participant is None:
        return ""
    text = f"participants[{participant}]."
    return text if session is None else text + f"sessions[{session}]."


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
class _Collected:
    """A chunk of records as flat Python lists, plus for every child row its parent's row."""

    conversations: int = 0
    conversation_rows: list[Any] = dataclasses.field(default_factory=list)  # _CONVERSATION_KEYS per record
    derived: dict[str, list[Any]] = dataclasses.field(default_factory=dict)  # per record, computed columns
    participant_rows: list[Any] = dataclasses.field(default_factory=list)  # _PARTICIPANT_KEYS per participant
    participant_parent: list[int] = dataclasses.field(default_factory=list)  # record ordinal in the chunk
    participant_index: list[int] = dataclasses.field(default_factory=list)  # index in the record
    session_rows: list[Any] = dataclasses.field(default_factory=list)  # _SESSION_KEYS per session
    flow_rows: list[Any] = dataclasses.field(default_factory=list)  # _FLOW_KEYS per session
    session_parent: list[int] = dataclasses.field(default_factory=list)  # participant row
    session_index: list[int] = dataclasses.field(default_factory=list)  # index in the participant
    segment_rows: list[Any] = dataclasses.field(default_factory=list)  # _SEGMENT_KEYS per segment
    segment_parent: list[int] = dataclasses.field(default_factory=list)  # session row
    segment_index: list[int] = dataclasses.field(default_factory=list)
    metric_rows: list[Any] = dataclasses.field(default_factory=list)  # _METRIC_KEYS per metric
    metric_parent: list[int] = dataclasses.field(default_factory=list)  # session row
    metric_index: list[int] = dataclasses.field(default_factory=list)
    attribute_keys: list[Any] = dataclasses.field(default_factory=list)
    attribute_values: list[Any] = dataclasses.field(default_factory=list)
    attribute_parent: list[int] = dataclasses.field(default_factory=list)  # participant row


def _collect(records: Iterable[Mapping[str, Any]], state: _State, context: _Context) -> _Collected:
    """Walk records into flat lists, each record once, while it is fresh in the CPU cache. The hot
    loop: locals only, one `extend(map(obj.get, KEYS))` per object instead of one call per field."""
    lookups = state.lookups
    # `.decode()` at once: orjson's bytes come from a large malloc'd buffer; kept alive by the
    # thousand they cost ~1.7 us each, a str copy ~0.1 us.
    dumps = orjson.dumps
    queues_get, users_get = lookups.queues.get, lookups.users.get
    codes_get, divisions_get = lookups.wrapup_codes.get, lookups.divisions.get
    divisions_known, unresolved_divisions = lookups.divisions, state.report.unresolved["divisions"]
    out = _Collected()
    derived = out.derived = {name: [] for name in (
        "media_types", "division_ids", "division_names", "first_queue_id", "first_queue_name",
        "agent_ids", "agent_names", "final_wrapup_code_id", "final_wrapup_code_name", "transferred",
        *_SUMMED.values())}  # fmt: skip
    c_rows, p_rows, s_rows, f_rows = (out.conversation_rows.extend, out.participant_rows.extend,
                                      out.session_rows.extend, out.flow_rows.extend)  # fmt: skip
    g_rows, m_rows = out.segment_rows.extend, out.metric_rows.extend
    CK, PK, SK, FK, GK = _CK, _PK, _SK, _FK, _GK  # noqa: N806
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
    d_transferred = derived["transferred"].append
    tracked = _TRACKED
    summed = [(metric, derived[column].append) for metric, column in _SUMMED.items()]
    conversation_ids = context.conversation_ids

    ordinal = -1
    record: Any = None
    pi = si = -1
    prow = srow = 0  # rows of the participants and sessions tables in this chunk
    try:
        for ordinal, record in enumerate(records):  # noqa: B007 (used in the except clause)
            pi = si = -1
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
            agents: list[Any] = []
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
                if is_agent:
                    uid = participant.get("userId")
                    if uid is not None and uid not in agents:
                        agents.append(uid)
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
                        elif is_agent:  # the final wrap-up: the latest agent wrap-up segment
                            for segment in segments:
                                code = segment.get("wrapUpCode")
                                if code is not None or segment.get("segmentType") == "wrapup":
                                    key = _ts_key(segment.get("segmentStart") or "")
                                    if not wrap_seen or key >= wrap_key:
                                        wrap_seen, wrap_key, wrap_code = True, key, code
                    srow += 1
                prow += 1

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
            for metric, append in summed:
                append(sums.get(metric))
            d_transferred(
                len(agents) > 1 or "nTransferred" in sums or "nBlindTransferred" in sums
                or "nConsultTransferred" in sums
            )  # fmt: skip
            d_wrap_id(wrap_code)
            if wrap_code is None or wrap_code.__class__ is not str:
                d_wrap_name(wrap_code)  # not a string: reported with its location when converted
            elif wrap_code.startswith(SYSTEM_WRAPUP_PREFIX):
                d_wrap_name(wrap_code)
            else:
                d_wrap_name(codes_get(wrap_code, wrap_code))
    except (AttributeError, TypeError) as error:  # a value of the wrong JSON type somewhere
        where = _structure_problem(record) or (
            _path(pi if pi >= 0 else None, si if si >= 0 else None).rstrip(".") or "the record"
        )
        raise FlattenError(
            f"{context.record(ordinal)}: {where} (unexpected structure: {error})"
        ) from None
    out.conversations = ordinal + 1
    return out


def _structure_problem(record: Any) -> str | None:
    """The first place where a record's shape is not what the API documents (the slow path)."""
    if not isinstance(record, Mapping):
        return f"the record is a {type(record).__name__}, not an object"
    divisions = record.get("divisionIds")
    if divisions is not None and (
        not isinstance(divisions, list) or not all(isinstance(d, str) for d in divisions)
    ):
        return f"divisionIds is not a list of strings: {divisions!r}"
    participants = record.get("participants")
    if participants is None:
        return None
    if not isinstance(participants, list):
        return f"participants is a {type(participants).__name__}, not a list"
    for pi, participant in enumerate(participants):
        if not isinstance(participant, Mapping):
            return f"participants[{pi}] is a {type(participant).__name__}, not an object"
        for key in ("userId", "purpose"):
            if participant.get(key) is not None and not isinstance(participant[key], str):
                return f"participants[{pi}].{key} is not a string: {participant[key]!r}"
        attributes = participant.get("attributes")
        if attributes is not None and not isinstance(attributes, Mapping):
            return f"participants[{pi}].attributes is a {type(attributes).__name__}, not an object"
        sessions = participant.get("sessions")
        if sessions is None:
            continue
        if not isinstance(sessions, list):
            return f"participants[{pi}].sessions is a {type(sessions).__name__}, not a list"
        for si, session in enumerate(sessions):
            where = f"participants[{pi}].sessions[{si}]"
            if not isinstance(session, Mapping):
                return f"{where} is a {type(session).__name__}, not an object"
            if session.get("flow") is not None and not isinstance(session["flow"], Mapping):
                return f"{where}.flow is a {type(session['flow']).__name__}, not an object"
            for key in ("metrics", "segments"):
                items = session.get(key)
                if items is None:
                    continue
                if not isinstance(items, list):
                    return f"{where}.{key} is a {type(items).__name__}, not a list"
                for index, item in enumerate(items):
                    if not isinstance(item, Mapping):
                        return f"{where}.{key}[{index}] is a {type(item).__name__}, not an object"
                    value = item.get("value")
                    if key == "metrics" and value is not None and value.__class__ is not int:
                        return f"{where}.metrics[{index}].value is not an integer: {value!r}"
                    if key == "segments":
                        for field in ("queueId", "wrapUpCode", "segmentStart"):
                            if item.get(field) is not None and not isinstance(item[field], str):
                                return f"{where}.segments[{index}].{field} is not a string: {item[field]!r}"
    return None


class _Located:
    """Describes row `row` of one table of a chunk: record number, conversation id, path, field."""

    def __init__(self, table: Table, collected: _Collected, context: _Context) -> None:
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
        path = _path(
            collected.participant_index[participant],
            None if session is None else collected.session_index[session],
        )
        return f"{self.context.record(ordinal)}: {path}{field}"


def _array(values: list[Any], arrow_type: pa.DataType, located: _Located, column: str) -> pa.Array:
    try:
        return pa.array(values, arrow_type, memory_pool=POOL)
    except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError, TypeError, ValueError):
        pass
    for row, value in enumerate(values):  # the slow path: find and describe the offending value
        try:
            pa.array([value], arrow_type)
        except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError, TypeError, ValueError):
            kind = _KIND.get(arrow_type, str(arrow_type))
            raise FlattenError(f"{located.describe(row, column)} is not {kind}: {value!r}") from None
    raise FlattenError(f"{located.table.name}.{column}: values could not be converted to {arrow_type}")


def _integers(values: list[Any], located: _Located, column: str) -> pa.Array:
    """Python ints to int64; Arrow would silently truncate a float (1.5 -> 1), so that is refused."""
    if not set(map(type, values)) <= {int, type(None)}:
        for row, value in enumerate(values):
            if value is not None and value.__class__ is not int:
                raise FlattenError(f"{located.describe(row, column)} is not an integer: {value!r}")
    return _array(values, pa.int64(), located, column)


def _timestamps(values: list[Any], located: _Located, column: str) -> pa.Array:
    """ISO-8601 strings with a zone (`2024-05-08T10:00:00.123Z`) to timestamp[ms, UTC], vectorised."""
    strings = _array(values, pa.string(), located, column)
    try:
        return strings.cast(TIMESTAMP, memory_pool=POOL)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        pass
    try:  # finer than milliseconds: parse at ns, then truncate to ms
        return strings.cast(pa.timestamp("ns", tz="UTC"), memory_pool=POOL).cast(TIMESTAMP, safe=False, memory_pool=POOL)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        pass
    for row, value in enumerate(values):
        if value is None:
            continue
        try:
            pa.array([value], pa.string()).cast(pa.timestamp("ns", tz="UTC"))
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            raise FlattenError(
                f"{located.describe(row, column)} is not an ISO-8601 timestamp with a zone: {value!r}"
            ) from None
    raise FlattenError(f"{located.table.name}.{column}: timestamps could not be converted")


def _duration(start: pa.Array, end: pa.Array) -> pa.Array:
    return pc.subtract(
        end.cast(pa.int64(), memory_pool=POOL), start.cast(pa.int64(), memory_pool=POOL), memory_pool=POOL
    )


def _take(values: pa.Array, rows: pa.Array) -> pa.Array:
    return pc.take(values, rows, memory_pool=POOL)


def _int32(values: list[int]) -> pa.Array:
    return pa.array(values, pa.int32(), memory_pool=POOL)


def _columns(
    rows: list[Any], names: tuple[str, ...], table: Table, collected: _Collected, context: _Context
) -> dict[str, pa.Array]:
    """A flat row list (`len(names)` values per row) as one Arrow array per column (strided slices)."""
    located, types, width = _Located(table, collected, context), _TYPES[table.name], len(names)
    arrays = {}
    for offset, name in enumerate(names):
        values = rows[offset::width]
        arrow_type = types[name]
        if arrow_type == TIMESTAMP:
            arrays[name] = _timestamps(values, located, name)
        elif arrow_type == pa.int64():
            arrays[name] = _integers(values, located, name)
        else:
            arrays[name] = _array(values, arrow_type, located, name)
    return arrays


def _build(collected: _Collected, state: _State, context: _Context) -> dict[str, pa.RecordBatch]:
    """A chunk's flat lists as one Arrow record batch per table."""
    c = collected
    report = state.report
    located = {table.name: _Located(table, c, context) for table in TABLES}

    # Metric values first: the conversations' sums add them up, so a value that is not an integer
    # is reported here, where it is.
    met = _columns(c.metric_rows, _METRIC_COLUMNS, SESSION_METRICS, c, context)
    conv = _columns(c.conversation_rows, _CONVERSATION_COLUMNS, CONVERSATIONS, c, context)
    conv["duration_ms"] = _duration(conv["conversation_start"], conv["conversation_end"])
    conv["ongoing"] = pc.is_null(conv["conversation_end"], memory_pool=POOL)
    report.ongoing += conv["ongoing"].true_count

    part = _columns(c.participant_rows, _PARTICIPANT_COLUMNS, PARTICIPANTS, c, context)
    part_parent = _int32(c.participant_parent)
    part["conversation_id"] = _take(conv["conversation_id"], part_parent)
    part["user_name"] = state.user_names(part["user_id"])

    sess = _columns(c.session_rows, _SESSION_COLUMNS, SESSIONS, c, context)
    sess.update(_columns(c.flow_rows, _FLOW_COLUMNS, SESSIONS, c, context))
    sess_parent = _int32(c.session_parent)
    sess["conversation_id"] = _take(part["conversation_id"], sess_parent)
    sess["participant_id"] = _take(part["participant_id"], sess_parent)

    seg = _columns(c.segment_rows, _SEGMENT_COLUMNS, SEGMENTS, c, context)
    seg_parent = _int32(c.segment_parent)
    for name in ("conversation_id", "participant_id", "session_id"):
        seg[name] = _take(sess[name], seg_parent)
    seg["segment_index"] = pa.array(c.segment_index, pa.int64(), memory_pool=POOL)
    seg["duration_ms"] = _duration(seg["segment_start"], seg["segment_end"])
    seg_participant = _take(sess_parent, seg_parent)
    queue_names = state.queue_names(seg["queue_id"])
    # A queue the listing does not know (deleted): the acd participant's name for it, if any.
    missing = pc.and_(pc.is_null(queue_names), pc.is_valid(seg["queue_id"]), memory_pool=POOL)
    if missing.true_count:
        from_acd = pc.and_(missing, pc.equal(_take(part["purpose"], seg_participant), "acd"))
        queue_names = pc.if_else(
            from_acd, _take(part["participant_name"], seg_participant), queue_names, memory_pool=POOL
        )
    seg["queue_name"] = queue_names
    codes = seg["wrapup_code_id"]
    seg["wrapup_code_name"] = pc.if_else(
        pc.starts_with(codes, SYSTEM_WRAPUP_PREFIX, memory_pool=POOL), codes,
        pc.coalesce(state.code_names(codes), codes, memory_pool=POOL), memory_pool=POOL,
    )  # fmt: skip

    met_parent = _int32(c.metric_parent)
    for name in ("conversation_id", "participant_id", "session_id"):
        met[name] = _take(sess[name], met_parent)
    met["metric_index"] = pa.array(c.metric_index, pa.int64(), memory_pool=POOL)

    att = {
        "attribute_key": _array(c.attribute_keys, pa.string(), located[PARTICIPANT_ATTRIBUTES.name], "attribute_key"),
        "attribute_value": _array(c.attribute_values, pa.string(), located[PARTICIPANT_ATTRIBUTES.name], "attribute_value"),
    }  # fmt: skip
    att_parent = _int32(c.attribute_parent)
    att["conversation_id"] = _take(part["conversation_id"], att_parent)
    att["participant_id"] = _take(part["participant_id"], att_parent)

    # Last: the columns derived from the rows above, whose values have been checked there.
    for name, values in c.derived.items():
        conv[name] = _array(values, _TYPES[CONVERSATIONS.name][name], located[CONVERSATIONS.name], name)
    conv["abandoned"] = pc.is_valid(conv["abandon_ms"], memory_pool=POOL)

    tables = {CONVERSATIONS.name: conv, PARTICIPANTS.name: part, SESSIONS.name: sess, SEGMENTS.name: seg,
              SESSION_METRICS.name: met, PARTICIPANT_ATTRIBUTES.name: att}  # fmt: skip
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


def _note(batches: dict[str, pa.RecordBatch], state: _State) -> None:
    """Remember ids the lookups did not resolve, and the span of conversation starts."""
    report, lookups = state.report, state.lookups

    def distinct(table: str, column: str) -> list[str]:
        return [v for v in pc.unique(batches[table].column(column)).to_pylist() if v is not None]

    report.unresolved["queues"].update(q for q in distinct(SEGMENTS.name, "queue_id") if q not in lookups.queues)
    report.unresolved["users"].update(u for u in distinct(PARTICIPANTS.name, "user_id") if u not in lookups.users)
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
