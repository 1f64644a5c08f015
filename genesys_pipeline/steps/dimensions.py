"""Replace a dimension table (queues, wrap-up codes, users, divisions) with a Genesys listing.

    SELECT CURRENT_DATABASE(), CURRENT_SCHEMA()                   the target (both must be set)
    ALTER SESSION SET LOCK_TIMEOUT = ..., STATEMENT_TIMEOUT_...  SnowflakeTarget's timeouts, and a QUERY_TAG
    ALTER SESSION SET QUERY_TAG = %s                              naming the run and the dimension
    CREATE TABLE IF NOT EXISTS <table> (...)                      before BEGIN: DDL commits in Snowflake
    SELECT COLUMN_NAME FROM INFORMATION_SCHEMA.COLUMNS ...        a table made before a column was added to
    ALTER TABLE <table> ADD COLUMN IF NOT EXISTS <column> <type>  the contract gets it (nullable: rows exist)
    BEGIN TRANSACTION NAME GENESYS_DIMENSION_<TABLE>            named, so SHOW TRANSACTIONS says what it is
      DELETE FROM <table>
      INSERT INTO <table> (...) VALUES (%s, ...)                  executemany, INSERT_BATCH_ROWS rows a statement
      SELECT COUNT(*), COUNT(DISTINCT <id>) FROM <table>          must both be the listing's entities
    COMMIT                                                        (ROLLBACK on any error: the table is as before)

Values travel only as bind parameters, so names arrive exactly as the API sent them. An entity listed
twice (a listing that shifted between pages) is loaded once; an entity without an id, or with a value
of the wrong type, fails the load before any SQL runs. An empty listing empties the table (it is a
snapshot: an organisation may have no wrap-up codes). A load that meets the lock of another one that
never ended (a killed process: Snowflake aborts such a transaction after about 5 minutes) fails after
SnowflakeTarget.lock_timeout_seconds with Snowflake's LOCK_TIMEOUT error instead of waiting 12 hours;
the step's retry then finds the table free. Codes that conversations carry but the wrap-up
code listing lacks (`UNLISTED_WRAPUP_CODES`, the names the flatten resolves too) are added with
listed = FALSE, unless the listing has them. Users' e-mail addresses and user names are kept, hashed
or dropped as GENESYS_PII_EMPLOYEE_EMAILS says (steps/privacy.py) before any row is built.
"""

from __future__ import annotations

import dataclasses
import json
from datetime import datetime, timezone
from typing import Any, Callable, Iterable, Mapping

from genesys_pipeline.contracts.dimension_tables import WRAPUP_CODES, Dimension
from genesys_pipeline.resources.warehouse import SnowflakeTarget
from genesys_pipeline.steps.flatten.lookups import UNLISTED_WRAPUP_CODES
from genesys_pipeline.steps.privacy import Protector
from genesys_pipeline.steps.snowflake_session import (
    Progress,
    SnowflakeSession,
    replace_in_transaction,
)
from genesys_pipeline.steps.snowflake_sql import (
    QUERY_TAG_SQL,
    count_rows_and_ids_sql,
    insert_values_sql,
    session_timeouts_sql,
)

INSERT_BATCH_ROWS = 1000  # rows per INSERT statement: well inside Snowflake's statement size limit
# Per table, id -> name of entities the API uses but does not list: an analyst joining conversations to
# the table must find them too. Only id and name are known.
UNLISTED_ENTITIES: Mapping[str, Mapping[str, str]] = {WRAPUP_CODES.name: UNLISTED_WRAPUP_CODES}


class DimensionLoadError(Exception):
    """A dimension table could not be replaced; the message names the table and the step."""


@dataclasses.dataclass(frozen=True)
class DimensionLoad:
    table: str  # DB.SCHEMA.TABLE
    rows: int
    rows_replaced: int  # what the table held before
    duplicates_dropped: int
    loaded_at: datetime
    unlisted_added: int = 0  # rows added with listed = FALSE (UNLISTED_ENTITIES the listing lacked)


def unique_entities(entities: Iterable[Mapping[str, Any]], id_field: str = "id") -> tuple[list[Mapping[str, Any]], int]:
    """The entities with an id seen before dropped (the first one kept); and how many were dropped."""
    seen: set[Any] = set()
    unique = []
    dropped = 0
    for entity in entities:
        entity_id = entity.get(id_field) if isinstance(entity, Mapping) else None
        if entity_id is not None and entity_id in seen:
            dropped += 1
            continue
        seen.add(entity_id)
        unique.append(entity)
    return unique, dropped


def load_dimension(
    connection: Any,
    target: SnowflakeTarget,
    dimension: Dimension,
    entities: Iterable[Mapping[str, Any]],
    run_id: str,
    log: Callable[[str], None] = lambda message: None,
    protector: Protector | None = None,
) -> DimensionLoad:
    """Replace the dimension's table with `entities` in one transaction (see the module docstring).
    `protector`: the personal-data policy (users' e-mail addresses), applied before the rows are built."""
    unique, duplicates = unique_entities(entities)
    if protector is not None:
        unique = [protector.protect_entity(dimension.name, entity) for entity in unique]
    now = datetime.now(timezone.utc)
    loaded_at = now.replace(microsecond=now.microsecond // 1000 * 1000)  # milliseconds, as Genesys' own times
    rows = [dimension.row(entity, loaded_at, run_id) for entity in unique]  # bad values fail before any SQL
    listed_ids = {entity.get("id") for entity in unique}
    unlisted = UNLISTED_ENTITIES.get(dimension.name, {})
    added = [{"id": i, "name": name} for i, name in unlisted.items() if i not in listed_ids]
    rows += [dimension.row(entity, loaded_at, run_id, listed=False) for entity in added]
    name = target.table_name(dimension.name)
    session = SnowflakeSession(connection, log)
    session.resolve_target(DimensionLoadError)
    session.execute(session_timeouts_sql(target.lock_timeout_seconds, target.statement_timeout_seconds))
    session.execute(QUERY_TAG_SQL, (json.dumps({"pipeline": "genesys_pipeline", "run_id": run_id, "dimension": name}),))
    qualified = session.qualified(name)
    session.ensure_table(dimension.table, name)

    def failure(progress: Progress, outcome: str, error: Exception) -> DimensionLoadError:
        return DimensionLoadError(
            f"Replacing {qualified} failed at {progress.step}; {outcome}, the table is as it was before: {error}"
        )

    insert = insert_values_sql(name, [column.upper() for column in dimension.column_names])
    with replace_in_transaction(session, failure, f"GENESYS_DIMENSION_{name.upper()}") as progress:
        progress.step = "DELETE"
        session.execute(f"DELETE FROM {name}")
        replaced = session.rowcount
        progress.step = "INSERT"
        for start in range(0, len(rows), INSERT_BATCH_ROWS):
            session.execute_many(insert, rows[start : start + INSERT_BATCH_ROWS])
        progress.step = "count"
        (count,) = session.execute(count_rows_and_ids_sql(name, dimension.id_column.upper()))
        if not int(count["n"]) == int(count["ids"]) == len(rows):
            raise DimensionLoadError(
                f"{len(rows)} entities were inserted but the table has {count['n']} rows with {count['ids']} ids"
            )
    return DimensionLoad(qualified, len(rows), replaced, duplicates, loaded_at, len(added))
