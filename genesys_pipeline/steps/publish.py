"""Publish a day's flattened tables to S3, where the Snowflake stage reads them.

The tables published are the selected ones (GENESYS_TABLES, passed in as `tables`); a table left out is
not published, and its objects of earlier days, if any, are left as they are.
Per partition and table, one object at a deterministic key (contracts/paths.py), the flatten step's
Parquet as it is or gzip RFC 4180 CSV (S3Publishing.file_format), and one PublishedManifest that the
load reads. Objects are encrypted at rest (SSE-S3 by default, or SSE-KMS) and large ones go up in parts.
A rerun replaces the day: every other object under the day's folders is deleted after the new one is
written, so no stale extras are left for a later COPY or reader.

CSV encoding (steps/snowflake_sql.py's CSV_FILE_FORMAT matches it): header line, CRLF line ends, every
non-NULL value in double quotes with embedded quotes doubled, NULL = an empty unquoted field, an empty
string = "". Nothing else is escaped or altered (no '=' guarding: the file is for loading, not for
spreadsheets). Timestamps are ISO 8601 with their UTC offset (2024-05-08T10:00:00.123+00:00), booleans
true/false, dates YYYY-MM-DD, list columns their JSON array text.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from datetime import datetime, timezone
from typing import IO, Any, Sequence

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from genesys_pipeline.contracts.columns import Table
from genesys_pipeline.contracts.manifests import (
    FlatManifest,
    PublishedManifest,
    PublishedObject,
)
from genesys_pipeline.contracts.tables import TABLES
from genesys_pipeline.resources.warehouse import S3Publishing
from genesys_pipeline.resources.working_storage import WorkingStorage


class PublishError(Exception):
    """The flattened files cannot be published as they are; the message says which and why."""


def publish_partition(
    client: Any, storage: WorkingStorage, publishing: S3Publishing, partition_key: str, run_id: str,
    tables: Sequence[Table] = TABLES,
) -> PublishedManifest:
    """Publish one day's tables and its manifest; returns the manifest.

    Every flattened file is validated before anything is uploaded, and the day's manifest is removed
    first and written last: a day whose publishing fails halfway has no manifest, so the Snowflake load
    refuses it instead of loading a mix of new and old objects.
    """
    flat = FlatManifest.read(storage, partition_key)
    with contextlib.ExitStack() as open_files:  # each opened once: an s3:// working location downloads it
        sources: dict[str, tuple[IO[bytes], int]] = {}
        for table in tables:
            entry = flat.tables.get(table.name)
            if entry is None:
                raise PublishError(
                    f"{partition_key}: the flat manifest lists no {table.name} table (flattened before the table "
                    "was selected in GENESYS_TABLES?): materialize flattened_conversations for the day again"
                )
            handle = open_files.enter_context(storage.reader(entry.path))
            sources[table.name] = (handle, _validated_rows(handle, table, entry.rows, partition_key))

        client.delete_object(Bucket=publishing.bucket, Key=publishing.manifest_key(partition_key))
        objects, stale = _upload_tables(client, publishing, partition_key, tables, sources)
    manifest = PublishedManifest(
        partition_key=partition_key,
        run_id=run_id,
        flat_run_id=flat.run_id,
        published_at=datetime.now(timezone.utc),
        format=publishing.file_format,
        encryption=publishing.sse,
        stage_url=publishing.stage_url,
        tables=objects,
        stale_deleted=tuple(stale),
    )
    client.put_object(
        Bucket=publishing.bucket, Key=publishing.manifest_key(partition_key),
        Body=json.dumps(manifest.to_json(), indent=2, sort_keys=True).encode("utf-8"),
        ContentType="application/json", **publishing.extra_args(),
    )  # fmt: skip
    return manifest


def read_published_manifest(client: Any, publishing: S3Publishing, partition_key: str) -> PublishedManifest:
    """The S3 manifest of a published partition (raises if there is none)."""
    key = publishing.manifest_key(partition_key)
    try:
        body = client.get_object(Bucket=publishing.bucket, Key=key)["Body"].read()
    except client.exceptions.NoSuchKey:
        raise PublishError(
            f"{publishing.uri(key)} does not exist: materialize s3_conversations for {partition_key} first"
        ) from None
    manifest = PublishedManifest.from_json(json.loads(body), publishing.uri(key))
    manifest.check_day(partition_key, publishing.uri(key))
    return manifest


def _upload_tables(
    client: Any, publishing: S3Publishing, partition_key: str, tables: Sequence[Table],
    sources: dict[str, tuple[IO[bytes], int]],
) -> tuple[dict[str, PublishedObject], list[str]]:
    """Upload each table (then delete the day folder's other objects); returns the objects and deleted keys."""
    objects: dict[str, PublishedObject] = {}
    stale: list[str] = []
    for table in tables:
        handle, rows = sources[table.name]
        handle.seek(0)
        key = publishing.table_key(table.name, partition_key)
        upload = {"ExtraArgs": publishing.extra_args(), "Config": publishing.transfer_config()}
        if publishing.file_format == "csv":
            with tempfile.TemporaryDirectory() as scratch:
                csv_path = os.path.join(scratch, "table.csv.gz")
                if parquet_to_csv_gz(handle, csv_path, table) != rows:
                    raise PublishError(f"{partition_key} {table.name}: the CSV conversion did not write {rows} rows")
                client.upload_file(csv_path, publishing.bucket, key, **upload)
        else:
            client.upload_fileobj(handle, publishing.bucket, key, **upload)
        head = client.head_object(Bucket=publishing.bucket, Key=key)
        objects[table.name] = PublishedObject(
            key=key, uri=publishing.uri(key), rows=rows, bytes=int(head["ContentLength"]),
            etag=head.get("ETag", "").strip('"'), encryption=head.get("ServerSideEncryption"),
        )  # fmt: skip
        stale += delete_stale(client, publishing.bucket, publishing.day_prefix(table.name, partition_key), keep=key)
    return objects, stale


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
