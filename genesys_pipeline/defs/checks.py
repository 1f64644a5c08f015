"""The row-count check: every stage of every table of every day agrees on how many rows there are.

Stages, in pipeline order (each compared with the previous one that has a number):
    API        the API's own count (raw manifest `extraction.api_reported`; conversations only; null when
               the partition is not one whole UTC day: that comparison is skipped, and said so)
    raw        records the raw step wrote (raw manifest `records`; conversations only)
    flatten    rows the flatten step wrote (flat manifest)
    S3         rows in the published object, READ BACK from S3: the Parquet footer's num_rows (two
               range requests, not the file), or the CSV parsed record by record (fields hold newlines)
    COPY       rows COPY loaded (the latest load-history row of that day and table)
    COUNT      COUNT(*) in Snowflake for that partition_date
A mismatch names the two stages it lies between: "segments 2024-05-08: COPY loaded 1234 rows but
Snowflake has 1230 (lost 4 between COPY and COUNT)". The whole comparison is a markdown table in the
check's metadata.

Blocking, partitioned like the asset (Dagster calls that preview in 1.13): a single-day run records
the result against that day. A ranged run (one run for several days) evaluates every day of the
range at once; Dagster then records it against the asset, not per day.
"""


import csv
import dataclasses
import gzip
import io
import warnings
from typing import Any, Optional

import dagster as dg
import pyarrow.parquet as pq
from dagster_aws.s3 import S3Resource
from dagster_snowflake import SnowflakeResource

from genesys_pipeline.contracts.tables import CONVERSATIONS, TABLES, flat_manifest_path
from genesys_pipeline.defs.partitions import daily_partitions
from genesys_pipeline.defs.raw_conversations import raw_manifest_path
from genesys_pipeline.defs.s3_conversations import read_manifest
from genesys_pipeline.resources.warehouse import S3Publishing, SnowflakeTarget
from genesys_pipeline.resources.working_storage import WorkingStorage
from genesys_pipeline.steps.load import WarehouseLoader

ROW_COUNT_CHECK = "row_counts_match_across_stages"

STAGES = ("api", "raw", "flat", "s3", "copy", "snowflake")
STAGE_NAMES = {"api": "API", "raw": "raw", "flat": "flatten", "s3": "S3", "copy": "COPY", "snowflake": "COUNT"}
STAGE_PHRASES = {
    "api": "the API reported", "raw": "raw has", "flat": "flattened has",
    "s3": "S3 has", "copy": "COPY loaded", "snowflake": "Snowflake has",
}  # fmt: skip
COLUMN_TITLES = {"api": "API", "raw": "raw", "flat": "flattened", "s3": "S3", "copy": "COPY", "snowflake": "Snowflake"}


@dataclasses.dataclass
class Count:
    """One stage's number, or why there is none."""

    rows: Optional[int] = None
    skipped: str = ""  # a comparison that cannot be made (not an error)
    missing: str = ""  # a number that should exist and does not (an error)

    def cell(self) -> str:
        if self.rows is not None:
            return str(self.rows)
        return "n/a" if self.skipped else "**missing**"


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
            if count is None or count.skipped:
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


with warnings.catch_warnings():
    warnings.simplefilter("ignore", dg.PreviewWarning)  # partitions_def on checks: chosen deliberately, see above

    @dg.asset_check(
        asset="snowflake_conversations",
        name=ROW_COUNT_CHECK,
        blocking=True,
        partitions_def=daily_partitions,
        description=__doc__,
    )
    def row_counts_match_across_stages(
        context: dg.AssetCheckExecutionContext,
        working_storage: WorkingStorage,
        s3: S3Resource,
        s3_publishing: S3Publishing,
        snowflake: SnowflakeResource,
        snowflake_target: SnowflakeTarget,
    ) -> dg.AssetCheckResult:
        # partition_key raises in a ranged run; partition_keys is one day or the whole range.
        partition_keys = context.op_execution_context.partition_keys
        return check_row_counts(partition_keys, working_storage, s3, s3_publishing, snowflake, snowflake_target)


