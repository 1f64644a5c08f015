"""`s3_conversations`: the six flattened tables of each day, published to S3 for Snowflake's stage.

Per partition and table, one object at a deterministic key (S3Publishing):
    <prefix>/<table>/year=YYYY/month=MM/day=DD/<table>-YYYY-MM-DD.parquet   the flatten step's Parquet as is
    <prefix>/<table>/year=YYYY/month=MM/day=DD/<table>-YYYY-MM-DD.csv.gz    or gzip RFC 4180 CSV (file_format="csv")
and one manifest, `<prefix>/_manifests/YYYY-MM-DD.json` (keys, rows, bytes, format, encryption), which
the Snowflake load reads. Objects are encrypted at rest (SSE-S3 by default, or SSE-KMS) and large
ones go up in parts. A rerun replaces the day: every other object under the day's folders is deleted
after the new one is written, so no stale extras are left for a later COPY or reader.

CSV encoding (the Snowflake FILE_FORMAT in warehouse_sql.py matches it): header line, CRLF line ends,
every non-NULL value in double quotes with embedded quotes doubled, NULL = an empty unquoted field,
an empty string = "". Nothing else is escaped or altered (no '=' guarding: the file is for loading,
not for spreadsheets). Timestamps are ISO 8601 with their UTC offset (2024-05-08T10:00:00.123+00:00),
booleans true/false, dates YYYY-MM-DD, list columns their JSON array text.
"""


import contextlib
import json
import os
import tempfile
from datetime import datetime, timezone
from typing import IO, Any

import dagster as dg
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
from dagster_aws.s3 import S3Resource

from genesys_pipeline.contracts.tables import (
    TABLES,
    Table,
    flat_manifest_path,
    flat_table_path,
)
from genesys_pipeline.defs.partitions import (
    CONVERSATIONS_GROUP,
    backfill_policy,
    daily_partitions,
    retry_policy,
)
from genesys_pipeline.resources.warehouse import S3Publishing
from genesys_pipeline.resources.working_storage import WorkingStorage


class PublishError(Exception):
    """The flattened files cannot be published as they are; the message says which and why."""


@dg.asset(
    partitions_def=daily_partitions,
    deps=["flattened_conversations"],
    group_name=CONVERSATIONS_GROUP,
    kinds={"s3"},
    backfill_policy=backfill_policy,
    retry_policy=retry_policy,
    description=__doc__,
)
def s3_conversations(
    context: dg.AssetExecutionContext, working_storage: WorkingStorage, s3: S3Resource, s3_publishing: S3Publishing
) -> dg.MaterializeResult:
    client = s3.get_client()
    manifests = []
    for partition_key in context.partition_keys:
        manifest = publish_partition(client, working_storage, s3_publishing, partition_key, context.run.run_id)
        manifests.append(manifest)
        context.log.info(
            f"{partition_key}: published {sum(t['rows'] for t in manifest['tables'].values())} rows in "
            f"{len(manifest['tables'])} {s3_publishing.file_format} objects; stale objects deleted: "
            f"{manifest['stale_deleted'] or 'none'}"
        )
    return dg.MaterializeResult(metadata=_metadata(manifests, s3_publishing))


def publish_partition(
    client: Any, storage: WorkingStorage, publishing: S3Publishing, partition_key: str, run_id: str
) -> dict[str, Any]:
    """Publish one day's tables and its manifest; returns the manifest.

    Every flattened file is validated before anything is uploaded, and the day's manifest is removed
    first and written last: a day whose publishing fails halfway has no manifest, so the Snowflake load
    refuses it instead of loading a mix of new and old objects.
    """
    flat = storage.read_json(flat_manifest_path(partition_key))
    if flat.get("partition_key", partition_key) != partition_key:
        raise PublishError(f"{flat_manifest_path(partition_key)} describes partition {flat.get('partition_key')!r}")
    with contextlib.ExitStack() as open_files:  # each opened once: an s3:// working location downloads it
        sources: dict[str, tuple[IO[bytes], int]] = {}
        for table in TABLES:
            entry = flat.get("tables", {}).get(table.name)
            if entry is None:
                raise PublishError(f"{partition_key}: the flat manifest lists no {table.name} table")
            path = entry.get("path") or flat_table_path(partition_key, table.name)
            handle = open_files.enter_context(storage.reader(path))
            sources[table.name] = (handle, _validated_rows(handle, table, int(entry["rows"]), partition_key))

        client.delete_object(Bucket=publishing.bucket, Key=publishing.manifest_key(partition_key))
        tables, stale = _upload_tables(client, publishing, partition_key, sources)
    manifest = {
        "partition_key": partition_key,
        "run_id": run_id,
        "flat_run_id": flat.get("run_id"),
        "published_at": datetime.now(timezone.utc).isoformat(),
        "format": publishing.file_format,
        "encryption": publishing.sse,
        "stage_url": publishing.stage_url,
        "tables": tables,
        "stale_deleted": stale,
    }
    client.put_object(
        Bucket=publishing.bucket, Key=publishing.manifest_key(partition_key),
        Body=json.dumps(manifest, indent=2, sort_keys=True).encode("utf-8"),
        ContentType="application/json", **publishing.extra_args(),
    )  # fmt: skip
    return manifest


