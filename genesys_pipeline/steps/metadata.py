"""What each asset's materialization shows in the Dagster UI: counts a person can act on, and one
markdown table per run with a row per day (or per table and day)."""

from __future__ import annotations

from collections import Counter
from datetime import datetime
from typing import Any, Iterable, Optional, Sequence

import dagster as dg

from genesys_pipeline.contracts.columns import Table
from genesys_pipeline.contracts.dimension_tables import Dimension
from genesys_pipeline.contracts.manifests import FlatManifest, PublishedManifest
from genesys_pipeline.contracts.tables import CONVERSATIONS, TABLES
from genesys_pipeline.genesys.org_limits import OrgLimits
from genesys_pipeline.resources.warehouse import S3Publishing
from genesys_pipeline.steps.dimensions import DimensionLoad
from genesys_pipeline.steps.flatten import FlattenReport, Lookups
from genesys_pipeline.steps.load import TableLoad
from genesys_pipeline.steps.raw_records import ExtractionReport

EXAMPLES = 5  # unresolved ids listed per kind


def markdown_table(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def _window(start: datetime, end: datetime) -> dict[str, dg.MetadataValue]:
    return {"window_start": dg.MetadataValue.text(start.isoformat()),
            "window_end": dg.MetadataValue.text(end.isoformat())}  # fmt: skip


def _or_na(value: Optional[int]) -> str:
    return f"{value:,}" if value is not None else "n/a"


def _limits(limits: OrgLimits) -> dg.MetadataValue:
    if limits.unavailable is None:
        return dg.MetadataValue.json(limits.values)
    return dg.MetadataValue.text(f"not readable ({limits.unavailable})")


def raw_metadata(
    days: Sequence[str], reports: list[ExtractionReport], stats: dict, location: str, seconds: float,
    bytes_written: int, limits: Optional[OrgLimits] = None, lookups: Optional[Lookups] = None,
) -> dict[str, dg.MetadataValue]:
    """`days[i]` is the partition key that `reports[i]` extracted: the row label, since a report's window
    is in UTC and starts the day before for partition time zones east of UTC. `limits`: the org's
    analytics limits as read at the start of the run; `lookups`: the names saved with each day."""
    written = sum(r.records_written for r in reports)
    watermark = reports[-1].data_availability_date
    return {
        "records_written": dg.MetadataValue.int(written),
        "dagster/row_count": dg.MetadataValue.int(written),
        "api_reported": dg.MetadataValue.int(sum(r.api_reported or 0 for r in reports)),
        "duplicates_dropped": dg.MetadataValue.int(sum(r.duplicates_dropped for r in reports)),
        "ongoing_conversations": dg.MetadataValue.int(sum(r.ongoing for r in reports)),
        "extraction_path": dg.MetadataValue.text(", ".join(sorted({r.path for r in reports}))),
        **_window(reports[0].window_start, reports[-1].window_end),
        "data_availability_date": dg.MetadataValue.text(watermark.isoformat() if watermark else "unknown"),
        "requests": dg.MetadataValue.int(stats.get("requests", 0)),
        "rate_limited_429s": dg.MetadataValue.int(stats.get("rate_limited", 0)),
        "retries": dg.MetadataValue.int(stats.get("retries", 0)),
        "job_slot_waits": dg.MetadataValue.int(stats.get("job_slot_waits", 0)),
        "job_slot_wait_seconds": dg.MetadataValue.float(round(stats.get("job_slot_wait_seconds", 0.0), 2)),
        **({"analytics_limits": _limits(limits)} if limits else {}),
        # The most detail jobs the run had at once (its days and pieces share the client's job slots).
        "detail_jobs_at_once": dg.MetadataValue.int(stats.get("detail_jobs_at_once", 0)),
        **({"lookup_sizes": dg.MetadataValue.json(lookups.sizes())} if lookups else {}),
        "wall_seconds": dg.MetadataValue.float(round(seconds, 2)),
        "bytes_written": dg.MetadataValue.int(bytes_written),
        "location": dg.MetadataValue.path(location),
        "partitions": dg.MetadataValue.md(markdown_table(
            ("day", "path", "records", "API reported", "ongoing", "duplicates", "jobs", "queries"),
            ((day, r.path, r.records_written, r.api_reported if r.api_reported is not None else "n/a", r.ongoing,
              r.duplicates_dropped, r.jobs, r.queries) for day, r in zip(days, reports, strict=True)),
        )),
    }  # fmt: skip


def flat_metadata(
    manifests: list[FlatManifest], total: FlattenReport, lookups: Lookups, window: tuple[datetime, datetime],
    location: str, manifest_uris: list[str], seconds: float,
) -> dict[str, dg.MetadataValue]:  # fmt: skip
    names = [table.name for table in TABLES if all(table.name in m.tables for m in manifests)]  # GENESYS_TABLES
    per_day = markdown_table(
        ("day", *names, "raw records", "API reported", "ongoing"),
        ((m.partition_key, *(f"{m.tables[n].rows:,}" for n in names), f"{m.raw_records:,}", _or_na(m.api_reported),
          f"{m.ongoing:,}") for m in manifests),
    )  # fmt: skip
    unresolved = markdown_table(
        ("kind", "lookup size", "unresolved ids", "examples"),
        ((kind, lookups.sizes()[kind], len(ids), ", ".join(f"`{i}`" for i in sorted(ids)[:EXAMPLES])
          + (" ..." if len(ids) > EXAMPLES else "")) for kind, ids in total.unresolved.items()),
    )  # fmt: skip
    conversations = total.rows[CONVERSATIONS.name]
    return {
        "dagster/row_count": dg.MetadataValue.int(conversations),
        "rows": dg.MetadataValue.md(per_day),
        "total_rows": dg.MetadataValue.int(sum(total.rows.values())),
        **{f"rows_{name}": dg.MetadataValue.int(total.rows[name]) for name in names},
        "ongoing_conversations": dg.MetadataValue.int(total.ongoing),
        "unresolved_ids": dg.MetadataValue.md(unresolved),
        **{f"unresolved_{kind}": dg.MetadataValue.int(len(ids)) for kind, ids in total.unresolved.items()},
        "system_wrapup_codes": dg.MetadataValue.text(", ".join(sorted(total.system_wrapup_codes)) or "none"),
        "lookup_sizes": dg.MetadataValue.json(lookups.sizes()),
        **_window(*window),
        "first_conversation_start": dg.MetadataValue.text(total.first_start.isoformat() if total.first_start else "none"),
        "last_conversation_start": dg.MetadataValue.text(total.last_start.isoformat() if total.last_start else "none"),
        "bytes_written": dg.MetadataValue.int(sum(t.bytes for m in manifests for t in m.tables.values())),
        "wall_seconds": dg.MetadataValue.float(round(seconds, 2)),
        "conversations_per_second": dg.MetadataValue.float(round(conversations / seconds, 1) if seconds else 0.0),
        "location": dg.MetadataValue.path(location),
        "manifests": dg.MetadataValue.json(manifest_uris),
    }


def publish_metadata(
    manifests: list[PublishedManifest], publishing: S3Publishing, window: tuple[datetime, datetime]
) -> dict[str, dg.MetadataValue]:
    rows_by_table: Counter[str] = Counter()
    for manifest in manifests:
        rows_by_table.update({name: entry.rows for name, entry in manifest.tables.items()})
    objects = markdown_table(
        ("day", "table", "rows", "bytes", "object"),
        ((m.partition_key, name, e.rows, e.bytes, e.uri) for m in manifests for name, e in m.tables.items()),
    )
    return {
        "dagster/uri": dg.MetadataValue.text(publishing.stage_url),
        "format": dg.MetadataValue.text(publishing.file_format),
        "encryption": dg.MetadataValue.text(publishing.sse + (" (KMS key set)" if publishing.kms_key_id else "")),
        "bytes_published": dg.MetadataValue.int(sum(e.bytes for m in manifests for e in m.tables.values())),
        "dagster/partition_row_count": dg.MetadataValue.int(rows_by_table.get(CONVERSATIONS.name, 0)),
        "stale_objects_deleted": dg.MetadataValue.int(sum(len(m.stale_deleted) for m in manifests)),
        **_window(*window),
        "manifests": dg.MetadataValue.json([publishing.uri(publishing.manifest_key(m.partition_key)) for m in manifests]),
        "objects": dg.MetadataValue.md(objects),
        **{f"rows_{name}": dg.MetadataValue.int(rows) for name, rows in rows_by_table.items()},
    }


def load_metadata(
    loads: list[TableLoad], partition_keys: Sequence[str], window: tuple[datetime, datetime],
    stage: str, stage_url: str, load_history_table: str,
) -> dict[str, dg.MetadataValue]:  # fmt: skip
    rows_by_table: Counter[str] = Counter()
    for load in loads:
        rows_by_table[load.target] += load.rows_loaded
    conversations = next(name for name in rows_by_table if name.endswith("CONVERSATIONS"))
    return {
        "dagster/table_name": dg.MetadataValue.text(conversations),
        "dagster/partition_row_count": dg.MetadataValue.int(rows_by_table[conversations]),
        "tables": dg.MetadataValue.json(sorted(rows_by_table)),
        "rows_loaded": dg.MetadataValue.int(sum(rows_by_table.values())),
        "files": dg.MetadataValue.json([load.file_uri for load in loads]),
        "stage": dg.MetadataValue.text(stage),
        "stage_url": dg.MetadataValue.text(stage_url),
        "load_history_table": dg.MetadataValue.text(load_history_table),
        "partitions": dg.MetadataValue.json(list(partition_keys)),
        **_window(*window),
        "loads": dg.MetadataValue.md(markdown_table(
            ("day", "table", "rows loaded", "rows replaced", "file"),
            ((x.partition_key, x.target, x.rows_loaded, x.rows_deleted, x.file_uri) for x in loads),
        )),
        **{f"rows_loaded_{name.rsplit('.', 1)[-1].lower()}": dg.MetadataValue.int(rows)
           for name, rows in rows_by_table.items()},
    }  # fmt: skip


def table_schema(table: Table, unique: Optional[str] = None) -> dg.TableSchema:
    """A contract table as the UI's column schema: Snowflake names and types, the contract's descriptions
    (the data dictionary's), nullability, and the key; `unique` marks a one-column key."""
    key = ", ".join(column.upper() for column in table.key)
    return dg.TableSchema(
        columns=[
            dg.TableColumn(
                column.name.upper(), column.snowflake_type, description=column.description or None,
                constraints=dg.TableColumnConstraints(nullable=column.nullable, unique=column.name == unique),
            )
            for column in table.columns
        ],
        constraints=dg.TableConstraints(other=[f"one row per {key}"]),
    )  # fmt: skip


def tables_definition_metadata(tables: Sequence[Table], in_snowflake: bool) -> dict[str, Any]:
    """What the UI shows of an asset that holds several tables, before it is ever materialized: the first
    table's column schema as the asset's own (`dagster/column_schema`), and every table's under its name."""
    def name(table: Table) -> str:
        return table.name.upper() if in_snowflake else table.name

    metadata: dict[str, Any] = {"dagster/column_schema": table_schema(tables[0])}
    if in_snowflake:
        metadata["dagster/table_name"] = dg.MetadataValue.text(name(tables[0]))
    metadata.update({f"columns of {name(table)}": dg.MetadataValue.table_schema(table_schema(table)) for table in tables})
    return metadata


def dimension_metadata(
    dimension: Dimension, load: DimensionLoad, states: Optional[Counter], seconds: float
) -> dict[str, Any]:
    schema = table_schema(dimension.table, unique=dimension.id_column)
    metadata: dict[str, Any] = {
        "dagster/table_name": dg.MetadataValue.text(load.table),
        "dagster/row_count": dg.MetadataValue.int(load.rows),
        "dagster/column_schema": schema,
        "rows": dg.MetadataValue.int(load.rows),
        "rows_replaced": dg.MetadataValue.int(load.rows_replaced),
        "duplicates_dropped": dg.MetadataValue.int(load.duplicates_dropped),
        "loaded_at": dg.MetadataValue.text(load.loaded_at.isoformat()),
        "wall_seconds": dg.MetadataValue.float(round(seconds, 2)),
    }
    if states is not None:
        metadata["rows_by_state"] = dg.MetadataValue.json(dict(sorted(states.items())))
    return metadata
