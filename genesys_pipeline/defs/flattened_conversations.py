"""`flattened_conversations`: the day's raw records as six Parquet tables (see tables.py).

Input per partition, from `raw_conversations` (read by path, no IO manager):
    raw/conversations/<partition>/manifest.json   and the gzip JSON-lines file(s) it lists
Output per partition, under the working location:
    flat/<partition>/<table>.parquet   conversations, participants, sessions, segments,
                                       session_metrics, participant_attributes (always all six;
                                       a table without rows is an empty file with its schema)
    flat/<partition>/manifest.json     {"partition_key", "run_id", "extraction_run_id", "raw_records",
                                        "api_reported", "ongoing", "unresolved_ids", "lookup_sizes",
                                        "flattened_at", "tables": {name: {"path", "rows", "bytes"}}}
Queue, wrap-up code, user (every state, deleted included) and division names are read from the
Genesys listings once per run. Rows carry the extraction's run id and time (the raw manifest's), so a
rerun of this asset alone rewrites identical rows. The run fails, and leaves the previous files in
place, if the conversations table does not have exactly as many rows as the raw manifest's records.
"""


import time
from datetime import datetime, timezone
from typing import Any

import dagster as dg

from genesys_pipeline.contracts.tables import (
    CONVERSATIONS,
    FLAT_PREFIX,
    TABLES,
    flat_manifest_path,
    flat_table_path,
)
from genesys_pipeline.defs.partitions import (
    CONVERSATIONS_GROUP,
    backfill_policy,
    daily_partitions,
    retry_policy,
)
from genesys_pipeline.defs.raw_conversations import (
    raw_conversations,
    raw_manifest_path,
    raw_records_path,
)
from genesys_pipeline.resources.genesys import GenesysResource
from genesys_pipeline.resources.working_storage import WorkingStorage
from genesys_pipeline.steps.flatten import (
    FlattenReport,
    Lookups,
    ParquetSink,
    flatten,
    read_raw_records,
)

_EXAMPLES = 5  # unresolved ids listed per kind in the metadata


class RowCountMismatch(Exception):
    """The flattened conversations do not match the raw records one for one."""


@dg.asset(
    partitions_def=daily_partitions,
    deps=[raw_conversations],
    group_name=CONVERSATIONS_GROUP,
    kinds={"parquet"},
    pool="genesys_api",  # reads the four lookup listings from the API
    backfill_policy=backfill_policy,
    retry_policy=retry_policy,
    description=__doc__,
)
def flattened_conversations(
    context: dg.AssetExecutionContext, genesys: GenesysResource, working_storage: WorkingStorage
) -> dg.MaterializeResult:
    run_started = time.monotonic()
    with genesys.get_client() as client:
        lookups = Lookups.from_client(client)
    context.log.info(f"Lookups: {lookups.sizes()}")
    summaries: list[dict[str, Any]] = []
    total = FlattenReport()
    for partition_key in context.partition_keys:
        summary = _flatten_partition(context, partition_key, lookups, working_storage)
        total.merge(summary["report"])
        summaries.append(summary)
    return dg.MaterializeResult(
        metadata=_metadata(summaries, total, lookups, working_storage, time.monotonic() - run_started)
    )


def _flatten_partition(
    context: dg.AssetExecutionContext, partition_key: str, lookups: Lookups, storage: WorkingStorage
) -> dict[str, Any]:
    started = time.monotonic()
    if not storage.exists(raw_manifest_path(partition_key)):
        raise FileNotFoundError(
            f"{storage.uri(raw_manifest_path(partition_key))} does not exist: materialize raw_conversations "
            f"for partition {partition_key} first"
        )
    raw_manifest = storage.read_json(raw_manifest_path(partition_key))
    if raw_manifest.get("partition_key", partition_key) != partition_key:
        raise ValueError(
            f"{raw_manifest_path(partition_key)} belongs to partition {raw_manifest.get('partition_key')!r}, "
            f"not {partition_key!r}"
        )
    raw_run_id = raw_manifest["run_id"]
    extracted_at = datetime.fromisoformat(raw_manifest["extracted_at"])
    files = raw_manifest.get("files") or [raw_records_path(partition_key)]
    expected = int(raw_manifest["records"])
    api_reported = (raw_manifest.get("extraction") or {}).get("api_reported")
    window = daily_partitions.time_window_for_partition_key(partition_key)
    partition_date = window.start.date()  # the day in the partitions' timezone

    report = FlattenReport()
    with ParquetSink(lambda table: storage.writer(flat_table_path(partition_key, table))) as sink:
        for path in files:
            with storage.reader(path) as handle:
                report.merge(flatten(
                    read_raw_records(handle, path), lookups, sink, partition_date=partition_date,
                    run_id=raw_run_id, extracted_at=extracted_at, source=path,
                ))  # fmt: skip
        flattened = report.rows[CONVERSATIONS.name]
        if flattened != expected:  # inside the sink: raising here keeps the previous files
            raise RowCountMismatch(
                f"partition {partition_key}: {flattened} conversations flattened from {', '.join(files)}, "
                f"but the raw manifest says {expected} records were extracted "
                f"({'lost' if flattened < expected else 'gained'} {abs(flattened - expected)}); "
                "nothing was written. Rematerialize raw_conversations for this partition."
            )

    tables = {
        table.name: {
            "path": flat_table_path(partition_key, table.name),
            "rows": report.rows[table.name],
            "bytes": storage.size(flat_table_path(partition_key, table.name)),
        }
        for table in TABLES
    }
    manifest = {
        "partition_key": partition_key,
        "run_id": context.run.run_id,
        "extraction_run_id": raw_run_id,
        "raw_records": expected,
        "api_reported": api_reported,
        "ongoing": report.ongoing,
        "unresolved_ids": report.unresolved_counts(),
        "lookup_sizes": lookups.sizes(),
        "flattened_at": datetime.now(timezone.utc).isoformat(),
        "tables": tables,
    }
    storage.write_json(flat_manifest_path(partition_key), manifest)
    seconds = time.monotonic() - started
    context.log.info(
        f"{partition_key}: {expected} conversations -> "
        + ", ".join(f"{name} {t['rows']}" for name, t in tables.items())
        + f" in {seconds:.1f} s; unresolved ids {report.unresolved_counts()}"
    )
    return {"partition_key": partition_key, "report": report, "manifest": manifest, "window": window,
            "seconds": seconds}  # fmt: skip


