"""Flattened partitions made directly from tables.py's schemas, for testing the S3 and Snowflake steps
without the Genesys and flatten steps: Parquet files, the flat manifest and the raw manifest, laid out
in a working location exactly as those steps leave them.

Text columns cycle through HOSTILE (quotes, commas, LF and CRLF, emoji, CJK, a leading '=', the text
\\N and NULL, the empty string, NULL); list columns hold JSON arrays of them.
"""

from __future__ import annotations

import itertools
import json
from datetime import date, datetime, timedelta, timezone
from typing import Any, Optional

import pyarrow as pa
import pyarrow.parquet as pq

from genesys_pipeline.contracts.manifests import FlatManifest, FlatTable, RawManifest
from genesys_pipeline.contracts.paths import flat_table_path
from genesys_pipeline.contracts.tables import TABLES, Table
from genesys_pipeline.resources.working_storage import WorkingStorage

HOSTILE: list[Optional[str]] = [
    'He said "hi", then left',
    "commas, inside, a field",
    "line 1\nline 2",
    "windows\r\nline end",
    'both: "a,b"\r\nand "c"',
    "emoji 😀🎧 and a ZWJ 👩‍💻",
    "山田 太郎",
    "=SUM(A1:A9)",
    "=HYPERLINK(\"http://x\")",
    "  padded  ",
    "\\N",
    "NULL",
    "O'Brien; DROP TABLE x; --",
    "tab\tand back\\slash",
    "",
    None,
]


def _text(i: int, column: Table, name: str, nullable: bool) -> Optional[str]:
    value = HOSTILE[(i + len(name)) % len(HOSTILE)]
    if value is None and not nullable:
        return f"{name}-{i}"
    return value


def _json_list(i: int) -> Optional[str]:
    if i % 7 == 3:
        return None
    if i % 7 == 5:
        return "[]"
    items = [v for v in itertools.islice(itertools.cycle(HOSTILE), i % len(HOSTILE), i % len(HOSTILE) + 3)]
    return json.dumps(items, ensure_ascii=False)


def _value(table: Table, column: Any, i: int, day: date, run_id: str) -> Any:
    kind = column.snowflake_type
    if column.name == "partition_date":
        return day
    if column.name == "extraction_run_id":
        return run_id
    if kind == "VARIANT" and not column.nullable:  # the raw record: a JSON object
        return json.dumps({"conversationId": f"conv-{i:05d}", "note": HOSTILE[i % len(HOSTILE)]}, ensure_ascii=False)
    if kind == "VARIANT":
        return _json_list(i)
    if column.nullable and i % 5 == 4 and kind != "VARCHAR":
        return None
    if kind == "VARCHAR":
        return _text(i, table, column.name, column.nullable)
    if kind.startswith("NUMBER"):
        return (2**62 + i) if i % 3 == 0 else i * 1000
    if kind == "BOOLEAN":
        return i % 2 == 0
    if kind == "FLOAT":
        return 4.5 - (i % 7) * 0.125
    if kind == "TIMESTAMP_TZ":
        start = datetime(day.year, day.month, day.day, tzinfo=timezone.utc)
        return start + timedelta(minutes=i, milliseconds=(i * 37) % 1000)
    raise AssertionError(f"no fixture value for {kind}")


def _key_rows(table: Table, conversations: int) -> list[dict[str, Any]]:
    """Key columns of every row: 2 participants, 1 session each, 2 segments and 3 metrics per session,
    1 attribute per participant; 1 evaluation, survey and resolution per conversation; a flow with 1
    outcome and 2 media endpoint stats per session."""
    keys = []
    for c in range(conversations):
        conversation = {"conversation_id": f"conv-{c:05d}"}
        if table.name in ("conversations", "conversations_raw"):
            keys.append(conversation)
            continue
        if table.name in ("evaluations", "surveys", "resolutions"):
            key = {"evaluations": "evaluation_id", "surveys": "survey_id", "resolutions": "resolution_index"}[table.name]
            keys.append({**conversation, key: 0 if key.endswith("_index") else f"{table.name}-{c:05d}"})
            continue
        for p in range(2):
            participant = {**conversation, "participant_id": f"part-{c:05d}-{p}"}
            if table.name == "participants":
                keys.append(participant)
            elif table.name == "participant_attributes":
                keys.append({**participant, "attribute_key": f"attr,{p}\n\"k\""})
            else:
                session = {**participant, "session_id": f"sess-{c:05d}-{p}"}
                if table.name in ("sessions", "flows"):
                    keys.append(session)
                elif table.name == "flow_outcomes":
                    keys.append({**session, "outcome_index": 0})
                elif table.name == "media_endpoint_stats":
                    keys += [{**session, "stat_index": s} for s in range(2)]
                elif table.name == "segments":
                    keys += [{**session, "segment_index": s} for s in range(2)]
                elif table.name == "session_metrics":
                    keys += [{**session, "metric_index": m, "name": ["tTalk", "tHeld", "nTransferred"][m]} for m in range(3)]
    return keys


def make_table(table: Table, partition_key: str, conversations: int, run_id: str = "run-1", rows: Optional[int] = None) -> pa.Table:
    """The table's rows for a partition; `rows` cuts it (0: an empty table)."""
    day = date.fromisoformat(partition_key)
    keys = _key_rows(table, conversations)[:rows]
    records = []
    for i, key in enumerate(keys):
        record = {c.name: _value(table, c, i, day, run_id) for c in table.columns}
        record.update(key)
        records.append(record)
    return pa.Table.from_pylist(records, schema=table.arrow_schema)


def write_partition(
    storage: WorkingStorage,
    partition_key: str,
    conversations: int = 12,
    run_id: str = "run-1",
    api_reported: Optional[int] | str = "same",
    empty_tables: tuple[str, ...] = ("participant_attributes",),
    row_group_size: Optional[int] = None,
) -> dict[str, pa.Table]:
    """Write a partition's flat Parquet files, flat manifest and raw manifest; returns the tables.
    `api_reported` is the API's own count in the raw manifest ("same": the conversations written; None:
    no independent count, with the reason the extraction records)."""
    tables = {}
    manifest_tables = {}
    for table in TABLES:
        data = make_table(table, partition_key, conversations, run_id, rows=0 if table.name in empty_tables else None)
        path = flat_table_path(partition_key, table.name)
        with storage.writer(path) as handle:
            pq.write_table(data, handle, row_group_size=row_group_size)
        tables[table.name] = data
        manifest_tables[table.name] = FlatTable(path, data.num_rows, storage.size(path))
    reported = conversations if api_reported == "same" else api_reported
    now = datetime.now(timezone.utc)
    FlatManifest(
        partition_key=partition_key, run_id=run_id, extraction_run_id=run_id, raw_records=conversations,
        api_reported=reported, ongoing=0, unresolved_ids={}, lookup_sizes={}, flattened_at=now,
        tables=manifest_tables,
    ).write(storage)  # fmt: skip
    RawManifest(
        partition_key=partition_key, run_id=run_id, extracted_at=now, files=(), records=conversations,
        bytes=0, extraction={"api_reported": reported, "api_count_note": (
            f"details-query totalHits for UTC {partition_key}, approximate" if reported is not None
            else "no independent count: the window is not whole UTC days")},
    ).write(storage)  # fmt: skip
    return tables