asset_checks = [row_counts_match_across_stages]


def check_row_counts(
    partition_keys: list[str],
    working_storage: WorkingStorage,
    s3: S3Resource,
    s3_publishing: S3Publishing,
    snowflake: SnowflakeResource,
    snowflake_target: SnowflakeTarget,
) -> dg.AssetCheckResult:
    """The check's logic, callable without Dagster's check context (tests, ad-hoc audits)."""
    results = gather_counts(partition_keys, working_storage, s3, s3_publishing, snowflake, snowflake_target)
    problems = [problem for result in results for problem in result.problems]
    skipped = sorted(
        {f"{r.partition_key} ({r.counts['api'].skipped})" for r in results if r.counts.get("api", Count()).skipped}
    )
    days = f"{partition_keys[0]}" if len(partition_keys) == 1 else f"{partition_keys[0]}..{partition_keys[-1]}"
    if problems:
        description = f"{len(problems)} row-count mismatch(es) in {days}: " + "; ".join(problems)
    else:
        description = f"All {len(TABLES)} tables agree at every stage for {days}."
    if skipped:
        description += " API count comparison skipped for " + ", ".join(skipped) + "."
    return dg.AssetCheckResult(
        passed=not problems,
        description=description,
        metadata={
            "comparison": dg.MetadataValue.md(markdown_table(results)),
            "mismatches": dg.MetadataValue.int(len(problems)),
            "problems": dg.MetadataValue.json(problems),
            "partitions": dg.MetadataValue.json(list(partition_keys)),
            "api_comparison_skipped": dg.MetadataValue.json(skipped),
            "conversations_in_snowflake": dg.MetadataValue.int(
                sum(r.counts["snowflake"].rows or 0 for r in results if r.table == CONVERSATIONS.name)
            ),
        },
    )


def gather_counts(
    partition_keys: list[str],
    working_storage: WorkingStorage,
    s3: S3Resource,
    s3_publishing: S3Publishing,
    snowflake: SnowflakeResource,
    snowflake_target: SnowflakeTarget,
) -> list[TableCounts]:
    keys = sorted(partition_keys)
    client = s3.get_client()
    with snowflake.get_connection() as connection:
        loader = WarehouseLoader(connection, snowflake_target, s3_publishing)
        latest = loader.latest_loads(keys[0], keys[-1])
        in_snowflake = {table.name: loader.counts_by_day(table.name, keys[0], keys[-1]) for table in TABLES}

    results = []
    for partition_key in keys:
        raw = _read_json(working_storage, raw_manifest_path(partition_key))
        flat = _read_json(working_storage, flat_manifest_path(partition_key))
        try:
            published = read_manifest(client, s3_publishing, partition_key)
        except Exception as error:
            published = {"error": str(error)}
        for table in TABLES:
            counts: dict[str, Count] = {}
            if table is CONVERSATIONS:
                counts["api"], counts["raw"] = _raw_counts(raw, partition_key)
            counts["flat"] = _flat_count(flat, table.name, partition_key)
            counts["s3"] = _s3_count(client, s3_publishing, published, table.name)
            load = latest.get((snowflake_target.table_name(table.name), partition_key))
            counts["copy"] = (
                Count(int(load["rows_loaded"])) if load else Count(missing="no load recorded in the load history")
            )
            counts["snowflake"] = Count(in_snowflake[table.name].get(partition_key, 0))
            result = TableCounts(partition_key, table.name, counts)
            result.compare()
            results.append(result)
    return results


def _read_json(storage: WorkingStorage, path: str) -> dict[str, Any]:
    try:
        return storage.read_json(path)
    except FileNotFoundError:
        return {"error": f"{storage.uri(path)} does not exist"}
    except Exception as error:
        return {"error": f"{storage.uri(path)}: {error}"}


