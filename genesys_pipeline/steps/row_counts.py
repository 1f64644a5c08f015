"""The row-count checks' work.

Every stage of every selected table (GENESYS_TABLES, passed in as `tables`) of every day agrees on how many rows there are, exactly (`gather_counts`).
Stages, in pipeline order (each compared with the previous one that has a number):
    raw        records the raw step wrote (RawManifest.records; conversations only)
    flatten    rows the flatten step wrote (FlatManifest)
    S3         rows in the published object, READ BACK from S3: the Parquet footer's num_rows (a ranged
               read of the footer, not the file), or the CSV parsed record by record (fields hold newlines)
    COPY       rows COPY loaded (the latest load-history row of that day and table)
    COUNT      COUNT(*) in Snowflake for that partition_date
A mismatch names the two stages it lies between: "segments 2024-05-08: COPY loaded 1234 rows but
Snowflake has 1230 (lost 4 between COPY and COUNT)".

The API's own count of a day (RawManifest.api_reported: the details query's totalHits, which Genesys
documents as approximate) is no such stage: it can be a few per cent off on a correct day. It is
compared with the records extracted within a tolerance (`compare_api_counts`), in a check of its own.
"""

from __future__ import annotations

import csv
import dataclasses
import gzip
import io
from datetime import date, datetime
from typing import Any, Callable, Optional, Sequence, TypeVar
from urllib.parse import urlsplit

import pyarrow.fs as pafs
import pyarrow.parquet as pq
from dagster_aws.s3 import S3Resource
from dagster_snowflake import SnowflakeResource

from genesys_pipeline.contracts.columns import Table
from genesys_pipeline.contracts.manifests import (
    FlatManifest,
    PublishedManifest,
    RawManifest,
)
from genesys_pipeline.contracts.tables import CONVERSATIONS, TABLES
from genesys_pipeline.resources.warehouse import S3Publishing, SnowflakeTarget
from genesys_pipeline.resources.working_storage import WorkingStorage
from genesys_pipeline.steps.metadata import markdown_table as table_md
from genesys_pipeline.steps.publish import read_published_manifest
from genesys_pipeline.steps.snowflake_session import SnowflakeSession
from genesys_pipeline.steps.snowflake_sql import count_by_day_sql, latest_loads_sql

STAGES = ("raw", "flat", "s3", "copy", "snowflake")
STAGE_NAMES = {"raw": "raw", "flat": "flatten", "s3": "S3", "copy": "COPY", "snowflake": "COUNT"}
STAGE_PHRASES = {
    "raw": "raw has", "flat": "flattened has", "s3": "S3 has", "copy": "COPY loaded", "snowflake": "Snowflake has",
}  # fmt: skip
COLUMN_TITLES = {"raw": "raw", "flat": "flattened", "s3": "S3", "copy": "COPY", "snowflake": "Snowflake"}
M = TypeVar("M")


@dataclasses.dataclass
class Count:
    """One stage's number, or why there is none (a number that should exist and does not: an error)."""

    rows: Optional[int] = None
    missing: str = ""

    def cell(self) -> str:
        return str(self.rows) if self.rows is not None else "**missing**"


@dataclasses.dataclass
class TableCounts:
    partition_key: str
    table: str
    counts: dict[str, Count]  # stage -> Count, only the stages that apply to this table
    problems: list[str] = dataclasses.field(default_factory=list)

    def compare(self) -> None:
        previous: Optional[str] = None
        for stage in STAGES:
            count = self.counts.get(stage)
            if count is None:
                continue
            if count.rows is None:
                self.problems.append(
                    f"{self.table} {self.partition_key}: no {STAGE_NAMES[stage]} count ({count.missing})"
                )
                continue
            if previous is not None:
                before = self.counts[previous].rows
                assert before is not None
                if before != count.rows:
                    change = "lost" if count.rows < before else "gained"
                    self.problems.append(
                        f"{self.table} {self.partition_key}: {STAGE_PHRASES[previous]} {before} rows but "
                        f"{STAGE_PHRASES[stage]} {count.rows} ({change} {abs(before - count.rows)} between "
                        f"{STAGE_NAMES[previous]} and {STAGE_NAMES[stage]})"
                    )
            previous = stage


