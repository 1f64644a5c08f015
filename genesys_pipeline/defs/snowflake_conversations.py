"""`snowflake_conversations`: the six conversation tables in Snowflake, one day replaced at a time.

Tables (in the `snowflake` resource's database and schema, names from `SnowflakeTarget`):
CONVERSATIONS, PARTICIPANTS, SESSIONS, SEGMENTS, SESSION_METRICS, PARTICIPANT_ATTRIBUTES, typed as
`tables.py` says, list columns as VARIANT arrays; and GENESYS_LOAD_HISTORY, one row per table, day and
load (run id, files, rows COPY loaded, rows deleted, when).

Each day is loaded from the S3 objects its manifest lists, through the external stage over
S3Publishing's prefix, in one transaction over all six tables: DELETE the day, COPY the file into a
temporary table, INSERT with PARSE_JSON for the list columns, record the load, COMMIT. Any error rolls
the day back, so every table is exactly as before, and fails with the day, table, file and step.
The statements, in order: genesys_pipeline/steps/load.py.
"""


from typing import Any

import dagster as dg
from dagster_aws.s3 import S3Resource
from dagster_snowflake import SnowflakeResource

from genesys_pipeline.defs.partitions import (
    CONVERSATIONS_GROUP,
    backfill_policy,
    daily_partitions,
    retry_policy,
)
from genesys_pipeline.defs.s3_conversations import read_manifest
from genesys_pipeline.resources.warehouse import S3Publishing, SnowflakeTarget
from genesys_pipeline.steps.load import TableLoad, WarehouseLoader, published_files


@dg.asset(
    partitions_def=daily_partitions,
    deps=["s3_conversations"],
    group_name=CONVERSATIONS_GROUP,
    kinds={"snowflake"},
    backfill_policy=backfill_policy,
    retry_policy=retry_policy,
    description=__doc__,
)
def snowflake_conversations(
    context: dg.AssetExecutionContext,
    s3: S3Resource,
    s3_publishing: S3Publishing,
    snowflake: SnowflakeResource,
    snowflake_target: SnowflakeTarget,
) -> dg.MaterializeResult:
    client = s3.get_client()
    loads: list[TableLoad] = []
    with snowflake.get_connection() as connection:
        loader = WarehouseLoader(connection, snowflake_target, s3_publishing, log=context.log.debug)
        loader.prepare()
        for partition_key in context.partition_keys:
            manifest = read_manifest(client, s3_publishing, partition_key)
            if manifest.get("partition_key") != partition_key:
                raise ValueError(f"the S3 manifest of {partition_key} describes {manifest.get('partition_key')!r}")
            day = loader.load_partition(
                partition_key, published_files(manifest), manifest["format"], context.run.run_id
            )
            loads += day
            context.log.info(
                f"{partition_key}: loaded "
                + ", ".join(f"{load.table} {load.rows_loaded} (was {load.rows_deleted})" for load in day)
            )
    return dg.MaterializeResult(metadata=_metadata(loads, loader, s3_publishing, context.partition_keys))


def _metadata(
    loads: list[TableLoad], loader: WarehouseLoader, publishing: S3Publishing, partition_keys: list[str]
) -> dict[str, Any]:
    first = daily_partitions.time_window_for_partition_key(partition_keys[0])
    last = daily_partitions.time_window_for_partition_key(partition_keys[-1])
    rows_by_table: dict[str, int] = {}
    for load in loads:
        rows_by_table[load.target] = rows_by_table.get(load.target, 0) + load.rows_loaded
    lines = [
        f"| {load.partition_key} | {load.target} | {load.rows_loaded} | {load.rows_deleted} | {load.file_uri} |"
        for load in loads
    ]
    conversations = next(name for name in rows_by_table if name.endswith("CONVERSATIONS"))
    metadata: dict[str, Any] = {
        "dagster/table_name": dg.MetadataValue.text(conversations),
        "dagster/partition_row_count": dg.MetadataValue.int(rows_by_table[conversations]),
        "tables": dg.MetadataValue.json(sorted(rows_by_table)),
        "rows_loaded": dg.MetadataValue.int(sum(rows_by_table.values())),
        "files": dg.MetadataValue.json([load.file_uri for load in loads]),
        "stage": dg.MetadataValue.text(loader.qualified(loader.target.stage)),
        "stage_url": dg.MetadataValue.text(publishing.stage_url),
        "load_history_table": dg.MetadataValue.text(loader.qualified(loader.target.load_history_table)),
        "partitions": dg.MetadataValue.json(list(partition_keys)),
        "window_start": dg.MetadataValue.text(first.start.isoformat()),
        "window_end": dg.MetadataValue.text(last.end.isoformat()),
        "loads": dg.MetadataValue.md(
            "| day | table | rows loaded | rows replaced | file |\n|---|---|---|---|---|\n" + "\n".join(lines)
        ),
    }
    for name, rows in rows_by_table.items():
        metadata[f"rows_loaded_{name.rsplit('.', 1)[-1].lower()}"] = dg.MetadataValue.int(rows)
    return metadata
