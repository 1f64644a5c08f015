"""The Snowflake load: replace one day of the conversation tables, all or nothing.

The tables are the selected ones (GENESYS_TABLES, `WarehouseLoader(tables=...)`): a table left out is
not created, and no statement below touches it; its rows stay as they were.

Per run (outside any transaction: in Snowflake every DDL statement commits an open transaction):
    SELECT CURRENT_DATABASE(), CURRENT_SCHEMA()                          the target, for names and checks
    ALTER SESSION SET LOCK_TIMEOUT = n STATEMENT_TIMEOUT_IN_SECONDS = m  SnowflakeTarget's; then QUERY_TAG
    SHOW TRANSACTIONS; SELECT SYSTEM$ABORT_TRANSACTION(%s); ...          dead loads of the run's days, as below
    CREATE TABLE IF NOT EXISTS <table> (...)                             x6, types from contracts/tables.py
    ALTER TABLE <table> ADD COLUMN IF NOT EXISTS <column> <type>         for columns an older table lacks
    CREATE TABLE IF NOT EXISTS <load history> (...)
    CREATE STAGE IF NOT EXISTS <stage> URL = %s STORAGE_INTEGRATION = <int> | CREDENTIALS = (AWS_KEY_ID = %s AWS_SECRET_KEY = %s)
    SHOW STAGES LIKE %s                                                  the stage must point at our prefix
Per partition:
    ALTER SESSION SET QUERY_TAG = %s                                     pipeline, run id, day, load token
    SHOW TRANSACTIONS; SELECT SYSTEM$ABORT_TRANSACTION(%s)              dead loads of this day (snowflake_recovery.py)
    SELECT TABLE_NAME, CREATED FROM INFORMATION_SCHEMA.TABLES ...; DROP TABLE IF EXISTS ...   their staging tables
    CREATE OR REPLACE TEMPORARY|TRANSIENT TABLE <table>_LOADING_<token> (...)   x6, VARIANT columns as VARCHAR
    BEGIN TRANSACTION NAME GENESYS_LOAD_<target>_<YYYYMMDD>_<token>
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
from typing import Any, Callable, Collection, Mapping, Optional, Sequence

from genesys_pipeline.contracts.columns import Table
from genesys_pipeline.contracts.manifests import PublishedObject
from genesys_pipeline.contracts.tables import TABLES
from genesys_pipeline.resources.warehouse import S3Publishing, SnowflakeTarget
from genesys_pipeline.steps.snowflake_recovery import (
    configure_session,
    new_load_token,
    recover,
    tag_day,
    target_id,
    transaction_name,
)
from genesys_pipeline.steps.snowflake_session import (
    Progress,
    SnowflakeSession,
    replace_in_transaction,
)
from genesys_pipeline.steps.snowflake_sql import (
    SHOW_STAGES_SQL,
    copy_sql,
    create_load_history_sql,
    create_stage_sql,
    create_staging_sql,
    delete_day_sql,
    insert_from_staging_sql,
    insert_load_history_sql,
    rows_outside_day_sql,
)


class LoadError(Exception):
    """A partition could not be loaded; the message names the partition, table, file and step."""


@dataclasses.dataclass(frozen=True)
class TableLoad:
    partition_key: str
    table: str  # contracts/tables.py name
    target: str  # DB.SCHEMA.TABLE in Snowflake
    file_uri: str
    rows_in_file: int
    rows_loaded: int
    rows_deleted: int


class WarehouseLoader:
    """Runs the statements of the module docstring on one connection (a `snowflake.connector` one).

    `log` gets every statement; `warn` (default: `log`) what the load did about earlier loads that died.
    `tables`: the tables loaded (GENESYS_TABLES); no statement touches the others.
    """

    def __init__(
        self,
        connection: Any,
        target: SnowflakeTarget,
        publishing: S3Publishing,
        log: Callable[[str], None] = lambda message: None,
        warn: Optional[Callable[[str], None]] = None,
        tables: Sequence[Table] = TABLES,
    ) -> None:
        self.session = SnowflakeSession(connection, log)
        self.tables = tuple(tables)
        self.target = target
        self.publishing = publishing
        self.warn = warn or log
        self.load_token = new_load_token()

    def staging_name(self, table: str) -> str:
        return self.target.staging_name(table, self.load_token)

    def qualified(self, name: str) -> str:
        return self.session.qualified(name)

    # ----- once per run

    def prepare(self, partition_keys: Collection[str] = ()) -> None:
        """Resolve the target schema, recover from dead loads of the run's days (snowflake_recovery.py),
        and create the tables and the stage if they are missing."""
        self.session.resolve_target(LoadError)
        configure_session(self.session, self.target, self.load_token)
        self._recover(partition_keys)
        for table in self.tables:  # an existing table gets the columns a newer contract added
            self.session.ensure_table(table, self.target.table_name(table.name))
        self.session.execute(create_load_history_sql(self.target.load_history_table))
        if self.target.create_stage:
            self.session.execute(*create_stage_sql(self.target, self.publishing.stage_url))
        self.verify_stage()

    def verify_stage(self) -> None:
        """An existing stage is kept by CREATE ... IF NOT EXISTS even if it points elsewhere: refuse that."""
        rows = self.session.execute(SHOW_STAGES_SQL, (self.target.stage,))
        ours = [
            r for r in rows
            if str(r.get("name", "")).upper() == self.target.stage
            and str(r.get("schema_name", "")).upper() == str(self.session.schema).upper()
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
        self, partition_key: str, files: Mapping[str, PublishedObject], file_format: str, run_id: str
    ) -> list[TableLoad]:
        """Replace the partition in every table, in one transaction; all tables or none."""
        missing = [table.name for table in self.tables if table.name not in files]
        if missing:
            raise LoadError(
                f"Partition {partition_key}: the S3 manifest lists no file for {', '.join(missing)} (published "
                "before the table was selected in GENESYS_TABLES?): materialize flattened_conversations and "
                "s3_conversations for the day again"
            )
        unknown = sorted(set(files) - {table.name for table in TABLES})
        if unknown:
            raise LoadError(f"Partition {partition_key}: the S3 manifest lists unknown tables {unknown}")
        tag_day(self.session, run_id, partition_key, self.load_token)
        self._recover([partition_key])
        try:
            for table in self.tables:  # DDL: before BEGIN, as it would commit the transaction in Snowflake
                self.session.execute(
                    create_staging_sql(table, self.staging_name(table.name), self.target.staging_tables)
                )
            return self._replace_partition(partition_key, files, file_format, run_id)
        finally:
            self._drop_staging()

    def _replace_partition(
        self, partition_key: str, files: Mapping[str, PublishedObject], file_format: str, run_id: str
    ) -> list[TableLoad]:
        day = date.fromisoformat(partition_key)
        name = transaction_name(target_id(self.session.database, self.session.schema, self.target.table_prefix),
                                day, self.load_token)  # fmt: skip

        def failure(progress: Progress, outcome: str, error: Exception) -> LoadError:
            return LoadError(load_failure_message(partition_key, progress, name, error, outcome))

        loads: list[TableLoad] = []
        with replace_in_transaction(self.session, failure, name) as progress:
            for table in self.tables:
                file = files[table.name]
                progress.subject = f"table {table.name} from {file.uri}"
                loads.append(self._replace_table(progress, table, day, file, file_format, run_id))
        return loads

    def _replace_table(
        self, progress: Progress, table: Table, day: date, file: PublishedObject, file_format: str, run_id: str
    ) -> TableLoad:
        target_name = self.target.table_name(table.name)
        staging = self.staging_name(table.name)
        partition_key = day.isoformat()

        progress.step = "DELETE"
        self.session.execute(delete_day_sql(target_name), (day,))
        rows_deleted = self.session.rowcount

        rows_loaded = 0
        if file.rows:  # a 0-row file is not copied: COPY's answer for one differs between engines
            progress.step = "COPY"
            rows_loaded = self._copy(table, staging, partition_key, file, file_format)

            progress.step = "partition_date check"
            (wrong,) = self.session.execute(rows_outside_day_sql(staging), (day,))
            if wrong["n"]:
                raise LoadError(f"{wrong['n']} rows have a partition_date other than {partition_key}")

            progress.step = "INSERT"
            self.session.execute(insert_from_staging_sql(table, target_name, staging))
            if self.session.cursor.rowcount != rows_loaded:
                raise LoadError(f"COPY loaded {rows_loaded} rows but INSERT moved {self.session.cursor.rowcount}")

        progress.step = "load history"
        self.session.execute(
            insert_load_history_sql(self.target.load_history_table),
            (
                uuid.uuid4().hex, run_id, day, target_name, file_format, json.dumps([file.uri]), file.rows,
                rows_loaded, rows_deleted, datetime.now(timezone.utc),
            ),
        )  # fmt: skip
        return TableLoad(partition_key, table.name, self.qualified(target_name), file.uri, file.rows, rows_loaded,
                         rows_deleted)  # fmt: skip

    def _copy(self, table: Table, staging: str, partition_key: str, file: PublishedObject, file_format: str) -> int:
        day_path = self.publishing.day_path(table.name, partition_key)
        expected_key = self.publishing.prefix + "/" + day_path + file.file_name
        if file.key != expected_key:  # the stage can only reach files under its own prefix
            raise LoadError(f"the manifest's key {file.key!r} is not under the stage's {expected_key!r}")
        results = self.session.execute(copy_sql(staging, self.target.stage, day_path, file_format), (file.file_name,))
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

    def _recover(self, partition_keys: Collection[str]) -> None:
        if not partition_keys:
            return
        try:
            recover(self.session, self.target, [date.fromisoformat(k) for k in partition_keys], self.load_token, self.warn)
        except Exception as error:  # best effort: a dead load's locks then cost at most LOCK_TIMEOUT
            self.warn(f"could not look for earlier loads of {', '.join(partition_keys)} that never finished: {error}")

    def _drop_staging(self) -> None:  # the next load drops what this could not (snowflake_recovery.py)
        for table in self.tables:
            try:
                self.session.execute(f"DROP TABLE IF EXISTS {self.staging_name(table.name)}")
            except Exception as error:  # temporary tables end with the session anyway
                self.session.log(f"could not drop {self.staging_name(table.name)}: {error}")


def load_failure_message(partition_key: str, progress: Progress, transaction: str, error: Exception, outcome: str) -> str:
    """What a failed day's load tells the user: where it failed, and truthfully what became of the data."""
    where = f"Loading partition {partition_key} failed at {progress.step} of {progress.subject or 'the transaction'}"
    still_open = (f"the transaction {transaction} may stay open in Snowflake, holding its locks, until the next "
                  f"load of {partition_key} aborts it")  # fmt: skip
    if progress.step == "COMMIT":  # the COMMIT may have reached Snowflake before the error
        if progress.rolled_back:
            then = "if it did not, the ROLLBACK left every table as it was"
        else:
            then = f"the ROLLBACK could not be sent either ({progress.rollback_error}), so if it did not, {still_open}"
        return (f"{where}: {error}. Whether Snowflake applied the COMMIT is unknown; {then}. "
                "A rerun replaces the day either way.")  # fmt: skip
    if progress.rolled_back:
        return f"{where}; {outcome}, every table is as it was before: {error}"
    return (
        f"{where}: {error}. The ROLLBACK could not be sent ({progress.rollback_error}), so nothing was committed "
        f"and readers still see every table as it was before, but {still_open}."
    )
