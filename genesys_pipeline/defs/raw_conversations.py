"""`raw_conversations`: the wiring of the extraction step (steps/extract_days.py, steps/extract.py)."""

import time

import dagster as dg

from genesys_pipeline.contracts.paths import RAW_PREFIX
from genesys_pipeline.defs.partitions import daily_asset, daily_partitions
from genesys_pipeline.resources.genesys import GenesysResource
from genesys_pipeline.resources.working_storage import WorkingStorage
from genesys_pipeline.steps.extract_days import Day, extract_days
from genesys_pipeline.steps.metadata import raw_metadata
from genesys_pipeline.steps.privacy import protector_for


@daily_asset(
    kinds={"genesys", "python", "json"},
    pool="genesys_api",  # runs sharing one OAuth client share its rate budget
    description=(
        "Every Genesys Cloud conversation that started on the partition's day, exactly as the analytics "
        "API returned it (conversation details: participants, sessions, segments, metrics, attributes), "
        "once per conversation. One gzip JSON-lines file, the names of queues, users, wrap-up codes and "
        "divisions as read during the run, and a manifest per day in the working location "
        "(raw/conversations/<day>/); a rerun replaces the day. The days of a range are read side by side."
    ),
)
def raw_conversations(
    context: dg.AssetExecutionContext, genesys: GenesysResource, working_storage: WorkingStorage
) -> dg.MaterializeResult:
    started = time.monotonic()
    protector = protector_for(genesys.personal_data)  # before any request: a missing hash key fails at once
    days = []
    for partition_key in context.partition_keys:
        window = daily_partitions.time_window_for_partition_key(partition_key)
        days.append(Day(partition_key, window.start, window.end))
    with genesys.get_client() as client:
        # Once per run: the org's limits size the detail-job slots the days share, and are recorded.
        limits = client.get_analytics_limits()
        extracted, lookups = extract_days(
            client, working_storage, days, context.run.run_id, job_result_cap=genesys.job_result_cap,
            protector=protector, log=context.log.info,
        )  # fmt: skip
        stats = {**client.stats.snapshot(), "detail_jobs_at_once": client.job_slots.peak}
    reports = [report for report, _ in extracted]
    written_bytes = sum(manifest.bytes for _, manifest in extracted)
    seconds = time.monotonic() - started
    return dg.MaterializeResult(metadata={**raw_metadata(
        context.partition_keys, reports, stats, working_storage.uri(RAW_PREFIX), seconds, written_bytes, limits,
        lookups), "personal_data": dg.MetadataValue.json(protector.policy.as_dict())})  # fmt: skip
