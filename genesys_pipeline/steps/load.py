"""The Snowflake side of the load: SQL text, and the transaction that replaces one partition.

Values only travel as bind parameters (the connector's default pyformat `%s`); identifiers come only
from `tables.py` and the validated `SnowflakeTarget`/`S3Publishing` configuration.

Per run (outside any transaction: in Snowflake every DDL statement commits an open transaction):
    SELECT CURRENT_DATABASE(), CURRENT_SCHEMA()                          the target, for names and checks
    CREATE TABLE IF NOT EXISTS <table> (...)                             x6, types from tables.py
    CREATE TABLE IF NOT EXISTS <load history> (...)
    CREATE STAGE IF NOT EXISTS <stage> URL = %s STORAGE_INTEGRATION = <int> | CREDENTIALS = (AWS_KEY_ID = %s AWS_SECRET_KEY = %s)
    SHOW STAGES LIKE %s                                                  the stage must point at our prefix
Per partition:
    CREATE OR REPLACE TEMPORARY|TRANSIENT TABLE <table>_LOADING_<token> (...)   x6, VARIANT columns as VARCHAR
    BEGIN
      per table:
        DELETE FROM <table> WHERE partition_date = %s
        COPY INTO <table>_LOADING FROM @<stage>/<table>/year=YYYY/month=MM/day=DD/ FILES = (%s)
             FILE_FORMAT = (...) [MATCH_BY_COLUMN_NAME = CASE_INSENSITIVE] FORCE = TRUE ON_ERROR = ABORT_STATEMENT
                                                                         (skipped for a 0-row file)
        SELECT COUNT(*) FROM <table>_LOADING WHERE partition_date IS NULL OR partition_date <> %s   must be 0
        INSERT INTO <table> (...) SELECT ..., PARSE_JSON(<variant column>), ... FROM <table>_LOADING
        INSERT INTO <load history> SELECT %s, ... , PARSE_JSON(%s), ...
    COMMIT                                   (ROLLBACK on any error: every table exactly as before)
    DROP TABLE IF EXISTS <table>_LOADING_<token>                         x6

Why a staging table: the VARIANT columns travel as JSON array text. COPY ... MATCH_BY_COLUMN_NAME of a
Parquet string into a VARIANT column stores a JSON *string* in Snowflake, and COPY transformations
(`PARSE_JSON($1:col)`) are not available for CSV on the stand-in; `INSERT ... SELECT PARSE_JSON(...)`
from a session-private temporary table works the same way for both formats on both engines.
Why FORCE = TRUE: a rerun writes the same key, often with the same bytes; Snowflake's load metadata
would skip it after the DELETE had emptied the day.
"""

from __future__ import annotations

import dataclasses
import json
import uuid
from datetime import date, datetime, timezone
from typing import Any, Callable, Mapping, Optional, Sequence

from genesys_pipeline.resources.warehouse import S3Publishing, SnowflakeTarget
from genesys_pipeline.contracts.tables import TABLES, TABLES_BY_NAME, Table

# CSV as the S3 step writes it (RFC 4180 + gzip): a header line, CRLF, every non-NULL value quoted
# (embedded quotes doubled), NULL an empty unquoted field, an empty string "". Snowflake reads exactly
# that with: quotes optional, an unquoted empty field NULL, and NO string turned into NULL (NULL_IF's
# default '\N' would turn the text \N into NULL). No escape character outside quotes: the file has none.
CSV_FILE_FORMAT = (
    "TYPE = CSV COMPRESSION = GZIP FIELD_DELIMITER = ',' SKIP_HEADER = 1 "
    "FIELD_OPTIONALLY_ENCLOSED_BY = '\"' ESCAPE_UNENCLOSED_FIELD = NONE EMPTY_FIELD_AS_NULL = TRUE NULL_IF = ()"
)
# USE_LOGICAL_TYPE: read the Parquet logical types (UTC-adjusted millisecond timestamps, dates) as such.
PARQUET_FILE_FORMAT = "TYPE = PARQUET USE_LOGICAL_TYPE = TRUE"

LOAD_HISTORY_COLUMNS = (
    ("LOAD_ID", "VARCHAR NOT NULL"),
    ("RUN_ID", "VARCHAR NOT NULL"),
    ("PARTITION_DATE", "DATE NOT NULL"),
    ("TABLE_NAME", "VARCHAR NOT NULL"),
    ("FILE_FORMAT", "VARCHAR NOT NULL"),
    ("FILES", "VARIANT"),  # JSON array of s3:// URIs
    ("ROWS_IN_FILES", "NUMBER(38,0)"),  # what the S3 step published
    ("ROWS_LOADED", "NUMBER(38,0) NOT NULL"),  # what COPY reported
    ("ROWS_DELETED", "NUMBER(38,0)"),  # what the partition held before
    ("LOADED_AT", "TIMESTAMP_TZ NOT NULL"),
)


