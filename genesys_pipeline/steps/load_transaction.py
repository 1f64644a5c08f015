"""The transaction that replaces a run's days in the conversation tables (steps/load.py's docstring has
its statements), and what a failure tells the user."""

from __future__ import annotations

import dataclasses
import json
import uuid
from datetime import date, datetime, timezone
from typing import Any, Mapping, Sequence

from genesys_pipeline.contracts.columns import Table
from genesys_pipeline.contracts.manifests import PublishedObject
from genesys_pipeline.resources.warehouse import S3Publishing, SnowflakeTarget
from genesys_pipeline.steps.snowflake_recovery import target_id, transaction_name
from genesys_pipeline.steps.snowflake_session import (
    Progress,
    SnowflakeSession,
    replace_in_transaction,
)
from genesys_pipeline.steps.snowflake_sql import (
    copy_sql,
    days_condition,
    delete_days_sql,
    insert_from_staging_sql,
    insert_load_history_sql,
    rows_by_day_sql,
)


class LoadError(Exception):
    """The run's days could not be loaded; the message names the days, table, file and step."""


@dataclasses.dataclass(frozen=True)
class DayFiles:
    """One day's published files (its S3 manifest): contracts/tables.py name -> object, and their format."""

    partition_key: str
    files: Mapping[str, PublishedObject]
    file_format: str


@dataclasses.dataclass(frozen=True)
class TableLoad:
    partition_key: str
    table: str  # contracts/tables.py name
    target: str  # DB.SCHEMA.TABLE in Snowflake
    file_uri: str
    rows_in_file: int
    rows_loaded: int
    rows_deleted: int


