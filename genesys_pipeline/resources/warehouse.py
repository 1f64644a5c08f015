"""Where and how the flattened tables are published to S3, and which Snowflake objects load them.

Two small configuration resources; the clients themselves are dagster-aws's `S3Resource` (key "s3")
and dagster-snowflake's `SnowflakeResource` (key "snowflake"), whose database and schema are the
load's target (this module never creates databases or schemas: a production role may not be allowed to).

    s3_publishing = S3Publishing(bucket=dg.EnvVar("GENESYS_S3_BUCKET"), prefix="genesys/conversations")
    snowflake_target = SnowflakeTarget(stage="GENESYS_S3_STAGE", storage_integration="GENESYS_S3_INT")

Everything that ends up inside SQL text (identifiers, the stage URL) is validated here, with errors
that name the field, because identifiers cannot be bind parameters. Dagster validates twice: when
the resource is built (an `EnvVar` is then checked by its variable name) and when a run resolves it.
"""

from __future__ import annotations

import re
from typing import Any, Optional

import dagster as dg
from pydantic import Field, field_validator, model_validator

from genesys_pipeline.contracts.paths import (
    published_day_folder,
    published_file_name,
    published_manifest_name,
)

MIB = 1024 * 1024
FILE_FORMATS = ("parquet", "csv")
SSE_MODES = ("AES256", "aws:kms")
MAX_TIMEOUT_SECONDS = 604800  # STATEMENT_TIMEOUT_IN_SECONDS' maximum in Snowflake

# An unquoted Snowflake identifier. Quoted identifiers are not supported on purpose: they would make
# names case-sensitive and every piece of SQL would have to quote them the same way.
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_$]*")
# Characters safe in an S3 bucket name and inside a SQL string literal; S3 itself enforces the rest
# (lower case, 3-63 characters). Upper case passes here so an EnvVar's variable name validates too.
_BUCKET = re.compile(r"[A-Za-z0-9][A-Za-z0-9.\-_]{1,61}[A-Za-z0-9]")
# S3 "safe characters" (AWS object key naming guide) minus those that mean something in our layout or
# in SQL: no quotes, backslashes, spaces, '=' (hive-style segments are ours alone) or empty segments.
_PREFIX_SEGMENT = re.compile(r"[A-Za-z0-9!_.*()\-]+")


def _identifier(owner: str, field: str, value: str) -> str:
    if not _IDENTIFIER.fullmatch(value or ""):
        raise ValueError(
            f"{owner}.{field} must be a plain Snowflake identifier (letters, digits, '_' and '$', not "
            f"starting with a digit), got {value!r}"
        )
    return value.upper()


