"""`snowflake_conversations`: the wiring of the Snowflake load (steps/load.py)."""

from datetime import timedelta

import dagster as dg
from dagster_aws.s3 import S3Resource
from dagster_snowflake import SnowflakeResource

from genesys_pipeline.defs.partitions import daily_asset, range_window
from genesys_pipeline.defs.resources import selected_tables
from genesys_pipeline.resources.warehouse import S3Publishing, SnowflakeTarget
from genesys_pipeline.settings import SETTINGS
from genesys_pipeline.steps.load import DayFiles, WarehouseLoader
from genesys_pipeline.steps.metadata import load_metadata, tables_definition_metadata
from genesys_pipeline.steps.publish import read_published_manifest
from genesys_pipeline.steps.views import create_views

# The daily schedule loads a day every morning; if no day reached Snowflake in the 24 hours before the
# deadline (GENESYS_FRESHNESS_DEADLINE_HOUR), the daemon's freshness evaluation marks this asset late in
# the UI. A policy, not an asset check: a check on the asset would run inside every run that loads it,
# backfills of old days included, and judge yesterday from there.
freshness_policy = dg.FreshnessPolicy.cron(
    deadline_cron=f"0 {SETTINGS.freshness_deadline_hour} * * *",
    lower_bound_delta=timedelta(hours=24),
    timezone=SETTINGS.partition_timezone,
)


@daily_asset(
    deps=["s3_conversations"],
    kinds={"snowflake", "sql"},
    metadata=tables_definition_metadata(selected_tables(), in_snowflake=True),
    freshness_policy=freshness_policy,
    description=(
        f"The conversation tables in Snowflake ({', '.join(t.name.upper() for t in selected_tables())}: those "
        "of GENESYS_TABLES, all by default; list columns as VARIANT arrays), in the snowflake "
        "resource's database and schema, with GENESYS_LOAD_HISTORY recording every load, and the views "
        "QUEUE_VISITS (one row per queue a conversation waited in) and AGENT_HANDLING (one row per agent "
        "who handled it: per-agent and per-queue handle time), each when the tables it reads are selected. "
        "A run's days are replaced in one transaction over all these tables: a reader sees the old days or "
        "the new ones, a failure leaves the tables as they were for every day of the run, and a rerun never duplicates rows. A table left "
        "out of GENESYS_TABLES is not created or touched: its rows stay as they were. The row-count check "
        "then proves every table matches the API, raw, flattened and S3 counts."
    ),
)
def snowflake_conversations(
    context: dg.AssetExecutionContext,
    s3: S3Resource,
    s3_publishing: S3Publishing,
    snowflake: SnowflakeResource,
    snowflake_target: SnowflakeTarget,
) -> dg.MaterializeResult:
    client = s3.get_client()
    tables = selected_tables()
    manifests = [read_published_manifest(client, s3_publishing, key) for key in context.partition_keys]
    days = [DayFiles(key, m.tables, m.format) for key, m in zip(context.partition_keys, manifests)]
    with snowflake.get_connection() as connection, WarehouseLoader(
        connection, snowflake_target, s3_publishing, log=context.log.debug, warn=context.log.warning, tables=tables
    ) as loader:  # its staging tables are dropped when the block ends, whatever happened
        loader.prepare(context.partition_keys, context.run.run_id)
        # Before any day is replaced: a schema without CREATE VIEW fails the run with every table as it was.
        views = create_views(loader.session, snowflake_target, tables)
        loads = loader.load_partitions(days, context.run.run_id)  # all the days in one transaction
    for day in days:
        context.log.info(
            f"{day.partition_key}: loaded " + ", ".join(
                f"{load.table} {load.rows_loaded} (was {load.rows_deleted})"
                for load in loads if load.partition_key == day.partition_key
            )
        )  # fmt: skip
    return dg.MaterializeResult(metadata=load_metadata(
        loads, context.partition_keys, range_window(context.partition_keys),
        stage=loader.qualified(snowflake_target.stage), stage_url=s3_publishing.stage_url,
        load_history_table=loader.qualified(snowflake_target.load_history_table),
    ) | {"views": ", ".join(views)})  # fmt: skip
