"""`raw_conversations`: every conversation that started on the partition's day, as the API sent it.

Output per partition, under the working location:
    raw/conversations/<partition>/conversations.jsonl.gz   records, one JSON object per line
    raw/conversations/<partition>/manifest.json            paths and counts for downstream assets
The paths are deterministic, so a rerun replaces the partition instead of adding to it.
"""


import time
from datetime import datetime, timezone

import dagster as dg

from genesys_pipeline.defs.partitions import (
    CONVERSATIONS_GROUP,
    backfill_policy,
    daily_partitions,
    retry_policy,
)
from genesys_pipeline.resources.genesys import GenesysResource
from genesys_pipeline.resources.working_storage import WorkingStorage
from genesys_pipeline.steps.extract import ExtractionReport, extract_window

RAW_PREFIX = "raw/conversations"


def raw_records_path(partition_key: str) -> str:
    return f"{RAW_PREFIX}/{partition_key}/conversations.jsonl.gz"


def raw_manifest_path(partition_key: str) -> str:
    return f"{RAW_PREFIX}/{partition_key}/manifest.json"


@dg.asset(
    partitions_def=daily_partitions,
    group_name=CONVERSATIONS_GROUP,
    kinds={"genesys", "json"},
    pool="genesys_api",  # runs sharing one OAuth client share its rate budget
    backfill_policy=backfill_policy,
    retry_policy=retry_policy,
    description=__doc__,
)
def raw_conversations(
    context: dg.AssetExecutionContext, genesys: GenesysResource, working_storage: WorkingStorage
) -> dg.MaterializeResult:
    run_started = time.monotonic()
    summaries = []
    written_bytes = 0
    with genesys.get_client() as client:
        for partition_key in context.partition_keys:
            window = daily_partitions.time_window_for_partition_key(partition_key)
            context.log.info(
                f"Extracting conversations started in [{window.start.isoformat()}, {window.end.isoformat()}) "
                f"for partition {partition_key}"
            )
            report = extract_window(
                client,
                window.start,
                window.end,
                lambda key=partition_key: working_storage.writer(raw_records_path(key)),
                job_result_cap=genesys.job_result_cap,
                on_progress=lambda written, key=partition_key: context.log.info(f"{key}: {written} conversations written"),
            )
            manifest = _manifest(context, partition_key, report, working_storage)
            working_storage.write_json(raw_manifest_path(partition_key), manifest)
            written_bytes += manifest["bytes"]
            context.log.info(
                f"{partition_key}: {report.records_written} conversations via {report.path} "
                f"({report.ongoing} ongoing, {report.duplicates_dropped} duplicates dropped)"
            )
            summaries.append(report)
        stats = client.stats.snapshot()
    metadata = _metadata(summaries, stats, working_storage, time.monotonic() - run_started)
    metadata["bytes_written"] = dg.MetadataValue.int(written_bytes)
    return dg.MaterializeResult(metadata=metadata)


def _manifest(
    context: dg.AssetExecutionContext, partition_key: str, report: ExtractionReport, storage: WorkingStorage
) -> dict:
    return {
        "partition_key": partition_key,
        "run_id": context.run.run_id,
        "extracted_at": datetime.now(timezone.utc).isoformat(),
        "files": [raw_records_path(partition_key)],
        "records": report.records_written,
        "bytes": storage.size(raw_records_path(partition_key)),
        "extraction": report.as_dict(),
    }


def _metadata(
    reports: list[ExtractionReport], stats: dict, storage: WorkingStorage, seconds: float
) -> dict[str, dg.MetadataValue]:
    first, last = reports[0], reports[-1]
    rows = "\n".join(
        f"| {r.window_start:%Y-%m-%d} | {r.path} | {r.records_written} | {r.api_reported if r.api_reported is not None else 'n/a'} "
        f"| {r.ongoing} | {r.duplicates_dropped} | {r.jobs} | {r.queries} |"
        for r in reports
    )
    return {
        "records_written": dg.MetadataValue.int(sum(r.records_written for r in reports)),
        "dagster/row_count": dg.MetadataValue.int(sum(r.records_written for r in reports)),
        "api_reported": dg.MetadataValue.int(sum(r.api_reported or 0 for r in reports)),
        "duplicates_dropped": dg.MetadataValue.int(sum(r.duplicates_dropped for r in reports)),
        "ongoing_conversations": dg.MetadataValue.int(sum(r.ongoing for r in reports)),
        "extraction_path": dg.MetadataValue.text(", ".join(sorted({r.path for r in reports}))),
        "window_start": dg.MetadataValue.text(first.window_start.isoformat()),
        "window_end": dg.MetadataValue.text(last.window_end.isoformat()),
        "data_availability_date": dg.MetadataValue.text(
            last.data_availability_date.isoformat() if last.data_availability_date else "unknown"
        ),
        "requests": dg.MetadataValue.int(stats.get("requests", 0)),
        "rate_limited_429s": dg.MetadataValue.int(stats.get("rate_limited", 0)),
        "retries": dg.MetadataValue.int(stats.get("retries", 0)),
        "wall_seconds": dg.MetadataValue.float(round(seconds, 2)),
        "location": dg.MetadataValue.path(storage.uri(RAW_PREFIX)),
        "partitions": dg.MetadataValue.md(
            "| day | path | records | API reported | ongoing | duplicates | jobs | queries |\n"
            "|---|---|---|---|---|---|---|---|\n" + rows
        ),
    }
