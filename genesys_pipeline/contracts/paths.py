"""Where each stage leaves a day: paths under the working location and keys under the S3 prefix.

Every path is a function of the partition key alone, so a rerun of a day writes the same paths and
replaces the day instead of adding to it.

Working location (WorkingStorage: a local folder or s3://bucket/prefix):
    raw/conversations/<day>/conversations.jsonl.gz   the API's records, one JSON object per line
    raw/conversations/<day>/lookups.json.gz          the names of queues, users, wrap-up codes and
                                                     divisions as the extraction read them (flatten's)
    raw/conversations/<day>/manifest.json            RawManifest (written last)
    flat/<day>/<table>.parquet                       one file per table of contracts/tables.py
    flat/<day>/manifest.json                         FlatManifest
Published (S3Publishing: s3://<bucket>/<prefix>/..., the Snowflake stage's URL):
    <table>/year=YYYY/month=MM/day=DD/<table>-YYYY-MM-DD.parquet   (or .csv.gz)
    _manifests/YYYY-MM-DD.json                                     PublishedManifest
"""

from __future__ import annotations

from datetime import date

RAW_PREFIX = "raw/conversations"
FLAT_PREFIX = "flat"
FILE_SUFFIX = {"parquet": ".parquet", "csv": ".csv.gz"}


def raw_records_path(partition_key: str) -> str:
    return f"{RAW_PREFIX}/{partition_key}/conversations.jsonl.gz"


def raw_lookups_path(partition_key: str) -> str:
    """Next to the day's raw file, so that flattening the day again, without extracting it again,
    resolves its ids to the names it was extracted with."""
    return f"{RAW_PREFIX}/{partition_key}/lookups.json.gz"


def raw_manifest_path(partition_key: str) -> str:
    return f"{RAW_PREFIX}/{partition_key}/manifest.json"


def flat_table_path(partition_key: str, table: str) -> str:
    return f"{FLAT_PREFIX}/{partition_key}/{table}.parquet"


def flat_manifest_path(partition_key: str) -> str:
    return f"{FLAT_PREFIX}/{partition_key}/manifest.json"


def published_day_folder(table: str, partition_key: str) -> str:
    """`<table>/year=YYYY/month=MM/day=DD/`: the table's folder for one day, relative to the prefix."""
    day = date.fromisoformat(partition_key)
    return f"{table}/year={day.year:04d}/month={day.month:02d}/day={day.day:02d}/"


def published_file_name(table: str, partition_key: str, file_format: str) -> str:
    return f"{table}-{date.fromisoformat(partition_key).isoformat()}{FILE_SUFFIX[file_format]}"


def published_manifest_name(partition_key: str) -> str:
    return f"_manifests/{date.fromisoformat(partition_key).isoformat()}.json"
