"""The Snowflake load: replace the days of a run in the conversation tables, all or nothing.

A run's days (one for the daily schedule's runs, up to GENESYS_BACKFILL_DAYS_PER_RUN for a backfill's)
are replaced in ONE transaction over all the tables, with statements per table, not per table and day.
The tables are the selected ones (GENESYS_TABLES, `WarehouseLoader(tables=...)`): a table left out is
not created, and no statement below touches it; its rows stay as they were. "Each table" below is each
selected table (thirteen by default); "each copied table" each table with rows in one of the days' files.
`<days>` is `PARTITION_DATE = %s` for one day, `BETWEEN %s AND %s` for consecutive days, `IN (%s, ...)`.

Before the transaction (outside it: in Snowflake every DDL statement commits an open transaction):
    SELECT CURRENT_DATABASE(), CURRENT_SCHEMA()                          the target, for names and checks
    ALTER SESSION SET LOCK_TIMEOUT = n STATEMENT_TIMEOUT_IN_SECONDS = m  SnowflakeTarget's
    ALTER SESSION SET QUERY_TAG = %s                                     pipeline, run id, days, load token
    SHOW TRANSACTIONS; SELECT SYSTEM$ABORT_TRANSACTION(%s); ...          dead loads of the run's days (snowflake_recovery.py)
    SELECT TABLE_NAME, CREATED FROM INFORMATION_SCHEMA.TABLES ...; DROP TABLE IF EXISTS ...   their staging tables
    SELECT TABLE_NAME, COLUMN_NAME FROM INFORMATION_SCHEMA.COLUMNS ...   every table's columns and the load
                                                                         history's, in one query
    CREATE TABLE IF NOT EXISTS <table> (...)                             for a missing table, types from contracts/tables.py
    ALTER TABLE <table> ADD COLUMN IF NOT EXISTS <column> <type>         for columns an older table lacks
    CREATE TABLE IF NOT EXISTS <load history> (...)                      only if it is missing
    CREATE STAGE IF NOT EXISTS <stage> URL = %s STORAGE_INTEGRATION = <int> | CREDENTIALS = (AWS_KEY_ID = %s AWS_SECRET_KEY = %s)
    SHOW STAGES LIKE %s                                                  the stage must point at our prefix
    CREATE OR REPLACE TEMPORARY|TRANSIENT TABLE <table>_LOADING_<token> (...)   each copied table, VARIANT as VARCHAR
The transaction:
    BEGIN TRANSACTION NAME GENESYS_LOAD_<target>_<first YYYYMMDD>_<last YYYYMMDD>_<token>
      SELECT %s, PARTITION_DATE, COUNT(*) FROM <table> WHERE <days> GROUP BY PARTITION_DATE UNION ALL ...
                                                                         each table's rows per day, for the load
                                                                         history (only for a run of several days)
      DELETE FROM <table> WHERE <days>                                   each table; its count must be the query's
      COPY INTO <table>_LOADING_<token> FROM @<stage>/<table>/ FILES = (%s, ...)   each copied table: the
             FILE_FORMAT = (...) [MATCH_BY_COLUMN_NAME = CASE_INSENSITIVE]        days' files with rows, named
             FORCE = TRUE ON_ERROR = ABORT_STATEMENT                              year=YYYY/month=MM/day=DD/<file>;
                                                                         every file must be LOADED (a 0-row file is not copied)
      SELECT %s, PARTITION_DATE, COUNT(*) FROM <table>_LOADING_<token> GROUP BY PARTITION_DATE UNION ALL ...
                                                                         the partition_date check: per table and
                                                                         day, the rows COPY loaded from that day's file
      INSERT INTO <table> (...) SELECT ..., PARSE_JSON(<variant column>), ... FROM <table>_LOADING_<token>
                                                                         each copied table
      INSERT INTO <load history> SELECT %s, ..., PARSE_JSON(%s), ... UNION ALL ...   one row per table and day
    COMMIT                                   (ROLLBACK on any error: every table exactly as before, every day)
At the end of the run (`with WarehouseLoader(...)`, whether it succeeded or not):
    DROP TABLE IF EXISTS <table>_LOADING_<token>                         each copied table

So a run of 13 tables sends 77 statements whatever its number of days (all tables with rows, no dead
load, the tables up to date), 78 from two days on (the count); the views' statements come on top
(steps/views.py).

Why a staging table: the VARIANT columns travel as JSON array text. COPY ... MATCH_BY_COLUMN_NAME of a
Parquet string into a VARIANT column stores a JSON *string* in Snowflake, and COPY transformations
(`PARSE_JSON($1:col)`) are not available for CSV on the stand-in; `INSERT ... SELECT PARSE_JSON(...)`
from a session-private temporary table works the same way for both formats on both engines.
Why one transaction for the run: Dagster marks the whole run's step failed when a day fails, so the
tables now say the same: none of the days, or all of them.
Why FORCE = TRUE: a rerun writes the same key, often with the same bytes; Snowflake's load metadata
would skip it after the DELETE had emptied the day.
"""

from __future__ import annotations

from collections import Counter
from datetime import date
from typing import Any, Callable, Collection, Optional, Sequence

