"""One partition's raw records into its Parquet files (one per table of GENESYS_TABLES) and its FlatManifest."""

from __future__ import annotations

from datetime import date, datetime, timezone
from typing import Sequence

from genesys_pipeline.contracts.columns import Table
from genesys_pipeline.contracts.manifests import FlatManifest, FlatTable, RawManifest
from genesys_pipeline.contracts.paths import flat_table_path, raw_manifest_path
from genesys_pipeline.contracts.record_paths import record_paths_path
from genesys_pipeline.contracts.tables import CONVERSATIONS, TABLES
from genesys_pipeline.resources.working_storage import WorkingStorage
from genesys_pipeline.steps.flatten.batches import flatten
from genesys_pipeline.steps.flatten.lookups import Lookups
from genesys_pipeline.steps.flatten.reader import read_raw_records
from genesys_pipeline.steps.flatten.report import FlattenReport
from genesys_pipeline.steps.flatten.sink import ParquetSink
from genesys_pipeline.steps.schema_drift import PathGatherer


class RowCountMismatch(Exception):
    """The flattened conversations do not match the raw records one for one."""


def flatten_partition(
    storage: WorkingStorage, partition_key: str, partition_date: date, lookups: Lookups, run_id: str,
    tables: Sequence[Table] = TABLES,
) -> tuple[FlattenReport, FlatManifest]:
    """Flatten the partition's raw files into `tables` (the selected ones: a table left out gets no
    file and no manifest entry); returns the report and the manifest it wrote.

    Rows carry the extraction's run id and time (the raw manifest's), so a rerun of this step alone
    rewrites identical rows. Fails, and leaves the previous files in place, if the conversations table
    does not have exactly as many rows as the raw manifest's records. The JSON paths the records hold are
    gathered on the way (steps/schema_drift.py) and written beside the tables, before the manifest.
    """
    if not storage.exists(raw_manifest_path(partition_key)):
        raise FileNotFoundError(
            f"{storage.uri(raw_manifest_path(partition_key))} does not exist: materialize raw_conversations "
            f"for partition {partition_key} first"
        )
    raw = RawManifest.read(storage, partition_key)
    report = FlattenReport()
    gatherer = PathGatherer()
    with ParquetSink(lambda table: storage.writer(flat_table_path(partition_key, table)), tables=tables) as sink:
        for path in raw.files:
            with storage.reader(path) as handle:
                report.merge(flatten(
                    gatherer.passing_through(read_raw_records(handle, path)), lookups, sink, partition_date=partition_date,
                    run_id=raw.run_id, extracted_at=raw.extracted_at, source=path,
                ))  # fmt: skip
        flattened = report.rows[CONVERSATIONS.name]
        if flattened != raw.records:  # inside the sink: raising here keeps the previous files
            raise RowCountMismatch(
                f"partition {partition_key}: {flattened} conversations flattened from {', '.join(raw.files)}, "
                f"but the raw manifest says {raw.records} records were extracted "
                f"({'lost' if flattened < raw.records else 'gained'} {abs(flattened - raw.records)}); "
                "nothing was written. Rematerialize raw_conversations for this partition."
            )

    storage.write_json(record_paths_path(partition_key), gatherer.to_json())
    written = {}
    for table in tables:
        path = flat_table_path(partition_key, table.name)
        written[table.name] = FlatTable(path, report.rows[table.name], storage.size(path))
    manifest = FlatManifest(
        partition_key=partition_key,
        run_id=run_id,
        extraction_run_id=raw.run_id,
        raw_records=raw.records,
        api_reported=raw.api_reported,
        ongoing=report.ongoing,
        unresolved_ids=report.unresolved_counts(),
        lookup_sizes=lookups.sizes(),
        flattened_at=datetime.now(timezone.utc),
        tables=written,
    )
    manifest.write(storage)
    return report, manifest
