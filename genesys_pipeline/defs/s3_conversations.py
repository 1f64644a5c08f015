"""`s3_conversations`: the wiring of the publish step (steps/publish.py)."""

import dagster as dg
from dagster_aws.s3 import S3Resource

from genesys_pipeline.defs.partitions import daily_asset, range_window
from genesys_pipeline.defs.resources import selected_tables
from genesys_pipeline.resources.warehouse import S3Publishing
from genesys_pipeline.resources.working_storage import WorkingStorage
from genesys_pipeline.steps.metadata import publish_metadata
from genesys_pipeline.steps.publish import publish_partition


@daily_asset(
    deps=["flattened_conversations"],
    kinds={"s3", "parquet"},
    description=(
        "The day's flattened tables (those of GENESYS_TABLES; all by default) published to S3 for "
        "Snowflake's external stage: one object per table and day under "
        "s3://BUCKET/PREFIX/TABLE/year=YYYY/month=MM/day=DD/ (Parquet, or gzip CSV), encrypted at rest, plus a manifest per day under _manifests/ that the Snowflake load reads. "
        "A rerun replaces the day's objects and removes any others in the day's folders."
    ),
)
def s3_conversations(
    context: dg.AssetExecutionContext, working_storage: WorkingStorage, s3: S3Resource, s3_publishing: S3Publishing
) -> dg.MaterializeResult:
    client = s3.get_client()
    manifests = []
    tables = selected_tables()
    for partition_key in context.partition_keys:
        manifest = publish_partition(client, working_storage, s3_publishing, partition_key, context.run.run_id, tables)
        manifests.append(manifest)
        context.log.info(
            f"{partition_key}: published {sum(t.rows for t in manifest.tables.values())} rows in "
            f"{len(manifest.tables)} {s3_publishing.file_format} objects; stale objects deleted: "
            f"{list(manifest.stale_deleted) or 'none'}"
        )
    return dg.MaterializeResult(
        metadata=publish_metadata(manifests, s3_publishing, range_window(context.partition_keys))
    )