class LoadError(Exception):
    """A partition could not be loaded; the message names the partition, table, file and step."""


# ##### SQL TEXT


def create_table_sql(table: Table, name: str) -> str:
    columns = ",\n    ".join(
        f"{c.name.upper()} {c.snowflake_type}{'' if c.nullable else ' NOT NULL'}" for c in table.columns
    )
    return f"CREATE TABLE IF NOT EXISTS {name} (\n    {columns}\n)"


def create_staging_sql(table: Table, name: str, kind: str = "temporary") -> str:
    """Same columns, VARIANT as VARCHAR (the JSON text, parsed on insert), no NOT NULL (the target enforces it)."""
    columns = ", ".join(
        f"{c.name.upper()} {'VARCHAR' if c.snowflake_type == 'VARIANT' else c.snowflake_type}" for c in table.columns
    )
    return f"CREATE OR REPLACE {kind.upper()} TABLE {name} ({columns})"


def create_load_history_sql(name: str) -> str:
    columns = ",\n    ".join(f"{column} {kind}" for column, kind in LOAD_HISTORY_COLUMNS)
    return f"CREATE TABLE IF NOT EXISTS {name} (\n    {columns}\n)"


def create_stage_sql(target: SnowflakeTarget, url: str) -> tuple[str, tuple[Any, ...]]:
    if target.storage_integration:
        integration = target.storage_integration
        return f"CREATE STAGE IF NOT EXISTS {target.stage} URL = %s STORAGE_INTEGRATION = {integration}", (url,)
    return (
        f"CREATE STAGE IF NOT EXISTS {target.stage} URL = %s CREDENTIALS = (AWS_KEY_ID = %s AWS_SECRET_KEY = %s)",
        (url, target.stage_aws_key_id, target.stage_aws_secret_key),
    )


def file_format_clause(file_format: str) -> str:
    if file_format == "parquet":
        return f"FILE_FORMAT = ({PARQUET_FILE_FORMAT}) MATCH_BY_COLUMN_NAME = CASE_INSENSITIVE"
    if file_format == "csv":
        return f"FILE_FORMAT = ({CSV_FILE_FORMAT})"  # by position: the CSV's columns are tables.py's order
    raise ValueError(f"unknown file format {file_format!r}")


def copy_sql(staging: str, stage: str, day_path: str, file_format: str) -> str:
    """COPY one named file (bound: FILES = (%s)) of one table's day folder into the staging table."""
    return (
        f"COPY INTO {staging} FROM @{stage}/{day_path} FILES = (%s) {file_format_clause(file_format)} "
        "FORCE = TRUE ON_ERROR = ABORT_STATEMENT"
    )


def insert_from_staging_sql(table: Table, target: str, staging: str) -> str:
    names = [c.name.upper() for c in table.columns]
    values = [
        f"PARSE_JSON({c.name.upper()})" if c.snowflake_type == "VARIANT" else c.name.upper() for c in table.columns
    ]
    return f"INSERT INTO {target} ({', '.join(names)}) SELECT {', '.join(values)} FROM {staging}"


def insert_load_history_sql(name: str) -> str:
    # INSERT ... SELECT, not VALUES: Snowflake rejects PARSE_JSON inside a VALUES clause.
    return (
        f"INSERT INTO {name} ({', '.join(column for column, _ in LOAD_HISTORY_COLUMNS)}) "
        "SELECT %s, %s, %s::DATE, %s, %s, PARSE_JSON(%s), %s, %s, %s, %s::TIMESTAMP_TZ"
    )


def latest_loads_sql(name: str) -> str:
    """The latest load of each table and day between two dates (inclusive)."""
    return (
        f"SELECT TABLE_NAME, PARTITION_DATE, ROWS_LOADED, ROWS_IN_FILES, RUN_ID, LOADED_AT FROM {name} "
        "WHERE PARTITION_DATE BETWEEN %s AND %s "
        "QUALIFY ROW_NUMBER() OVER (PARTITION BY TABLE_NAME, PARTITION_DATE ORDER BY LOADED_AT DESC, LOAD_ID DESC) = 1"
    )


def count_by_day_sql(name: str) -> str:
    return (
        f"SELECT PARTITION_DATE, COUNT(*) AS N FROM {name} "
        "WHERE PARTITION_DATE BETWEEN %s AND %s GROUP BY PARTITION_DATE"
    )


# ##### THE LOAD


@dataclasses.dataclass(frozen=True)
class PublishedFile:
    """One table's file of one partition, as the S3 step's manifest describes it."""

    table: str
    key: str
    rows: int
    bytes: int

    @property
    def file_name(self) -> str:
        return self.key.rsplit("/", 1)[-1]


