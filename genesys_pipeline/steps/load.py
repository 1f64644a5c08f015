"""The Snowflake load: replace one day of the conversation tables, all or nothing.

The tables are the selected ones (GENESYS_TABLES, `WarehouseLoader(tables=...)`): a table left out is
not created, and no statement below touches it; its rows stay as they were. "Each table" below is each
selected table (thirteen by default).

Per run (outside any transaction: in Snowflake every DDL statement commits an open transaction):
    SELECT CURRENT_DATABASE(), CURRENT_SCHEMA()                          the target, for names and checks
    ALTER SESSION SET LOCK_TIMEOUT = n STATEMENT_TIMEOUT_IN_SECONDS = m  SnowflakeTarget's; then QUERY_TAG
    SHOW TRANSACTIONS; SELECT SYSTEM$ABORT_TRANSACTION(%s); ...          dead loads of the run's days (snowflake_recovery.py)
    SELECT TABLE_NAME, CREATED FROM INFORMATION_SCHEMA.TABLES ...; DROP TABLE IF EXISTS ...   their staging tables
    SELECT TABLE_NAME, COLUMN_NAME FROM INFORMATION_SCHEMA.COLUMNS ...   every table's columns, in one query
    CREATE TABLE IF NOT EXISTS <table> (...)                             for a missing table, types from contracts/tables.py
    ALTER TABLE <table> ADD COLUMN IF NOT EXISTS <column> <type>         for columns an older table lacks
    CREATE TABLE IF NOT EXISTS <load history> (...)
    CREATE STAGE IF NOT EXISTS <stage> URL = %s STORAGE_INTEGRATION = <int> | CREDENTIALS = (AWS_KEY_ID = %s AWS_SECRET_KEY = %s)
    SHOW STAGES LIKE %s                                                  the stage must point at our prefix
    CREATE OR REPLACE TEMPORARY|TRANSIENT TABLE <table>_LOADING_<token> (...)   each table, VARIANT columns as VARCHAR;
                                                                         sent by the first day, before its BEGIN
Per partition:
    ALTER SESSION SET QUERY_TAG = %s                                     pipeline, run id, day, load token
    (SHOW TRANSACTIONS ... as above, only for a day the run's first look could not cover)
    BEGIN TRANSACTION NAME GENESYS_LOAD_<target>_<YYYYMMDD>_<token>
      DELETE FROM <table>_LOADING_<token>                                each table, only after a failed day or
                                                                         for a day the run loaded before
      per table:
        DELETE FROM <table> WHERE partition_date = %s
        COPY INTO <table>_LOADING FROM @<stage>/<table>/year=YYYY/month=MM/day=DD/ FILES = (%s)
             FILE_FORMAT = (...) [MATCH_BY_COLUMN_NAME = CASE_INSENSITIVE] FORCE = TRUE ON_ERROR = ABORT_STATEMENT
                                                                         (skipped for a 0-row file)
      SELECT %s, COUNT(*) FROM <table>_LOADING WHERE partition_date = %s UNION ALL ...   each copied table's
                                                                         count must be what COPY loaded
                                                                         (no statement if no file had rows)
      per copied table:
        INSERT INTO <table> (...) SELECT ..., PARSE_JSON(<variant column>), ... FROM <table>_LOADING
             WHERE partition_date = %s
      INSERT INTO <load history> SELECT %s, ..., PARSE_JSON(%s), ... UNION ALL ...   one row per table
    COMMIT                                   (ROLLBACK on any error: every table exactly as before)
At the end of the run (`with WarehouseLoader(...)`, whether it succeeded or not):
    DROP TABLE IF EXISTS <table>_LOADING_<token>                         each table

Why a staging table: the VARIANT columns travel as JSON array text. COPY ... MATCH_BY_COLUMN_NAME of a
Parquet string into a VARIANT column stores a JSON *string* in Snowflake, and COPY transformations
(`PARSE_JSON($1:col)`) are not available for CSV on the stand-in; `INSERT ... SELECT PARSE_JSON(...)`
from a session-private temporary table works the same way for both formats on both engines.
Why the staging tables keep the run's earlier days: emptying them would cost a statement per table and
day. Each earlier day's rows were checked to be of that day, and a run's days differ, so a table's rows
of the day are exactly the copied ones when the check's count is what COPY loaded (a copied row of any
other day, or of none, makes it smaller); the INSERT then takes those rows only.
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
    drop_table_sql,
    empty_table_sql,
    insert_from_staging_sql,
    insert_load_history_sql,
    rows_of_day_sql,
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

    Use it as a context manager: its staging tables live for the whole run (emptied between days) and
    are dropped when the `with` block ends, whether the run succeeded or not.
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
        self._recovered_days: set[str] = set()  # days whose dead loads the run's first look cleared
        self._staging_created = False
        # The days whose rows the staging tables hold (each checked to be its day's when it was loaded);
        # None: not known (a day failed), so the next day empties them first.
        self._staged_days: Optional[set[str]] = set()

    def __enter__(self) -> WarehouseLoader:
        return self

    def __exit__(self, *_: object) -> None:
        self.drop_staging()

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
        if self._recover(partition_keys):
            self._recovered_days.update(partition_keys)
        # an existing table gets the columns a newer contract added
        self.session.ensure_tables([(table, self.target.table_name(table.name)) for table in self.tables])
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

    def drop_staging(self) -> None:
        """Drop the run's staging tables (the `with` block's end); the next load drops what this could not
        (snowflake_recovery.py), and temporary ones end with the session anyway."""
        if not self._staging_created:
            return
        self._staging_created, self._staged_days = False, set()
        for table in self.tables:
            try:
                self.session.execute(drop_table_sql(self.staging_name(table.name)))
            except Exception as error:
                self.session.log(f"could not drop {self.staging_name(table.name)}: {error}")

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
        if partition_key not in self._recovered_days:  # prepare() did not cover it, or could not look
            self._recover([partition_key])
        if not self._staging_created:  # DDL: before BEGIN, as it would commit the transaction in Snowflake
            self._staging_created = True  # even if a CREATE fails: drop_staging() then drops what exists
            for table in self.tables:
                self.session.execute(
                    create_staging_sql(table, self.staging_name(table.name), self.target.staging_tables)
                )
        staged, self._staged_days = self._staged_days, None  # None until the day's COMMIT went through
        empty_first = staged is None or partition_key in staged  # the same day again: its old rows would count
        loads = self._replace_partition(partition_key, files, file_format, run_id, empty_first)
        self._staged_days = {partition_key} | (set() if empty_first or staged is None else staged)
        return loads

    def _replace_partition(
        self, partition_key: str, files: Mapping[str, PublishedObject], file_format: str, run_id: str,
        empty_staging: bool,
    ) -> list[TableLoad]:  # fmt: skip
        day = date.fromisoformat(partition_key)
        name = transaction_name(target_id(self.session.database, self.session.schema, self.target.table_prefix),
                                day, self.load_token)  # fmt: skip

        def failure(progress: Progress, outcome: str, error: Exception) -> LoadError:
            return LoadError(load_failure_message(partition_key, progress, name, error, outcome))

        with replace_in_transaction(self.session, failure, name) as progress:
            progress.step = "DELETE"
            for table in self.tables if empty_staging else ():
                progress.subject = f"staging table {self.staging_name(table.name)}"
                self.session.execute(empty_table_sql(self.staging_name(table.name)))
            copied: dict[str, int] = {}  # table -> rows COPY loaded
            deleted: dict[str, int] = {}
            for table in self.tables:
                file = files[table.name]
                progress.subject = f"table {table.name} from {file.uri}"
                progress.step = "DELETE"
                self.session.execute(delete_day_sql(self.target.table_name(table.name)), (day,))
                deleted[table.name] = self.session.rowcount
                if file.rows:  # a 0-row file is not copied: COPY's answer for one differs between engines
                    progress.step = "COPY"
                    copied[table.name] = self._copy(table, partition_key, file, file_format)
            self._check_partition_dates(progress, day, files, copied)
            for table in self.tables:
                if table.name in copied:
                    progress.step, progress.subject = "INSERT", f"table {table.name} from {files[table.name].uri}"
                    self._insert_from_staging(table, day, copied[table.name])
            loads = [
                TableLoad(partition_key, table.name, self.qualified(self.target.table_name(table.name)),
                          files[table.name].uri, files[table.name].rows, copied.get(table.name, 0), deleted[table.name])
                for table in self.tables
            ]  # fmt: skip
            progress.step, progress.subject = "load history", f"{len(loads)} tables"
            self._record_loads(loads, day, file_format, run_id)
        return loads

    def _copy(self, table: Table, partition_key: str, file: PublishedObject, file_format: str) -> int:
        day_path = self.publishing.day_path(table.name, partition_key)
        expected_key = self.publishing.prefix + "/" + day_path + file.file_name
        if file.key != expected_key:  # the stage can only reach files under its own prefix
            raise LoadError(f"the manifest's key {file.key!r} is not under the stage's {expected_key!r}")
        staging = self.staging_name(table.name)
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

    def _check_partition_dates(
        self, progress: Progress, day: date, files: Mapping[str, PublishedObject], copied: Mapping[str, int]
    ) -> None:
        """Every copied row belongs to the day: one query over all the staging tables. The rows they hold
        of the run's earlier days are of other days, so the day's rows are exactly the copied ones when
        their counts agree."""
        if not copied:
            return
        progress.step, progress.subject = "partition_date check", f"tables {', '.join(copied)}"
        counts = self.session.execute(
            rows_of_day_sql([self.staging_name(table) for table in copied]),
            [value for table in copied for value in (table, day)],
        )
        of_day = {str(row["table_name"]): int(row["n"]) for row in counts}
        wrong = {table: rows - of_day.get(table, 0) for table, rows in copied.items() if of_day.get(table) != rows}
        if wrong:
            raise LoadError(
                f"rows with a partition_date other than {day.isoformat()} (or none): "
                + ", ".join(f"{table} {n} in {files[table].uri}" for table, n in wrong.items())
            )

    def _insert_from_staging(self, table: Table, day: date, rows_copied: int) -> None:
        staging = self.staging_name(table.name)
        self.session.execute(insert_from_staging_sql(table, self.target.table_name(table.name), staging), (day,))
        if self.session.cursor.rowcount != rows_copied:
            raise LoadError(f"COPY loaded {rows_copied} rows but INSERT moved {self.session.cursor.rowcount}")

    def _record_loads(self, loads: list[TableLoad], day: date, file_format: str, run_id: str) -> None:
        """One load history row per table, in one statement."""
        loaded_at = datetime.now(timezone.utc)
        values = [value for load in loads for value in (
            uuid.uuid4().hex, run_id, day, self.target.table_name(load.table), file_format, json.dumps([load.file_uri]),
            load.rows_in_file, load.rows_loaded, load.rows_deleted, loaded_at)]  # fmt: skip
        self.session.execute(insert_load_history_sql(self.target.load_history_table, len(loads)), values)

    def _recover(self, partition_keys: Collection[str]) -> bool:
        """Whether the look at the days' dead loads went through (see snowflake_recovery.py)."""
        if not partition_keys:
            return False
        try:
            recover(self.session, self.target, [date.fromisoformat(k) for k in partition_keys], self.load_token, self.warn)
        except Exception as error:  # best effort: a dead load's locks then cost at most LOCK_TIMEOUT
            self.warn(f"could not look for earlier loads of {', '.join(partition_keys)} that never finished: {error}")
            return False
        return True


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