from genesys_pipeline.contracts.columns import Table
from genesys_pipeline.contracts.tables import TABLES
from genesys_pipeline.resources.warehouse import S3Publishing, SnowflakeTarget
from genesys_pipeline.steps.load_transaction import (  # noqa: F401  (LoadError, TableLoad: this module's API too)
    DayFiles,
    LoadError,
    RunTransaction,
    TableLoad,
    load_failure_message,
)
from genesys_pipeline.steps.snowflake_recovery import (
    configure_session,
    new_load_token,
    recover,
    tag_run,
)
from genesys_pipeline.steps.snowflake_session import SnowflakeSession
from genesys_pipeline.steps.snowflake_sql import (
    SHOW_STAGES_SQL,
    create_load_history_sql,
    create_stage_sql,
    create_staging_sql,
    drop_table_sql,
)


class WarehouseLoader:
    """Runs the statements of the module docstring on one connection (a `snowflake.connector` one).

    Use it as a context manager: its staging tables are dropped when the `with` block ends, whether the
    run succeeded or not.
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
        self._recovered_days: set[str] = set()  # days whose dead loads the first look cleared
        self._tag: Optional[tuple[Optional[str], tuple[str, ...]]] = None  # the QUERY_TAG's run and days
        self._staging: dict[str, None] = {}  # the staging tables made (in order), for drop_staging

    def __enter__(self) -> WarehouseLoader:
        return self

    def __exit__(self, *_: object) -> None:
        self.drop_staging()

    def staging_name(self, table: str) -> str:
        return self.target.staging_name(table, self.load_token)

    def qualified(self, name: str) -> str:
        return self.session.qualified(name)

    # ----- before the transaction

    def prepare(self, partition_keys: Collection[str] = (), run_id: Optional[str] = None) -> None:
        """Resolve the target schema, tag the session, recover from dead loads of the run's days
        (snowflake_recovery.py), and create the tables and the stage if they are missing."""
        self.session.resolve_target(LoadError)
        self._tag = (run_id, tuple(sorted(partition_keys)))
        configure_session(self.session, self.target, self.load_token, *self._tag)
        self._recover(partition_keys)
        # an existing table gets the columns a newer contract added
        self.session.ensure_tables(
            [(table, self.target.table_name(table.name)) for table in self.tables],
            others={self.target.load_history_table: create_load_history_sql(self.target.load_history_table)},
        )
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
        made, self._staging = list(self._staging), {}
        for name in made:
            try:
                self.session.execute(drop_table_sql(name))
            except Exception as error:
                self.session.log(f"could not drop {name}: {error}")

    # ----- the run's days

    def load_partitions(self, days: Sequence[DayFiles], run_id: str) -> list[TableLoad]:
        """Replace the days in every table, in one transaction: all tables and days, or none. Returns a
        load per day and table, day by day."""
        days = sorted(days, key=lambda day: day.partition_key)
        keys = [day.partition_key for day in days]
        self._validate(days)
        if self._tag != (run_id, tuple(keys)):  # prepare() tagged another run or other days
            self._tag = (run_id, tuple(keys))
            tag_run(self.session, run_id, keys, self.load_token)
        if not set(keys) <= self._recovered_days:  # prepare() did not cover them, or could not look
            self._recover(keys)
        copied_tables = [table for table in self.tables if any(day.files[table.name].rows for day in days)]
        for table in copied_tables:  # DDL: before BEGIN, as it would commit the transaction in Snowflake
            self._staging[self.staging_name(table.name)] = None  # even if the CREATE fails: dropped if it exists
            self.session.execute(create_staging_sql(table, self.staging_name(table.name), self.target.staging_tables))
        transaction = RunTransaction(self.session, self.target, self.publishing, self.tables, self.load_token)
        return transaction.replace(days, run_id, copied_tables)

    def _validate(self, days: Sequence[DayFiles]) -> None:
        if not days:
            raise LoadError("No day to load: the run has no partition")
        repeated = sorted(key for key, n in Counter(day.partition_key for day in days).items() if n > 1)
        if repeated:
            raise LoadError(f"Partitions {', '.join(repeated)} are listed twice: each day is loaded once per run")
        for day in days:
            missing = [table.name for table in self.tables if table.name not in day.files]
            if missing:
                raise LoadError(
                    f"Partition {day.partition_key}: the S3 manifest lists no file for {', '.join(missing)} "
                    "(published before the table was selected in GENESYS_TABLES?): materialize "
                    "flattened_conversations and s3_conversations for the day again"
                )
            unknown = sorted(set(day.files) - {table.name for table in TABLES})
            if unknown:
                raise LoadError(f"Partition {day.partition_key}: the S3 manifest lists unknown tables {unknown}")

    def _recover(self, partition_keys: Collection[str]) -> bool:
        """Whether the look at the days' dead loads went through (see snowflake_recovery.py)."""
        if not partition_keys:
            return False
        try:
            recover(self.session, self.target, [date.fromisoformat(k) for k in partition_keys], self.load_token, self.warn)
        except Exception as error:  # best effort: a dead load's locks then cost at most LOCK_TIMEOUT
            self.warn(f"could not look for earlier loads of {', '.join(partition_keys)} that never finished: {error}")
            return False
        self._recovered_days.update(partition_keys)
        return True