class S3Publishing(dg.ConfigurableResource):
    """Where the day's tables are published for Snowflake, and how: the bucket and prefix, Parquet or
    gzip CSV, and the server-side encryption of every object.

    One object per table and day, s3://BUCKET/PREFIX/TABLE/year=YYYY/month=MM/day=DD/TABLE-YYYY-MM-DD.parquet
    (a rerun writes the same key), and a manifest per day, s3://BUCKET/PREFIX/_manifests/YYYY-MM-DD.json,
    which says what was published (keys, rows, bytes) and is what the Snowflake load reads.
    """

    bucket: str = Field(description="S3 bucket the tables are published to (the Snowflake stage reads it).")
    prefix: str = Field(
        default="genesys/conversations",
        description="Key prefix under the bucket, without leading or trailing '/'; the stage's URL.",
    )
    file_format: str = Field(
        default="parquet",
        description="'parquet': the flatten step's Parquet as it is. 'csv': gzip RFC 4180 CSV with a "
        "header; every non-NULL value quoted, NULL an empty unquoted field, an empty string \"\".",
    )
    sse: str = Field(default="AES256", description="Server-side encryption: 'AES256' (SSE-S3) or 'aws:kms'.")
    kms_key_id: Optional[str] = Field(
        default=None, description="KMS key id or ARN for sse='aws:kms' (unset: the bucket's AWS-managed key)."
    )
    multipart_threshold_mb: int = Field(default=64, description="Files at least this large go in parts.")
    multipart_chunksize_mb: int = Field(default=16, description="Part size of multipart uploads (S3 minimum 5).")
    max_concurrency: int = Field(default=4, description="Parts uploaded at once.")

    @field_validator("bucket")
    @classmethod
    def _valid_bucket(cls, bucket: str) -> str:
        if not _BUCKET.fullmatch(bucket or ""):
            raise ValueError(f"S3Publishing.bucket is not a valid S3 bucket name: {bucket!r}")
        return bucket

    @field_validator("prefix")
    @classmethod
    def _valid_prefix(cls, prefix: str) -> str:
        segments = (prefix or "").split("/")
        if not prefix or any(not _PREFIX_SEGMENT.fullmatch(s) or s in (".", "..") for s in segments):
            raise ValueError(
                "S3Publishing.prefix must be '/'-separated segments of letters, digits and !_.*()- "
                f"(no leading, trailing or double '/', no '='), got {prefix!r}"
            )
        return prefix

    @field_validator("file_format")
    @classmethod
    def _valid_format(cls, file_format: str) -> str:
        if (file_format or "").lower() not in FILE_FORMATS:
            raise ValueError(f"S3Publishing.file_format must be one of {FILE_FORMATS}, got {file_format!r}")
        return file_format.lower()

    @field_validator("sse")
    @classmethod
    def _valid_sse(cls, sse: str) -> str:
        if sse not in SSE_MODES:
            raise ValueError(f"S3Publishing.sse must be one of {SSE_MODES}, got {sse!r}")
        return sse

    @model_validator(mode="after")
    def _consistent(self) -> S3Publishing:
        if self.kms_key_id and self.sse != "aws:kms":
            raise ValueError("S3Publishing.kms_key_id is set, but sse is not 'aws:kms'")
        if self.multipart_chunksize_mb < 5 or self.multipart_threshold_mb < 5:
            raise ValueError(
                "S3Publishing.multipart_threshold_mb and multipart_chunksize_mb must be at least 5 (S3's minimum part size)"
            )
        if self.max_concurrency < 1:
            raise ValueError("S3Publishing.max_concurrency must be at least 1")
        return self

    # ----- layout

    @staticmethod
    def day_path(table: str, partition_key: str) -> str:
        """The table's folder for one day, relative to the prefix (contracts/paths.py)."""
        return published_day_folder(table, partition_key)

    def file_name(self, table: str, partition_key: str, file_format: Optional[str] = None) -> str:
        return published_file_name(table, partition_key, file_format or self.file_format)

    def day_prefix(self, table: str, partition_key: str) -> str:
        return f"{self.prefix}/{published_day_folder(table, partition_key)}"

    def table_key(self, table: str, partition_key: str, file_format: Optional[str] = None) -> str:
        return self.day_prefix(table, partition_key) + self.file_name(table, partition_key, file_format)

    def manifest_key(self, partition_key: str) -> str:
        return f"{self.prefix}/{published_manifest_name(partition_key)}"

    def uri(self, key: str) -> str:
        return f"s3://{self.bucket}/{key}"

    @property
    def stage_url(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}/"

    # ----- upload settings

    def extra_args(self) -> dict[str, str]:
        """boto3 ExtraArgs that encrypt an object at rest."""
        args = {"ServerSideEncryption": self.sse}
        if self.sse == "aws:kms" and self.kms_key_id:
            args["SSEKMSKeyId"] = self.kms_key_id
        return args

    def transfer_config(self) -> Any:
        from boto3.s3.transfer import TransferConfig

        return TransferConfig(
            multipart_threshold=self.multipart_threshold_mb * MIB,
            multipart_chunksize=self.multipart_chunksize_mb * MIB,
            max_concurrency=self.max_concurrency,
        )