def gather_counts(
    partition_keys: list[str],
    working_storage: WorkingStorage,
    s3: S3Resource,
    s3_publishing: S3Publishing,
    snowflake: SnowflakeResource,
    snowflake_target: SnowflakeTarget,
    tables: Sequence[Table] = TABLES,
) -> list[TableCounts]:
    """Every stage's count of every table of `tables` of every day, compared (`TableCounts.problems`)."""
    keys = sorted(partition_keys)
    first, last = date.fromisoformat(keys[0]), date.fromisoformat(keys[-1])
    with snowflake.get_connection() as connection:
        session = SnowflakeSession(connection)
        latest = {
            (str(r["table_name"]), _day(r["partition_date"])): r
            for r in session.execute(latest_loads_sql(snowflake_target.load_history_table), (first, last))
        }
        in_snowflake = {
            table.name: {
                _day(r["partition_date"]): int(r["n"])
                for r in session.execute(count_by_day_sql(snowflake_target.table_name(table.name)), (first, last))
            }
            for table in tables
        }

    client = s3.get_client()
    filesystem = arrow_s3_filesystem(s3)
    results = []
    for partition_key in keys:
        raw = _read(lambda: RawManifest.read(working_storage, partition_key))
        flat = _read(lambda: FlatManifest.read(working_storage, partition_key))
        published = _read(lambda: read_published_manifest(client, s3_publishing, partition_key))
        for table in tables:
            counts: dict[str, Count] = {}
            if table is CONVERSATIONS:
                counts["raw"] = Count(missing=raw) if isinstance(raw, str) else Count(raw.records)
            counts["flat"] = _flat_count(flat, table.name)
            counts["s3"] = _s3_count(client, filesystem, s3_publishing, published, table.name)
            load = latest.get((snowflake_target.table_name(table.name), partition_key))
            counts["copy"] = (
                Count(int(load["rows_loaded"])) if load else Count(missing="no load recorded in the load history")
            )
            counts["snowflake"] = Count(in_snowflake[table.name].get(partition_key, 0))
            result = TableCounts(partition_key, table.name, counts)
            result.compare()
            results.append(result)
    return results


def _read(reader: Callable[[], M]) -> M | str:
    """The manifest, or why it cannot be had (a missing manifest is a finding, not a crash)."""
    try:
        return reader()
    except Exception as error:
        return str(error)


def _day(value: Any) -> str:
    return value.isoformat() if isinstance(value, (date, datetime)) else str(value)[:10]


def _flat_count(flat: FlatManifest | str, table: str) -> Count:
    if isinstance(flat, str):
        return Count(missing=flat)
    entry = flat.tables.get(table)
    return Count(entry.rows) if entry else Count(missing="not in the flat manifest")


def _s3_count(
    client: Any, filesystem: pafs.S3FileSystem, publishing: S3Publishing, published: PublishedManifest | str, table: str
) -> Count:
    if isinstance(published, str):
        return Count(missing=published)
    entry = published.tables.get(table)
    if not entry:
        return Count(missing="not in the S3 manifest")
    try:
        if published.format == "csv":
            return Count(count_csv_records(client, publishing.bucket, entry.key))
        return Count(parquet_num_rows(filesystem, publishing.bucket, entry.key))
    except Exception as error:
        return Count(missing=f"{entry.uri} unreadable: {error}")


def arrow_s3_filesystem(s3: S3Resource) -> pafs.S3FileSystem:
    """pyarrow's S3 client with the S3 resource's endpoint, region and explicit keys, if it has them;
    otherwise the AWS default credential chain (environment, shared config, instance or task role)."""
    options: dict[str, Any] = {"region": s3.region_name} if s3.region_name else {}
    if s3.endpoint_url:
        endpoint = urlsplit(s3.endpoint_url)
        options.update(endpoint_override=endpoint.netloc, scheme=endpoint.scheme or "https")
    if s3.aws_access_key_id and s3.aws_secret_access_key:
        options.update(access_key=s3.aws_access_key_id, secret_key=s3.aws_secret_access_key,
                       session_token=s3.aws_session_token)  # fmt: skip
    return pafs.S3FileSystem(**options)