@dataclasses.dataclass(frozen=True)
class TableLoad:
    partition_key: str
    table: str  # tables.py name
    target: str  # Snowflake table name
    file_uri: str
    rows_in_file: int
    rows_loaded: int
    rows_deleted: int


def _lower_keys(row: Mapping[str, Any]) -> dict[str, Any]:
    return {str(key).lower(): value for key, value in row.items()}


class WarehouseLoader:
    """Runs the statements of the module docstring on one connection (a `snowflake.connector` one).

    `log` receives one line per statement (never the bound values: the stage's may be credentials).
    """

    def __init__(
        self,
        connection: Any,
        target: SnowflakeTarget,
        publishing: S3Publishing,
        log: Callable[[str], None] = lambda message: None,
    ) -> None:
        from snowflake.connector import DictCursor

        self.connection = connection
        self.cursor = connection.cursor(DictCursor)
        self.target = target
        self.publishing = publishing
        self.log = log
        self.database: Optional[str] = None
        self.schema: Optional[str] = None
        self.load_token = uuid.uuid4().hex[:8].upper()

    def staging_name(self, table: str) -> str:
        return self.target.staging_name(table, self.load_token)

    def execute(self, sql: str, params: Optional[Sequence[Any]] = None) -> list[dict[str, Any]]:
        self.log(" ".join(sql.split()))
        self.cursor.execute(sql, params)
        if self.cursor.description is None:
            return []
        return [_lower_keys(row) for row in self.cursor.fetchall()]

    def qualified(self, name: str) -> str:
        return f"{self.database}.{self.schema}.{name}"

    # ----- once per run

    def prepare(self) -> None:
        """Resolve the target schema and create the tables and the stage if they are missing."""
        (row,) = self.execute("SELECT CURRENT_DATABASE() AS DATABASE_NAME, CURRENT_SCHEMA() AS SCHEMA_NAME")
        self.database, self.schema = row["database_name"], row["schema_name"]
        if not (self.database and self.schema):
            raise LoadError(
                "The snowflake resource must set a database and a schema: they are the load's target "
                f"(the session has database={self.database!r}, schema={self.schema!r})"
            )
        for table in TABLES:
            self.execute(create_table_sql(table, self.target.table_name(table.name)))
        self.execute(create_load_history_sql(self.target.load_history_table))
        if self.target.create_stage:
            self.execute(*create_stage_sql(self.target, self.publishing.stage_url))
        self.verify_stage()

    def verify_stage(self) -> None:
        """An existing stage is kept by CREATE ... IF NOT EXISTS even if it points elsewhere: refuse that."""
        rows = self.execute("SHOW STAGES LIKE %s", (self.target.stage,))
        ours = [
            r for r in rows
            if str(r.get("name", "")).upper() == self.target.stage
            and str(r.get("schema_name", "")).upper() == str(self.schema).upper()
        ]  # fmt: skip
        if not ours:
            raise LoadError(f"Stage {self.qualified(self.target.stage)} does not exist (create_stage is off)")
        url = str(ours[0].get("url") or "").strip('[]"')
        if url.rstrip("/") != self.publishing.stage_url.rstrip("/"):
            raise LoadError(
                f"Stage {self.qualified(self.target.stage)} reads {url!r}, but S3Publishing publishes to "
                f"{self.publishing.stage_url!r}: drop the stage or configure another stage name"
            )

    # ----- once per partition

    def load_partition(
        self, partition_key: str, files: Mapping[str, PublishedFile], file_format: str, run_id: str
    ) -> list[TableLoad]:
        """Replace the partition in every table, in one transaction; all tables or none."""
        missing = [table.name for table in TABLES if table.name not in files]
        if missing:
            raise LoadError(f"Partition {partition_key}: the S3 manifest lists no file for {', '.join(missing)}")
        try:
            for table in TABLES:  # DDL: before BEGIN, as it would commit the transaction in Snowflake
                self.execute(create_staging_sql(table, self.staging_name(table.name), self.target.staging_tables))
            return self._replace_partition(partition_key, files, file_format, run_id)
        finally:
            self._drop_staging()

    def _replace_partition(
        self, partition_key: str, files: Mapping[str, PublishedFile], file_format: str, run_id: str
    ) -> list[TableLoad]:
        day = date.fromisoformat(partition_key)
        loads: list[TableLoad] = []
        current: Optional[PublishedFile] = None
        step = "BEGIN"
        self.execute("BEGIN")
        try:
            for table in TABLES:
                current = files[table.name]
                target_name = self.target.table_name(table.name)
                staging = self.staging_name(table.name)

                step = "DELETE"
                self.execute(f"DELETE FROM {target_name} WHERE PARTITION_DATE = %s", (day,))
                rows_deleted = max(self.cursor.rowcount or 0, 0)

                rows_loaded = 0
                if current.rows:  # a 0-row file is not copied: COPY's answer for one differs between engines
                    step = "COPY"
                    rows_loaded = self._copy(table, staging, partition_key, current, file_format)

                    step = "partition_date check"
                    (wrong,) = self.execute(
                        f"SELECT COUNT(*) AS N FROM {staging} WHERE PARTITION_DATE IS NULL OR PARTITION_DATE <> %s",
                        (day,),
                    )
                    if wrong["n"]:
                        raise LoadError(f"{wrong['n']} rows have a partition_date other than {partition_key}")

                    step = "INSERT"
                    self.execute(insert_from_staging_sql(table, target_name, staging))
                    if self.cursor.rowcount != rows_loaded:
                        raise LoadError(f"COPY loaded {rows_loaded} rows but INSERT moved {self.cursor.rowcount}")

                step = "load history"
                self.execute(
                    insert_load_history_sql(self.target.load_history_table),
                    (
                        uuid.uuid4().hex, run_id, day, target_name, file_format,
                        json.dumps([self.publishing.uri(current.key)]), current.rows, rows_loaded, rows_deleted,
                        datetime.now(timezone.utc),
                    ),
                )  # fmt: skip
                loads.append(
                    TableLoad(partition_key, table.name, self.qualified(target_name),
                              self.publishing.uri(current.key), current.rows, rows_loaded, rows_deleted)
                )  # fmt: skip
            step = "COMMIT"
            current = None
            self.execute("COMMIT")
        except Exception as error:
            self._rollback(partition_key)
            where = f"table {current.table} from {self.publishing.uri(current.key)}" if current else "the transaction"
            raise LoadError(
                f"Loading partition {partition_key} failed at {step} of {where}; rolled back, every table "
                f"is as it was before: {error}"
            ) from error
        return loads

    def _copy(self, table: Table, staging: str, partition_key: str, file: PublishedFile, file_format: str) -> int:
        day_path = self.publishing.day_path(table.name, partition_key)
        expected_key = self.publishing.prefix + "/" + day_path + file.file_name
        if file.key != expected_key:  # the stage can only reach files under its own prefix
            raise LoadError(f"the manifest's key {file.key!r} is not under the stage's {expected_key!r}")
        results = self.execute(copy_sql(staging, self.target.stage, day_path, file_format), (file.file_name,))
        # By column name: Snowflake and the stand-in agree on names, not on every position, and a COPY
        # of zero files answers with a single `status` column.
        if len(results) != 1 or "rows_loaded" not in results[0]:
            raise LoadError(f"COPY processed no file: {results}")
        (result,) = results
        if result.get("status") != "LOADED" or not str(result.get("file", "")).endswith(file.file_name):
            raise LoadError(
                f"COPY reported {result.get('status')} for {result.get('file')}: {result.get('first_error')} "
                f"(errors seen: {result.get('errors_seen')})"
            )
        return int(result["rows_loaded"])

    def _rollback(self, partition_key: str) -> None:
        try:
            self.execute("ROLLBACK")
        except Exception as error:  # the original error matters more; the connection is discarded anyway
            self.log(f"ROLLBACK of partition {partition_key} failed too: {error}")

    def _drop_staging(self) -> None:
        for table in TABLES:
            try:
                self.execute(f"DROP TABLE IF EXISTS {self.staging_name(table.name)}")
            except Exception as error:  # temporary tables end with the session anyway
                self.log(f"could not drop {self.staging_name(table.name)}: {error}")

    # ----- for the row-count check

    def latest_loads(self, first: str, last: str) -> dict[tuple[str, str], dict[str, Any]]:
        """{(Snowflake table name, 'YYYY-MM-DD'): latest load-history row} for days first..last."""
        rows = self.execute(
            latest_loads_sql(self.target.load_history_table), (date.fromisoformat(first), date.fromisoformat(last))
        )
        return {(str(r["table_name"]), _day(r["partition_date"])): r for r in rows}

    def counts_by_day(self, table: str, first: str, last: str) -> dict[str, int]:
        rows = self.execute(
            count_by_day_sql(self.target.table_name(table)), (date.fromisoformat(first), date.fromisoformat(last))
        )
        return {_day(r["partition_date"]): int(r["n"]) for r in rows}


def _day(value: Any) -> str:
    return value.isoformat() if isinstance(value, (date, datetime)) else str(value)[:10]


def published_files(manifest: Mapping[str, Any]) -> dict[str, PublishedFile]:
    """The S3 manifest's tables as `PublishedFile`s, validated against tables.py."""
    files = {}
    for name, entry in manifest.get("tables", {}).items():
        if name not in TABLES_BY_NAME:
            raise LoadError(f"the S3 manifest lists an unknown table {name!r}")
        files[name] = PublishedFile(name, str(entry["key"]), int(entry["rows"]), int(entry["bytes"]))
    return files