def _upload_tables(
    client: Any, publishing: S3Publishing, partition_key: str, sources: dict[str, tuple[IO[bytes], int]]
) -> tuple[dict[str, Any], list[str]]:
    """Upload each table (then delete the day folder's other objects); returns manifest entries and deleted keys."""
    tables: dict[str, Any] = {}
    stale: list[str] = []
    for table in TABLES:
        handle, rows = sources[table.name]
        handle.seek(0)
        key = publishing.table_key(table.name, partition_key)
        if publishing.file_format == "csv":
            with tempfile.TemporaryDirectory() as scratch:
                csv_path = os.path.join(scratch, "table.csv.gz")
                if parquet_to_csv_gz(handle, csv_path, table) != rows:
                    raise PublishError(f"{partition_key} {table.name}: the CSV conversion did not write {rows} rows")
                client.upload_file(csv_path, publishing.bucket, key, ExtraArgs=publishing.extra_args(),
                                   Config=publishing.transfer_config())  # fmt: skip
        else:
            client.upload_fileobj(handle, publishing.bucket, key, ExtraArgs=publishing.extra_args(),
                                  Config=publishing.transfer_config())  # fmt: skip
        head = client.head_object(Bucket=publishing.bucket, Key=key)
        tables[table.name] = {
            "key": key,
            "uri": publishing.uri(key),
            "rows": rows,
            "bytes": int(head["ContentLength"]),
            "etag": head.get("ETag", "").strip('"'),
            "encryption": head.get("ServerSideEncryption"),
        }
        stale += delete_stale(client, publishing.bucket, publishing.day_prefix(table.name, partition_key), keep=key)
    return tables, stale


def read_manifest(client: Any, publishing: S3Publishing, partition_key: str) -> dict[str, Any]:
    """The S3 manifest of a published partition (raises if there is none)."""
    key = publishing.manifest_key(partition_key)
    try:
        body = client.get_object(Bucket=publishing.bucket, Key=key)["Body"].read()
    except client.exceptions.NoSuchKey:
        raise PublishError(
            f"{publishing.uri(key)} does not exist: materialize s3_conversations for {partition_key} first"
        ) from None
    return json.loads(body)


def delete_stale(client: Any, bucket: str, day_prefix: str, keep: str) -> list[str]:
    """Delete every object under `day_prefix` except `keep`; returns the deleted keys."""
    stale = []
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=day_prefix):
        stale += [item["Key"] for item in page.get("Contents", []) if item["Key"] != keep]
    for start in range(0, len(stale), 1000):  # DeleteObjects takes at most 1000 keys
        response = client.delete_objects(
            Bucket=bucket, Delete={"Objects": [{"Key": k} for k in stale[start : start + 1000]], "Quiet": True}
        )
        if response.get("Errors"):
            raise PublishError(f"could not delete stale objects under s3://{bucket}/{day_prefix}: {response['Errors']}")
    return stale