def parquet_num_rows(filesystem: pafs.FileSystem, bucket: str, key: str) -> int:
    """The Parquet footer's row count: pyarrow reads the footer with ranged GETs, not the row groups."""
    with filesystem.open_input_file(f"{bucket}/{key}") as handle:
        return pq.read_metadata(handle).num_rows


def count_csv_records(client: Any, bucket: str, key: str) -> int:
    """Records of a gzip CSV with a header, parsed (a quoted field may hold line breaks)."""
    body = client.get_object(Bucket=bucket, Key=key)["Body"]
    with gzip.GzipFile(fileobj=body) as unzipped:
        text = io.TextIOWrapper(unzipped, encoding="utf-8", newline="")
        records = sum(1 for _ in csv.reader(text, strict=True))
    return max(records - 1, 0)


def markdown_table(results: list[TableCounts]) -> str:
    def verdict(result: TableCounts) -> str:
        return "ok" if not result.problems else "**" + "; ".join(p.split(": ", 1)[1] for p in result.problems) + "**"

    return table_md(
        ("day", "table", *(COLUMN_TITLES[s] for s in STAGES), "result"),
        ((r.partition_key, r.table, *(r.counts[s].cell() if s in r.counts else "" for s in STAGES), verdict(r))
         for r in results),
    )  # fmt: skip


# --- the API's own count ---------------------------------------------------------------------------


@dataclasses.dataclass
class ApiComparison:
    """A day's API count against the records extracted, within `tolerance_percent` of the latter."""

    partition_key: str
    api: Optional[int]  # None: nothing to compare (`note` says why)
    extracted: Optional[int]
    note: str  # which count `api` is, or why there is none
    tolerance_percent: float

    @property
    def compared(self) -> bool:
        return self.api is not None and self.extracted is not None

    @property
    def difference(self) -> int:
        assert self.api is not None and self.extracted is not None
        return self.api - self.extracted

    @property
    def percent(self) -> float:
        """The difference as a share of the records extracted (an API count for an empty day: 100 %)."""
        if self.extracted:
            return 100.0 * abs(self.difference) / self.extracted
        return 100.0 if self.difference else 0.0

    @property
    def over_tolerance(self) -> bool:
        return self.compared and self.percent > self.tolerance_percent

    def sentence(self) -> str:
        if not self.compared:
            return f"{self.partition_key}: not compared ({self.note})"
        verdict = "over" if self.over_tolerance else "within"
        return (
            f"{self.partition_key}: the API counted {self.api} ({self.note}), {self.extracted} extracted: "
            f"{self.difference:+d} ({self.percent:.1f} %, {verdict} the {self.tolerance_percent:g} % tolerance)"
        )


def compare_api_counts(
    partition_keys: list[str], working_storage: WorkingStorage, tolerance_percent: float
) -> list[ApiComparison]:
    """Each day's API count (RawManifest.api_reported) against its records (RawManifest.records)."""
    comparisons = []
    for partition_key in sorted(partition_keys):
        raw = _read(lambda: RawManifest.read(working_storage, partition_key))
        if isinstance(raw, str):
            comparisons.append(ApiComparison(partition_key, None, None, f"no raw manifest: {raw}", tolerance_percent))
            continue
        note = str(raw.extraction.get("api_count_note") or "")
        if raw.api_reported is None:
            note = note or "no independent count recorded by the extraction"
        comparisons.append(ApiComparison(
            partition_key, raw.api_reported, raw.records, note or "source not recorded", tolerance_percent
        ))  # fmt: skip
    return comparisons


def api_markdown_table(comparisons: list[ApiComparison]) -> str:
    def cells(c: ApiComparison) -> tuple[Any, ...]:
        if c.compared:
            verdict = "**over tolerance**" if c.over_tolerance else "ok"
            return (c.api, c.extracted, f"{c.difference:+d}", f"{c.percent:.1f}", verdict)
        return ("n/a", "" if c.extracted is None else c.extracted, "", "", f"not compared: {c.note}")

    return table_md(("day", "API count", "extracted", "difference", "%", "result"),
                    ((c.partition_key, *cells(c)) for c in comparisons))  # fmt: skip