def _metadata(
    summaries: list[dict[str, Any]],
    total: FlattenReport,
    lookups: Lookups,
    storage: WorkingStorage,
    seconds: float,
) -> dict[str, dg.MetadataValue]:
    names = [table.name for table in TABLES]
    header = "| day | " + " | ".join(names) + " | raw records | API reported | ongoing |\n"
    header += "|---" * (len(names) + 4) + "|\n"
    rows = "\n".join(
        f"| {s['partition_key']} | "
        + " | ".join(f"{s['manifest']['tables'][n]['rows']:,}" for n in names)
        + f" | {s['manifest']['raw_records']:,} | "
        + (f"{s['manifest']['api_reported']:,}" if s["manifest"]["api_reported"] is not None else "n/a")
        + f" | {s['manifest']['ongoing']:,} |"
        for s in summaries
    )
    unresolved = "| kind | lookup size | unresolved ids | examples |\n|---|---|---|---|\n" + "\n".join(
        f"| {kind} | {lookups.sizes()[kind]} | {len(ids)} | "
        + ", ".join(f"`{i}`" for i in sorted(ids)[:_EXAMPLES])
        + (" ..." if len(ids) > _EXAMPLES else "")
        + " |"
        for kind, ids in total.unresolved.items()
    )
    conversations = total.rows[CONVERSATIONS.name]
    written = sum(t["bytes"] for s in summaries for t in s["manifest"]["tables"].values())
    metadata: dict[str, dg.MetadataValue] = {
        "dagster/row_count": dg.MetadataValue.int(conversations),
        "rows": dg.MetadataValue.md(header + rows),
        "total_rows": dg.MetadataValue.int(sum(total.rows.values())),
        **{f"rows_{name}": dg.MetadataValue.int(total.rows[name]) for name in names},
        "ongoing_conversations": dg.MetadataValue.int(total.ongoing),
        "unresolved_ids": dg.MetadataValue.md(unresolved),
        **{f"unresolved_{kind}": dg.MetadataValue.int(len(ids)) for kind, ids in total.unresolved.items()},
        "system_wrapup_codes": dg.MetadataValue.text(", ".join(sorted(total.system_wrapup_codes)) or "none"),
        "lookup_sizes": dg.MetadataValue.json(lookups.sizes()),
        "window_start": dg.MetadataValue.text(summaries[0]["window"].start.isoformat()),
        "window_end": dg.MetadataValue.text(summaries[-1]["window"].end.isoformat()),
        "first_conversation_start": dg.MetadataValue.text(
            total.first_start.isoformat() if total.first_start else "none"
        ),
        "last_conversation_start": dg.MetadataValue.text(
            total.last_start.isoformat() if total.last_start else "none"
        ),
        "bytes_written": dg.MetadataValue.int(written),
        "wall_seconds": dg.MetadataValue.float(round(seconds, 2)),
        "conversations_per_second": dg.MetadataValue.float(round(conversations / seconds, 1) if seconds else 0.0),
        "location": dg.MetadataValue.path(storage.uri(FLAT_PREFIX)),
        "manifests": dg.MetadataValue.json([storage.uri(flat_manifest_path(s["partition_key"])) for s in summaries]),
    }
    return metadata