def _validated_rows(handle: IO[bytes], table: Table, manifest_rows: int, partition_key: str) -> int:
    """The file's row count, after checking it is the contract's Parquet with the manifest's row count.

    A missing or renamed column would load as NULLs (MATCH_BY_COLUMN_NAME) or shift columns (CSV).
    """
    try:
        metadata = pq.read_metadata(handle)
    except Exception as error:
        raise PublishError(
            f"{partition_key} {table.name}: the flattened file is not readable Parquet: {error}"
        ) from error
    schema = metadata.schema.to_arrow_schema()
    expected = table.arrow_schema
    if schema.names != expected.names:
        raise PublishError(
            f"{partition_key} {table.name}: the flattened file's columns {schema.names} are not "
            f"tables.py's {expected.names}"
        )
    for field in expected:
        if not schema.field(field.name).type.equals(field.type):
            raise PublishError(
                f"{partition_key} {table.name}.{field.name}: the flattened file has {schema.field(field.name).type}, "
                f"tables.py says {field.type}"
            )
    if metadata.num_rows != manifest_rows:
        raise PublishError(
            f"{partition_key} {table.name}: the flat manifest says {manifest_rows} rows, "
            f"the file has {metadata.num_rows}"
        )
    return metadata.num_rows


def parquet_to_csv_gz(source: IO[bytes], path: str, table: Table) -> int:
    """Write the Parquet's rows to `path` as gzip CSV (see the module docstring); returns the rows."""
    write_options = pacsv.WriteOptions(include_header=True, quoting_style="all_valid", eol="\r\n")
    rows = 0
    parquet = pq.ParquetFile(source)
    with pa.CompressedOutputStream(path, "gzip") as sink:
        writer = None
        for batch in parquet.iter_batches(batch_size=64 * 1024):
            batch = _csv_ready(batch, table)
            if writer is None:
                writer = pacsv.CSVWriter(sink, batch.schema, write_options=write_options)
            writer.write_batch(batch)
            rows += batch.num_rows
        if writer is None:  # no rows: still a header
            empty = _csv_ready(pa.RecordBatch.from_pylist([], schema=table.arrow_schema), table)
            writer = pacsv.CSVWriter(sink, empty.schema, write_options=write_options)
        writer.close()
    return rows


def _csv_ready(batch: pa.RecordBatch, table: Table) -> pa.RecordBatch:
    """Timestamps as ISO 8601 with offset, which both Snowflake's AUTO format and the stand-in parse."""
    columns = []
    for field, column in zip(batch.schema, batch.columns):
        if pa.types.is_timestamp(field.type):
            if field.type.tz is None:
                column = pc.assume_timezone(column, "UTC")
            column = pc.strftime(column, format="%Y-%m-%dT%H:%M:%S%Ez")
        columns.append(column)
    return pa.RecordBatch.from_arrays(columns, names=table.column_names)


def _metadata(manifests: list[dict[str, Any]], publishing: S3Publishing) -> dict[str, Any]:
    rows_by_table: dict[str, int] = {}
    lines = []
    for manifest in manifests:
        for name, entry in manifest["tables"].items():
            rows_by_table[name] = rows_by_table.get(name, 0) + entry["rows"]
            day = manifest["partition_key"]
            lines.append(f"| {day} | {name} | {entry['rows']} | {entry['bytes']} | {entry['uri']} |")
    first = daily_partitions.time_window_for_partition_key(manifests[0]["partition_key"])
    last = daily_partitions.time_window_for_partition_key(manifests[-1]["partition_key"])
    metadata: dict[str, Any] = {
        "dagster/uri": dg.MetadataValue.text(publishing.stage_url),
        "format": dg.MetadataValue.text(publishing.file_format),
        "encryption": dg.MetadataValue.text(publishing.sse + (" (KMS key set)" if publishing.kms_key_id else "")),
        "bytes_published": dg.MetadataValue.int(sum(e["bytes"] for m in manifests for e in m["tables"].values())),
        "dagster/partition_row_count": dg.MetadataValue.int(rows_by_table.get("conversations", 0)),
        "stale_objects_deleted": dg.MetadataValue.int(sum(len(m["stale_deleted"]) for m in manifests)),
        "window_start": dg.MetadataValue.text(first.start.isoformat()),
        "window_end": dg.MetadataValue.text(last.end.isoformat()),
        "manifests": dg.MetadataValue.json(
            [publishing.uri(publishing.manifest_key(m["partition_key"])) for m in manifests]
        ),
        "objects": dg.MetadataValue.md(
            "| day | table | rows | bytes | object |\n|---|---|---|---|---|\n" + "\n".join(lines)
        ),
    }
    for name, rows in rows_by_table.items():
        metadata[f"rows_{name}"] = dg.MetadataValue.int(rows)
    return metadata