class SnowflakeTarget(dg.ConfigurableResource):
    """The Snowflake objects the load uses, in the database and schema of the `snowflake` resource.

    The stage reads the S3 prefix either through a storage integration (real Snowflake: no keys in
    SQL) or with AWS keys (only for the local stand-in, which ignores them). The keys are sent in the
    CREATE STAGE statement and never logged or put in metadata.
    """

    stage: str = Field(default="GENESYS_S3_STAGE", description="The external stage over the published S3 prefix.")
    create_stage: bool = Field(
        default=True,
        description="CREATE STAGE IF NOT EXISTS on every run. False: an administrator created it; it is only verified.",
    )
    storage_integration: Optional[str] = Field(
        default=None, description="Storage integration the stage uses (production)."
    )
    stage_aws_key_id: Optional[str] = Field(default=None, description="Stage credentials (stand-in only).")
    stage_aws_secret_key: Optional[str] = Field(default=None, description="Stage credentials (stand-in only).")
    table_prefix: str = Field(default="", description="Prepended to each table's name, e.g. 'GENESYS_'.")
    staging_tables: str = Field(
        default="temporary",
        description="Kind of the per-load staging tables: 'temporary' (session-private, gone with the "
        "session) or 'transient' (a regular table, dropped after the load; for the local stand-in, "
        "whose COPY cannot target temporary tables).",
    )
    load_history_table: str = Field(
        default="GENESYS_LOAD_HISTORY", description="One row per loaded partition, table and load."
    )
    lock_timeout_seconds: int = Field(
        default=900,
        description="LOCK_TIMEOUT of the load's session: how long a statement waits for a table lock another "
        "transaction holds before it fails (Snowflake's default is 12 hours). Above 300: Snowflake aborts a "
        "detached transaction that blocks another after 5 idle minutes.",
    )
    statement_timeout_seconds: int = Field(
        default=3600,
        description="STATEMENT_TIMEOUT_IN_SECONDS of the load's session: the longest any one statement may run "
        "(Snowflake's default is 2 days). Also the age after which an unfinished load's staging table "
        "counts as abandoned.",
    )

    @field_validator("stage", "storage_integration", "load_history_table")
    @classmethod
    def _valid_identifier(cls, value: Optional[str], info: Any) -> Optional[str]:
        return None if value is None else _identifier("SnowflakeTarget", info.field_name, value)

    @field_validator("table_prefix")
    @classmethod
    def _valid_table_prefix(cls, value: str) -> str:
        return "" if not value else _identifier("SnowflakeTarget", "table_prefix", value)

    @field_validator("staging_tables")
    @classmethod
    def _valid_staging_tables(cls, value: str) -> str:
        if (value or "").lower() not in ("temporary", "transient"):
            raise ValueError(f"SnowflakeTarget.staging_tables must be 'temporary' or 'transient', got {value!r}")
        return value.lower()

    @field_validator("lock_timeout_seconds", "statement_timeout_seconds")
    @classmethod
    def _valid_timeout(cls, value: int, info: Any) -> int:
        if not 1 <= value <= MAX_TIMEOUT_SECONDS:
            raise ValueError(
                f"SnowflakeTarget.{info.field_name} must be a whole number of seconds from 1 to "
                f"{MAX_TIMEOUT_SECONDS} (7 days), got {value!r}"
            )
        return value

    @model_validator(mode="after")
    def _one_way_to_read_s3(self) -> SnowflakeTarget:
        keys = (self.stage_aws_key_id, self.stage_aws_secret_key)
        if any(keys) and not all(keys):
            raise ValueError("SnowflakeTarget.stage_aws_key_id and stage_aws_secret_key go together")
        if self.storage_integration and any(keys):
            raise ValueError("SnowflakeTarget: set storage_integration or the stage AWS keys, not both")
        if self.lock_timeout_seconds > self.statement_timeout_seconds:
            raise ValueError(
                f"SnowflakeTarget.lock_timeout_seconds ({self.lock_timeout_seconds}) must not exceed "
                f"statement_timeout_seconds ({self.statement_timeout_seconds}): a statement stops waiting "
                "for a lock when its statement timeout ends"
            )
        if self.create_stage and not (self.storage_integration or any(keys)):
            raise ValueError(
                "SnowflakeTarget: create_stage needs storage_integration (production) or "
                "stage_aws_key_id + stage_aws_secret_key (the local stand-in)"
            )
        return self

    def table_name(self, table: str) -> str:
        return f"{self.table_prefix}{table}".upper()

    def staging_name(self, table: str, load_token: str) -> str:
        """The table a file is copied into before it is inserted; unique per load (the token), so
        concurrent loads never share one even when it is not temporary."""
        return f"{self.table_prefix}{table}_LOADING_{load_token}".upper()