def _raw_counts(raw: dict[str, Any], partition_key: str) -> tuple[Count, Count]:
    if "error" in raw:
        return Count(missing=raw["error"]), Count(missing=raw["error"])
    api = (raw.get("extraction") or {}).get("api_reported")
    api_count = (
        Count(int(api)) if api is not None
        else Count(skipped="the API gives no count for this window (not one whole UTC day)")
    )  # fmt: skip
    return api_count, Count(int(raw["records"]))


def _flat_count(flat: dict[str, Any], table: str, partition_key: str) -> Count:
    if "error" in flat:
        return Count(missing=flat["error"])
    entry = flat.get("tables", {}).get(table)
    return Count(int(entry["rows"])) if entry else Count(missing="not in the flat manifest")


def _s3_count(client: Any, publishing: S3Publishing, published: dict[str, Any], table: str) -> Count:
    if "error" in published:
        return Count(missing=published["error"])
    entry = published.get("tables", {}).get(table)
    if not entry:
        return Count(missing="not in the S3 manifest")
    try:
        if published.get("format") == "csv":
            return Count(count_csv_records(client, publishing.bucket, entry["key"]))
        return Count(parquet_num_rows(client, publishing.bucket, entry["key"]))
    except Exception as error:
        return Count(missing=f"{publishing.uri(entry['key'])} unreadable: {error}")


# ##### READING BACK FROM S3


class S3RangeFile(io.RawIOBase):
    """A read-only, seekable file over one S3 object, one ranged GET per read: enough for pyarrow to
    read a Parquet footer without downloading the row groups."""

    def __init__(self, client: Any, bucket: str, key: str) -> None:
        super().__init__()
        self.client, self.bucket, self.key = client, bucket, key
        self.size = int(client.head_object(Bucket=bucket, Key=key)["ContentLength"])
        self.position = 0
        self.requests = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self.position

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self.position, io.SEEK_END: self.size}[whence]
        self.position = max(0, base + offset)
        return self.position

    def readinto(self, buffer: Any) -> int:
        length = min(len(buffer), self.size - self.position)
        if length <= 0:
            return 0
        byte_range = f"bytes={self.position}-{self.position + length - 1}"
        data = self.client.get_object(Bucket=self.bucket, Key=self.key, Range=byte_range)["Body"].read()
        self.requests += 1
        buffer[: len(data)] = data
        self.position += len(data)
        return len(data)


def parquet_num_rows(client: Any, bucket: str, key: str) -> int:
    with S3RangeFile(client, bucket, key) as handle:
        return pq.read_metadata(handle).num_rows


def count_csv_records(client: Any, bucket: str, key: str) -> int:
    """Records of a gzip CSV with a header, parsed (a quoted field may hold line breaks)."""
    body = client.get_object(Bucket=bucket, Key=key)["Body"]
    with gzip.GzipFile(fileobj=body) as unzipped:
        text = io.TextIOWrapper(unzipped, encoding="utf-8", newline="")
        records = sum(1 for _ in csv.reader(text, strict=True))
    return max(records - 1, 0)


def markdown_table(results: list[TableCounts]) -> str:
    header = "| day | table | " + " | ".join(COLUMN_TITLES[s] for s in STAGES) + " | result |"
    lines = [header, "|" + "---|" * (len(STAGES) + 3)]
    for result in results:
        cells = [result.counts[s].cell() if s in result.counts else "" for s in STAGES]
        verdict = "ok" if not result.problems else "**" + "; ".join(p.split(": ", 1)[1] for p in result.problems) + "**"
        lines.append(f"| {result.partition_key} | {result.table} | " + " | ".join(cells) + f" | {verdict} |")
    notes = sorted({c.skipped for r in results for c in r.counts.values() if c.skipped})
    return "\n".join(lines) + "".join(f"\n\nn/a: {note}" for note in notes)