class RunTransaction:
    """The transaction of `WarehouseLoader.load_partitions` (steps/load.py's docstring): all the run's days
    in every table, statements per table; the staging tables are made (for `copied_tables`) before."""

    def __init__(
        self, session: SnowflakeSession, target: SnowflakeTarget, publishing: S3Publishing, tables: Sequence[Table],
        load_token: str,
    ) -> None:  # fmt: skip
        self.session, self.target, self.publishing, self.tables = session, target, publishing, tables
        self.load_token = load_token
        self.deleted: dict[tuple[str, str], int] = {}  # (table, day) -> rows the table held of the day
        self.copied: dict[tuple[str, str], int] = {}  # (table, day) -> rows COPY loaded from the day's file

    def staging_name(self, table: str) -> str:
        return self.target.staging_name(table, self.load_token)

    def replace(self, days: Sequence[DayFiles], run_id: str, copied_tables: Sequence[Table]) -> list[TableLoad]:
        """The days (sorted, validated) in one transaction; a load per day and table, day by day."""
        self.days, self.run_id, self.copied_tables = days, run_id, copied_tables
        self.dates = [date.fromisoformat(day.partition_key) for day in days]
        self.deleted, self.copied = {}, {}
        keys = [day.partition_key for day in self.days]
        where = target_id(self.session.database, self.session.schema, self.target.table_prefix)
        name = transaction_name(where, self.dates, self.load_token)

        def failure(progress: Progress, outcome: str, error: Exception) -> LoadError:
            return LoadError(load_failure_message(keys, progress, name, error, outcome))

        with replace_in_transaction(self.session, failure, name) as progress:
            self._delete(progress)
            for table in self.copied_tables:
                self._copy(progress, table)
            self._check_partition_dates(progress)
            for table in self.copied_tables:
                self._insert(progress, table)
            loads = [
                TableLoad(day.partition_key, table.name, self.session.qualified(self.target.table_name(table.name)),
                          day.files[table.name].uri, day.files[table.name].rows,
                          self.copied.get((table.name, day.partition_key), 0),
                          self.deleted.get((table.name, day.partition_key), 0))
                for day in self.days for table in self.tables
            ]  # fmt: skip
            progress.step, progress.subject = "load history", f"{len(self.tables)} tables" + (
                f" and {len(self.days)} days" if len(self.days) > 1 else "")  # fmt: skip
            self._record(loads)
        return loads

    def _delete(self, progress: Progress) -> None:
        """Each table's rows of the days; for several days, counted first (one query) for the load history."""
        condition, binds = days_condition(self.dates)
        targets = {table.name: self.target.table_name(table.name) for table in self.tables}
        if len(self.days) > 1:
            progress.step, progress.subject = "count of the rows to replace", f"{len(targets)} tables"
            rows = self.session.execute(rows_by_day_sql(list(targets.values()), condition),
                                        [value for table in targets for value in (table, *binds)])  # fmt: skip
            for row in rows:
                self.deleted[(str(row["table_name"]), _key(row["partition_date"]))] = int(row["n"])
        progress.step = "DELETE"
        for table, target in targets.items():
            progress.subject = f"table {table}"
            self.session.execute(delete_days_sql(target, condition), binds)
            if len(self.days) == 1:
                self.deleted[(table, self.days[0].partition_key)] = self.session.rowcount
                continue
            counted = sum(n for (name, _), n in self.deleted.items() if name == table)
            if self.session.rowcount != counted:
                raise LoadError(f"DELETE removed {self.session.rowcount} rows but the table held {counted} of these "
                                "days a moment before: is another load writing them?")  # fmt: skip

    def _copy(self, progress: Progress, table: Table) -> None:
        """One COPY per file format (one, unless the days were published in different formats)."""
        publishing = self.publishing
        formats = sorted({day.file_format for day in self.days if day.files[table.name].rows})
        for file_format in formats:
            days = [day for day in self.days if day.files[table.name].rows and day.file_format == file_format]
            files = [day.files[table.name] for day in days]
            progress.step, progress.subject = "COPY", f"table {table.name} from {', '.join(f.uri for f in files)}"
            names = []
            for day, file in zip(days, files):
                day_path = publishing.day_path(table.name, day.partition_key)
                if file.key != f"{publishing.prefix}/{day_path}{file.file_name}":  # the stage reaches its prefix only
                    raise LoadError(f"the manifest's key {file.key!r} is not under the stage's "
                                    f"{publishing.prefix}/{day_path!r}")  # fmt: skip
                names.append(day_path[len(table.name) + 1 :] + file.file_name)  # relative to the table's folder
            sql = copy_sql(self.staging_name(table.name), self.target.stage, f"{table.name}/", len(names), file_format)
            results = self.session.execute(sql, names)
            # By column name: Snowflake and the stand-in agree on names, not on every position, and a COPY
            # of zero files answers with a single `status` column. A row per file, named by its URL.
            if not any("rows_loaded" in result for result in results):
                raise LoadError(f"COPY processed no file: {results}")
            if len(results) != len(files):
                raise LoadError(f"COPY answered for {len(results)} files, {len(files)} were named: {results}")
            for day, file in zip(days, files):
                mine = [result for result in results if str(result.get("file", "")).endswith(file.key)]
                if len(mine) != 1 or mine[0].get("status") != "LOADED":
                    result = mine[0] if mine else {}
                    raise LoadError(f"COPY reported {result.get('status', 'nothing')} for {file.uri}: "
                                    f"{result.get('first_error')} (errors seen: {result.get('errors_seen')})")  # fmt: skip
                self.copied[(table.name, day.partition_key)] = int(mine[0]["rows_loaded"])

    def _check_partition_dates(self, progress: Progress) -> None:
        """Every copied row has its file's day: one query over all the staging tables, which hold only
        this transaction's copies, so a table's count of a day is short for a file with other dates."""
        if not self.copied_tables:
            return
        names = [table.name for table in self.copied_tables]
        progress.step, progress.subject = "partition_date check", f"tables {', '.join(names)}"
        counts = self.session.execute(rows_by_day_sql([self.staging_name(name) for name in names]), names)
        staged = {(str(row["table_name"]), _key(row["partition_date"])): int(row["n"]) for row in counts}
        if staged == {key: n for key, n in self.copied.items() if n}:
            return
        files = {(table, day.partition_key): day.files[table].uri for day in self.days for table in names}
        short = [f"{table} {n - staged.get((table, key), 0)} of {n} in {files[(table, key)]}"
                 for (table, key), n in self.copied.items() if staged.get((table, key), 0) < n]  # fmt: skip
        raise LoadError(
            "rows with a partition_date other than their file's day (or none): "
            + (", ".join(short) or f"the staging tables hold {staged}, COPY loaded {self.copied}")
        )

    def _insert(self, progress: Progress, table: Table) -> None:
        files = [day.files[table.name].uri for day in self.days if day.files[table.name].rows]
        progress.step, progress.subject = "INSERT", f"table {table.name} from {', '.join(files)}"
        staging = self.staging_name(table.name)
        self.session.execute(insert_from_staging_sql(table, self.target.table_name(table.name), staging))
        expected = sum(n for (name, _), n in self.copied.items() if name == table.name)
        if self.session.cursor.rowcount != expected:
            raise LoadError(f"COPY loaded {expected} rows but INSERT moved {self.session.cursor.rowcount}")

    def _record(self, loads: list[TableLoad]) -> None:
        """One load history row per table and day, in one statement."""
        loaded_at = datetime.now(timezone.utc)
        formats = {day.partition_key: day.file_format for day in self.days}
        values = [value for load in loads for value in (
            uuid.uuid4().hex, self.run_id, date.fromisoformat(load.partition_key), self.target.table_name(load.table),
            formats[load.partition_key], json.dumps([load.file_uri]), load.rows_in_file, load.rows_loaded,
            load.rows_deleted, loaded_at)]  # fmt: skip
        self.session.execute(insert_load_history_sql(self.target.load_history_table, len(loads)), values)


