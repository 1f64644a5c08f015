"""One Snowflake connection's statements, and the transaction that replaces data all or nothing.

Both loads (a day of the conversation tables, a whole dimension table) replace what a table holds
inside one transaction, so a reader sees the old rows or the new ones and never a mix, and a failure
leaves every table as it was:

    with replace_in_transaction(session, failure) as progress:
        progress.step = "DELETE"
        ...
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Callable, Mapping, Optional, Sequence

from genesys_pipeline.contracts.columns import Table
from genesys_pipeline.steps.snowflake_sql import (
    CURRENT_TARGET_SQL,
    TABLE_COLUMNS_SQL,
    add_column_sql,
    begin_sql,
    create_table_sql,
    tables_columns_sql,
)


class SnowflakeSession:
    """Statements on one `snowflake.connector` connection, answered as dicts with lower-case keys.

    `log` receives each statement's text, never its bound values: those may be credentials (the
    stand-in's stage keys) or customer data.
    """

    def __init__(self, connection: Any, log: Callable[[str], None] = lambda message: None) -> None:
        from snowflake.connector import (
            DictCursor,  # imported on use: the connector is slow to import
        )

        self.cursor = connection.cursor(DictCursor)
        self.log = log
        self.database: Optional[str] = None
        self.schema: Optional[str] = None

    def execute(self, sql: str, params: Optional[Sequence[Any]] = None) -> list[dict[str, Any]]:
        self.log(" ".join(sql.split()))
        self.cursor.execute(sql, params)
        if self.cursor.description is None:
            return []
        return [{str(key).lower(): value for key, value in row.items()} for row in self.cursor.fetchall()]

    def execute_many(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        self.log(f"{' '.join(sql.split())} -- {len(rows)} rows")
        self.cursor.executemany(sql, rows)

    @property
    def rowcount(self) -> int:
        """Rows the last DML statement touched (0 when the connector does not say)."""
        return max(self.cursor.rowcount or 0, 0)

    def resolve_target(self, error: type[Exception]) -> None:
        """The session's database and schema, where the load's tables live; both must be set."""
        (row,) = self.execute(CURRENT_TARGET_SQL)
        self.database, self.schema = row["database_name"], row["schema_name"]
        if not (self.database and self.schema):
            raise error(
                "The snowflake resource must set a database and a schema: they are the load's target "
                f"(the session has database={self.database!r}, schema={self.schema!r})"
            )

    def qualified(self, name: str) -> str:
        return f"{self.database}.{self.schema}.{name}"

    def ensure_table(self, table: Table, name: str) -> list[str]:
        """Create the table if it is missing, and add the contract's columns that an existing table
        lacks (one made by an earlier version); returns the added columns. DDL: outside transactions."""
        self.execute(create_table_sql(table, name))
        present = {str(row["column_name"]).lower() for row in self.execute(TABLE_COLUMNS_SQL, (self.schema, name))}
        missing = [column for column in table.columns if column.name not in present]
        for column in missing:
            self.execute(add_column_sql(name, column))
        return [column.name for column in missing]

    def ensure_tables(
        self, tables: Sequence[tuple[Table, str]], others: Optional[Mapping[str, str]] = None
    ) -> dict[str, list[str]]:
        """`ensure_table` for several tables (contract, name) in one look at their columns: only a missing
        table is created, and only a missing column added; returns the columns added to each name.
        `others`: more tables (name -> its CREATE TABLE IF NOT EXISTS) looked at in the same query and
        created only if missing."""
        others = others or {}
        if not tables and not others:
            return {}
        names = [name for _, name in tables] + list(others)
        rows = self.execute(tables_columns_sql(len(names)), (self.schema, *names))
        present: dict[str, set[str]] = {}
        for row in rows:
            present.setdefault(str(row["table_name"]).upper(), set()).add(str(row["column_name"]).lower())
        for name, create in others.items():
            if name.upper() not in present:
                self.execute(create)
        added: dict[str, list[str]] = {}
        for table, name in tables:
            if name.upper() not in present:
                self.execute(create_table_sql(table, name))  # IF NOT EXISTS: a table made meanwhile stays
                added[name] = []
                continue
            missing = [column for column in table.columns if column.name not in present[name.upper()]]
            for column in missing:
                self.execute(add_column_sql(name, column))
            added[name] = [column.name for column in missing]
        return added


@dataclasses.dataclass
class Progress:
    """Where a transaction is, for the error if it fails: the step and what it works on, and whether
    the ROLLBACK after a failure went through (False: the transaction may still be open in Snowflake)."""

    step: str = "BEGIN"
    subject: str = ""
    rolled_back: bool = False
    rollback_error: str = ""  # why the ROLLBACK could not be sent


# (the step, what it worked on, whether ROLLBACK was sent, the error) -> the exception to raise
Failure = Callable[[Progress, str, Exception], Exception]


@contextmanager
def replace_in_transaction(session: SnowflakeSession, failure: Failure, name: str = "") -> Iterator[Progress]:
    """BEGIN (named `name`, an identifier, if given), the caller's statements, COMMIT; on any error
    ROLLBACK, then raise `failure(...)`.

    The outcome passed to `failure` says truthfully what happened to the data: either the ROLLBACK
    went through, or it could not be sent, nothing was committed and the transaction may still be open
    (a client that cannot reach Snowflake leaves it detached, holding its locks, until it is aborted).
    """
    progress = Progress()
    session.execute(begin_sql(name))
    try:
        yield progress
        progress.step, progress.subject = "COMMIT", ""
        session.execute("COMMIT")
    except Exception as error:
        try:
            session.execute("ROLLBACK")
            progress.rolled_back, outcome = True, "rolled back"
        except Exception as rollback_error:  # the original error matters more; say both
            session.log(f"ROLLBACK failed too: {rollback_error}")
            progress.rollback_error = str(rollback_error)
            outcome = (
                f"nothing was committed, but the ROLLBACK could not be sent ({rollback_error}), so the "
                "transaction may stay open in Snowflake, holding its locks, until it is aborted"
            )
        raise failure(progress, outcome, error) from error
