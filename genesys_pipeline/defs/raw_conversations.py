"""`raw_conversations`: the wiring of the extraction step (steps/extract.py)."""

import time

import dagster as dg

from genesys_pipeline.contracts.paths import RAW_PREFIX
from genesys_pipeline.defs.partitions import daily_asset, daily_partitions
from genesys_pipeline.resources.genesys import GenesysResource
from genesys_pipeline.resources.working_storage import WorkingStorage
from genesys_pipeline.steps.extract import extract_partition
from genesys_pipeline.steps.metadata import raw_metadata
from genesys_pipeline.steps.privacy import protector_for


@daily_asset(
    kinds={"genesys", "python", "json"},
    pool="genesys_api",  # runs sharing one OAuth client share its rate budget
    description=(
        "Every Genesys Cloud conversation that started on the partition's day, exactly as the analytics "
        "API returned it (conversation details: participants, sessions, segments, metrics, attributes), "
        "once per conversation. One gzip JSON-lines file and a manifest per day in the working location "
        "(raw/conversations/<day>/); a rerun replaces the day."
    ),
)
def raw_conversations(
    context: dg.AssetExecutionContext, genesys: GenesysResource, working_storage: WorkingStorage
) -> dg.MaterializeResult:
    started = time.monotonic()
    reports, written_bytes = [], 0
    protector = protector_for(genesys.personal_data)  # before any request: a missing hash key fails at once
    with genesys.get_client() as client:
        # Once per run, for the record (and the job-slot waits' log): the org's limits as they stand.
        limits = client.get_analytics_limits()
        for partition_key in context.partition_keys:
            window = daily_partitions.time_window_for_partition_key(partition_key)
            context.log.info(
                f"Extracting conversations started in [{window.start.isoformat()}, {window.end.isoformat()}) "
                f"for partition {partition_key}"
            )
            report, manifest = extract_partition(
                client, working_storage, partition_key, window.start, window.end, context.run.run_id,
                job_result_cap=genesys.job_result_cap, protector=protector,
                on_progress=lambda written, key=partition_key: context.log.info(f"{key}: {written} conversations written"),
            )  # fmt: skip
            written_bytes += manifest.bytes
            context.log.info(
                f"{partition_key}: {report.records_written} conversations via {report.path} "
                f"({report.ongoing} ongoing, {report.duplicates_dropped} duplicates dropped)"
            )
            reports.append(report)
        stats = client.stats.snapshot()
    seconds = time.monotonic() - started
    return dg.MaterializeResult(metadata={**raw_metadata(
        context.partition_keys, reports, stats, working_storage.uri(RAW_PREFIX), seconds, written_bytes, limits
    ), "personal_data": dg.MetadataValue.json(protector.policy.as_dict())})  # fmt: skip