def _key(value: Any) -> str:
    """A PARTITION_DATE as the connector returns it (a date, or None) -> the partition key."""
    return value.isoformat() if isinstance(value, (date, datetime)) else str(value)


def describe_days(partition_keys: Sequence[str]) -> str:
    keys = sorted(partition_keys)
    return f"partition {keys[0]}" if len(keys) == 1 else f"partitions {', '.join(keys)}"


def load_failure_message(
    partition_keys: Sequence[str], progress: Progress, transaction: str, error: Exception, outcome: str
) -> str:
    """What a failed load tells the user: where it failed, and truthfully what became of the data (of
    every day of the run: they share one transaction)."""
    days = describe_days(partition_keys)
    where = f"Loading {days} failed at {progress.step} of {progress.subject or 'the transaction'}"
    next_load = f"{days.split(' ', 1)[1]}" if len(partition_keys) == 1 else "any of these days"
    still_open = (f"the transaction {transaction} may stay open in Snowflake, holding its locks, until the next "
                  f"load of {next_load} aborts it")  # fmt: skip
    if progress.step == "COMMIT":  # the COMMIT may have reached Snowflake before the error
        if progress.rolled_back:
            then = "if it did not, the ROLLBACK left every table as it was"
        else:
            then = f"the ROLLBACK could not be sent either ({progress.rollback_error}), so if it did not, {still_open}"
        return (f"{where}: {error}. Whether Snowflake applied the COMMIT is unknown; {then}. "
                f"A rerun replaces the {'day' if len(partition_keys) == 1 else 'days'} either way.")  # fmt: skip
    if progress.rolled_back:
        scope = "" if len(partition_keys) == 1 else " for every one of these days"
        return f"{where}; {outcome}, every table is as it was before{scope}: {error}"
    return (
        f"{where}: {error}. The ROLLBACK could not be sent ({progress.rollback_error}), so nothing was committed "
        f"and readers still see every table as it was before, but {still_open}."
    )
