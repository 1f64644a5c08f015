"""The dimension assets: `genesys_queues`, `genesys_wrapup_codes`, `genesys_users`, `genesys_divisions`.

Each one reads a Genesys listing (users with `state=any`, deleted agents included) and replaces its own
Snowflake table (dimension_tables.py: DIM_QUEUES, DIM_WRAPUP_CODES, DIM_USERS, DIM_DIVISIONS, with
`SnowflakeTarget.table_prefix` in front) with it, in the `snowflake` resource's database and schema:

    SELECT CURRENT_DATABASE(), CURRENT_SCHEMA()                   the target (both must be set)
    CREATE TABLE IF NOT EXISTS <table> (...)                      before BEGIN: DDL commits in Snowflake
    BEGIN
      DELETE FROM <table>
      INSERT INTO <table> (...) VALUES (%s, ...)                  executemany, INSERT_BATCH_ROWS rows a statement
      SELECT COUNT(*), COUNT(DISTINCT <id>) FROM <table>          must both be the listing's entities
    COMMIT                                                        (ROLLBACK on any error: the table is as before)

Values travel only as bind parameters, so names arrive exactly as the API sent them. An entity listed
twice (a listing that shifted between pages) is loaded once; an entity without an id, or with a value
of the wrong type, fails the load before any SQL runs. An empty listing empties the table (it is a
snapshot: an organisation may have no wrap-up codes). The assets are unpartitioned (a snapshot
of the directory now, not data of a day), run by the `genesys_dimensions` job and its daily schedule,
share the `genesys_api` pool with the other Genesys-calling steps, and are safe to retry: every run
replaces the whole table.
"""


import dataclasses
import time
from collections import Counter
from datetime import datetime, timezone
from typing import Any, Callable, Iterable, Mapping, Optional

import dagster as dg
from dagster_snowflake import SnowflakeResource

from genesys_pipeline.contracts.dimension_tables import DIMENSIONS, Dimension
from genesys_pipeline.defs.partitions import retry_policy
from genesys_pipeline.resources.genesys import GenesysResource
from genesys_pipeline.resources.warehouse import SnowflakeTarget
from genesys_pipeline.steps.load import create_table_sql

DIMENSIONS_GROUP = "genesys_dimensions"
INSERT_BATCH_ROWS = 1000  # rows per INSERT statement: well inside Snowflake's statement size limit


class DimensionLoadError(Exception):
    """A dimension table could not be replaced; the message names the table and the step."""


@dataclasses.dataclass(frozen=True)
class DimensionLoad:
    table: str  # DB.SCHEMA.TABLE
    rows: int
    rows_replaced: int  # what the table held before
    duplicates_dropped: int
    loaded_at: datetime


