"""The Snowflake SQL of the loads and the row-count check, as text with `%s` bind parameters.

Values only travel as bind parameters (the connector's default pyformat); identifiers come only from
contracts/ and the validated `SnowflakeTarget`/`S3Publishing` configuration, because identifiers
cannot be bound.
"""

from __future__ import annotations

from datetime import date
from typing import Any, Sequence

from genesys_pipeline.contracts.columns import Column, Table
from genesys_pipeline.resources.warehouse import SnowflakeTarget

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


def copy_sql(staging: str, stage: str, table_folder: str, files: int, file_format: str) -> str:
    """COPY `files` named files (bound: FILES = (%s, ...), each relative to the table's folder, e.g.
    `year=2024/month=05/day=08/<name>`: Snowflake reads the stage URL + the FROM path + the name) into
    the staging table; Snowflake takes up to 1,000 names."""
    if not 1 <= files <= 1000:
        raise ValueError(f"a COPY names 1 to 1000 files, got {files}")
    return (
        f"COPY INTO {staging} FROM @{stage}/{table_folder} FILES = ({', '.join(['%s'] * files)}) "
        f"{file_format_clause(file_format)} FORCE = TRUE ON_ERROR = ABORT_STATEMENT"
    )


def insert_from_staging_sql(table: Table, target: str, staging: str) -> str:
    """Every row of the staging table (each checked to be of one of the run's days)."""
    names = [c.name.upper() for c in table.columns]
    values = [
        f"PARSE_JSON({c.name.upper()})" if c.snowflake_type == "VARIANT" else c.name.upper() for c in table.columns
    ]
    return f"INSERT INTO {target} ({', '.join(names)}) SELECT {', '.join(values)} FROM {staging}"


def insert_load_history_sql(name: str, rows: int = 1) -> str:
    """One statement for `rows` rows of LOAD_HISTORY_COLUMNS' values (bound, row after row)."""
    # INSERT ... SELECT, not VALUES: Snowflake rejects PARSE_JSON inside a VALUES clause.
    if rows < 1:
        raise ValueError(f"a load history INSERT needs at least one row, got {rows}")
    row = "SELECT %s, %s, %s::DATE, %s, %s, PARSE_JSON(%s), %s, %s, %s, %s::TIMESTAMP_TZ"
    return f"INSERT INTO {name} ({', '.join(column for column, _ in LOAD_HISTORY_COLUMNS)}) " + " UNION ALL ".join(
        [row] * rows
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


CURRENT_TARGET_SQL = "SELECT CURRENT_DATABASE() AS DATABASE_NAME, CURRENT_SCHEMA() AS SCHEMA_NAME"
SHOW_STAGES_SQL = "SHOW STAGES LIKE %s"


def days_condition(days: Sequence[date]) -> tuple[str, tuple[date, ...]]:
    """`PARTITION_DATE` among `days` (sorted, distinct), and its binds: `=` for one day, BETWEEN for
    consecutive days (a range run's), IN otherwise."""
    if not days:
        raise ValueError("a condition on the partition dates needs at least one day")
    if len(days) == 1:
        return "PARTITION_DATE = %s", (days[0],)
    if (days[-1] - days[0]).days == len(days) - 1:
        return "PARTITION_DATE BETWEEN %s AND %s", (days[0], days[-1])
    return f"PARTITION_DATE IN ({', '.join(['%s'] * len(days))})", tuple(days)


def delete_days_sql(name: str, condition: str) -> str:
    return f"DELETE FROM {name} WHERE {condition}"


def rows_by_day_sql(names: Sequence[str], condition: str = "") -> str:
    """Per table, its rows by PARTITION_DATE (a NULL one included), those matching `condition` if given:
    binds per table a label for its rows, then the condition's. One statement for all the tables."""
    if not names:
        raise ValueError("counting rows by day needs at least one table")
    where = f" WHERE {condition}" if condition else ""
    return " UNION ALL ".join(
        f"SELECT %s AS TABLE_NAME, PARTITION_DATE, COUNT(*) AS N FROM {name}{where} GROUP BY PARTITION_DATE"
        for name in names
    )


def insert_values_sql(name: str, columns: list[str]) -> str:
    return f"INSERT INTO {name} ({', '.join(columns)}) VALUES ({', '.join(['%s'] * len(columns))})"


def count_rows_and_ids_sql(name: str, id_column: str) -> str:
    return f"SELECT COUNT(*) AS N, COUNT(DISTINCT {id_column}) AS IDS FROM {name}"


TABLE_COLUMNS_SQL = "SELECT COLUMN_NAME FROM INFORMATION_SCHEMA.COLUMNS WHERE TABLE_SCHEMA = %s AND TABLE_NAME = %s"


def tables_columns_sql(tables: int) -> str:
    """The columns of several tables at once (binds: the schema, then each table's name)."""
    return (
        "SELECT TABLE_NAME, COLUMN_NAME FROM INFORMATION_SCHEMA.COLUMNS WHERE TABLE_SCHEMA = %s "
        f"AND TABLE_NAME IN ({', '.join(['%s'] * tables)})"
    )


def add_column_sql(name: str, column: Column) -> str:
    # Nullable even where the contract says NOT NULL: NOT NULL cannot be added to a table with rows.
    return f"ALTER TABLE {name} ADD COLUMN IF NOT EXISTS {column.name.upper()} {column.snowflake_type}"


# ----- session settings and the recovery from loads that died (steps/snowflake_recovery.py)

QUERY_TAG_SQL = "ALTER SESSION SET QUERY_TAG = %s"
SHOW_TRANSACTIONS_SQL = "SHOW TRANSACTIONS"  # the current user's running transactions
ABORT_TRANSACTION_SQL = "SELECT SYSTEM$ABORT_TRANSACTION(%s)"
STAGING_TABLES_SQL = (
    "SELECT TABLE_NAME, CREATED FROM INFORMATION_SCHEMA.TABLES WHERE TABLE_SCHEMA = %s AND TABLE_NAME LIKE %s"
)


def session_timeouts_sql(lock_timeout_seconds: int, statement_timeout_seconds: int) -> str:
    # Integers validated by SnowflakeTarget; ALTER SESSION takes literals.
    return (
        f"ALTER SESSION SET LOCK_TIMEOUT = {int(lock_timeout_seconds)} "
        f"STATEMENT_TIMEOUT_IN_SECONDS = {int(statement_timeout_seconds)}"
    )


def begin_sql(name: str = "") -> str:
    """BEGIN, with a transaction name (an identifier we built) that SHOW TRANSACTIONS lists."""
    return f"BEGIN TRANSACTION NAME {name}" if name else "BEGIN"


def drop_table_sql(name: str) -> str:
    return f"DROP TABLE IF EXISTS {name}"
