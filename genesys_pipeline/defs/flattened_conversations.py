"""`flattened_conversations`: the wiring of the flatten step (steps/flatten/)."""

import time

import dagster as dg

from genesys_pipeline.contracts.paths import FLAT_PREFIX, flat_manifest_path
from genesys_pipeline.defs.partitions import daily_asset, daily_partitions, range_window
from genesys_pipeline.defs.resources import selected_tables
from genesys_pipeline.resources.working_storage import WorkingStorage
from genesys_pipeline.steps.flatten import FlattenReport
from genesys_pipeline.steps.flatten.day import flatten_partition
from genesys_pipeline.steps.flatten.lookups import load_lookups
from genesys_pipeline.steps.metadata import flat_metadata, tables_definition_metadata


@daily_asset(
    deps=["raw_conversations"],
    kinds={"python", "parquet"},
    metadata=tables_definition_metadata(selected_tables(), in_snowflake=False),
    description=(
        "The day's raw conversations as typed tables, one Parquet file each (those of GENESYS_TABLES, all "
        "by default): conversations (one row per conversation, with its first queue, agents, final wrap-up "
        "code and summed times), participants, sessions, segments, session metrics, participant attributes, "
        "the whole record (conversations_raw), evaluations, surveys, resolutions, media endpoint stats, "
        "flows and flow outcomes. Queue, user "
        "(deleted users included), wrap-up code and division ids get the names the day's extraction read "
        "(saved with its raw files: this step calls no API). In the working "
        "location (flat/YYYY-MM-DD/); a rerun replaces the day. The run fails, keeping the previous files, "
        "if the conversations table does not have exactly one row per raw record."
    ),
)
def flattened_conversations(context: dg.AssetExecutionContext, working_storage: WorkingStorage) -> dg.MaterializeResult:
    # No Genesys resource and no pool: the names come from the lookups the extraction saved with each day.
    started = time.monotonic()
    total, manifests = FlattenReport(), []
    for partition_key in context.partition_keys:
        day_started = time.monotonic()
        window = daily_partitions.time_window_for_partition_key(partition_key)
        lookups = load_lookups(working_storage, partition_key)
        report, manifest = flatten_partition(
            working_storage, partition_key, window.start.date(), lookups, context.run.run_id, selected_tables()
        )
        total.merge(report)
        manifests.append(manifest)
        context.log.info(
            f"{partition_key}: {manifest.raw_records} conversations -> "
            + ", ".join(f"{name} {t.rows}" for name, t in manifest.tables.items())
            + f" in {time.monotonic() - day_started:.1f} s; unresolved ids {report.unresolved_counts()}"
        )
    return dg.MaterializeResult(metadata=flat_metadata(
        manifests, total, lookups, range_window(context.partition_keys), working_storage.uri(FLAT_PREFIX),
        [working_storage.uri(flat_manifest_path(key)) for key in context.partition_keys],
        time.monotonic() - started,
    ))  # fmt: skip