def asset_name(dimension: Dimension) -> str:
    """`dim_queues` -> `genesys_queues`."""
    return "genesys_" + dimension.name.removeprefix("dim_")


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
) -> DimensionLoad:
    """Replace the dimension's table with `entities` in one transaction (see the module docstring)."""
    from snowflake.connector import DictCursor

    unique, duplicates = unique_entities(entities)
    now = datetime.now(timezone.utc)
    loaded_at = now.replace(microsecond=now.microsecond // 1000 * 1000)  # milliseconds, as Genesys' own times
    rows = [dimension.row(entity, loaded_at, run_id) for entity in unique]  # bad values fail before any SQL
    name = target.table_name(dimension.name)
    columns = [column.upper() for column in dimension.column_names]
    cursor = connection.cursor(DictCursor)

    def execute(sql: str, params: Any = None) -> list[dict[str, Any]]:
        log(" ".join(sql.split()))
        cursor.execute(sql, params)
        return [{str(k).lower(): v for k, v in row.items()} for row in cursor.fetchall()] if cursor.description else []

    (where,) = execute("SELECT CURRENT_DATABASE() AS DATABASE_NAME, CURRENT_SCHEMA() AS SCHEMA_NAME")
    if not (where["database_name"] and where["schema_name"]):
        raise DimensionLoadError(
            "The snowflake resource must set a database and a schema: they are the load's target "
            f"(the session has database={where['database_name']!r}, schema={where['schema_name']!r})"
        )
    qualified = f"{where['database_name']}.{where['schema_name']}.{name}"
    execute(create_table_sql(dimension.table, name))

    insert = f"INSERT INTO {name} ({', '.join(columns)}) VALUES ({', '.join(['%s'] * len(columns))})"
    step = "BEGIN"
    execute("BEGIN")
    try:
        step = "DELETE"
        execute(f"DELETE FROM {name}")
        replaced = max(cursor.rowcount or 0, 0)
        step = "INSERT"
        inserted = 0
        for start in range(0, len(rows), INSERT_BATCH_ROWS):
            batch = rows[start : start + INSERT_BATCH_ROWS]
            log(f"{insert} -- {len(batch)} rows")
            cursor.executemany(insert, batch)
            inserted += len(batch)
        step = "count"
        (count,) = execute(f"SELECT COUNT(*) AS N, COUNT(DISTINCT {dimension.id_column.upper()}) AS IDS FROM {name}")
        if not int(count["n"]) == int(count["ids"]) == len(rows) == inserted:
            raise DimensionLoadError(
                f"{len(rows)} entities were inserted but the table has {count['n']} rows with {count['ids']} ids"
            )
        step = "COMMIT"
        execute("COMMIT")
    except Exception as error:
        try:
            execute("ROLLBACK")
        except Exception as rollback_error:  # the original error matters more
            log(f"ROLLBACK of {qualified} failed too: {rollback_error}")
        raise DimensionLoadError(
            f"Replacing {qualified} failed at {step}; rolled back, the table is as it was before: {error}"
        ) from error
    return DimensionLoad(qualified, len(rows), replaced, duplicates, loaded_at)


def _table_schema(dimension: Dimension) -> dg.TableSchema:
    return dg.TableSchema(
        columns=[
            dg.TableColumn(
                column.name.upper(),
                column.snowflake_type,
                description=column.description or None,
                constraints=dg.TableColumnConstraints(nullable=column.nullable, unique=column.name == dimension.id_column),
            )
            for column in dimension.table.columns
        ]
    )


def _metadata(dimension: Dimension, load: DimensionLoad, unique_states: Optional[Counter], seconds: float) -> dict[str, Any]:
    metadata: dict[str, Any] = {
        "dagster/table_name": dg.MetadataValue.text(load.table),
        "dagster/row_count": dg.MetadataValue.int(load.rows),
        "dagster/column_schema": _table_schema(dimension),
        "rows": dg.MetadataValue.int(load.rows),
        "rows_replaced": dg.MetadataValue.int(load.rows_replaced),
        "duplicates_dropped": dg.MetadataValue.int(load.duplicates_dropped),
        "loaded_at": dg.MetadataValue.text(load.loaded_at.isoformat()),
        "wall_seconds": dg.MetadataValue.float(round(seconds, 2)),
    }
    if unique_states is not None:
        metadata["rows_by_state"] = dg.MetadataValue.json(dict(sorted(unique_states.items())))
    return metadata


def _dimension_asset(dimension: Dimension) -> dg.AssetsDefinition:
    @dg.asset(
        name=asset_name(dimension),
        group_name=DIMENSIONS_GROUP,
        kinds={"genesys", "snowflake"},
        pool="genesys_api",  # a listing is a few pages of the same OAuth client's rate budget
        retry_policy=retry_policy,
        description=f"{dimension.table.description} Loaded into {dimension.name.upper()} (plus "
        "SnowflakeTarget.table_prefix), replaced as a whole in one transaction; names exactly as the API "
        "sends them.",
    )
    def _asset(
        context: dg.AssetExecutionContext,
        genesys: GenesysResource,
        snowflake: SnowflakeResource,
        snowflake_target: SnowflakeTarget,
    ) -> dg.MaterializeResult:
        started = time.monotonic()
        with genesys.get_client() as client:
            entities = list(getattr(client, dimension.listing)(**dimension.listing_args))
        context.log.info(f"{dimension.listing}: {len(entities)} entities")
        with snowflake.get_connection() as connection:
            load = load_dimension(connection, snowflake_target, dimension, entities, context.run.run_id,
                                  log=context.log.debug)  # fmt: skip
        context.log.info(
            f"{load.table}: {load.rows} rows (replaced {load.rows_replaced}; {load.duplicates_dropped} duplicates dropped)"
        )
        states = None
        if "state" in dimension.column_names:
            states = Counter(str(e.get("state")) for e in unique_entities(entities)[0])
        return dg.MaterializeResult(metadata=_metadata(dimension, load, states, time.monotonic() - started))

    return _asset


genesys_queues, genesys_wrapup_codes, genesys_users, genesys_divisions = (
    _dimension_asset(dimension) for dimension in DIMENSIONS
)
DIMENSION_ASSETS = [genesys_queues, genesys_wrapup_codes, genesys_users, genesys_divisions]
