"""What the assets show in the Dagster UI, for the cases a run on the stand-ins does not reach."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import dagster as dg

from genesys_pipeline.steps.metadata import raw_metadata
from genesys_pipeline.steps.raw_records import ExtractionReport


def test_the_raw_step_labels_each_day_with_its_partition_key_not_its_utc_window() -> None:
    # Partitions in Asia/Tokyo: the day 2024-05-08 is [2024-05-07 15:00, 2024-05-08 15:00) in UTC.
    tokyo_day = datetime(2024, 5, 7, 15, tzinfo=timezone.utc)
    report = ExtractionReport(tokyo_day, tokyo_day + timedelta(days=1), path="jobs", records_written=12)
    table = raw_metadata(["2024-05-08"], [report], {}, "/tmp/raw", 1.0, 100)["partitions"].value
    assert "| 2024-05-08 | jobs | 12 |" in table
    assert "2024-05-07" not in table


# ##### WHAT THE UI SHOWS BEFORE ANY RUN


def test_every_table_shows_its_columns_with_their_definitions_in_the_ui() -> None:
    from genesys_pipeline.contracts.dimension_tables import DIMENSIONS
    from genesys_pipeline.contracts.tables import TABLES
    from genesys_pipeline.definitions import build_definitions

    definitions = build_definitions()

    def spec(name: str) -> dg.AssetSpec:
        assets = definitions.resolve_assets_def(name)
        return assets.specs_by_key[dg.AssetKey(name)]

    for name, upper in (("flattened_conversations", False), ("snowflake_conversations", True)):
        metadata = spec(name).metadata
        assert [c.name for c in metadata["dagster/column_schema"].columns] == [c.name.upper() for c in TABLES[0].columns]
        for table in TABLES:
            schema = metadata[f"columns of {table.name.upper() if upper else table.name}"].schema
            assert [c.name for c in schema.columns] == [c.name.upper() for c in table.columns]
            assert all(c.description for c in schema.columns), table.name  # the data dictionary's definitions
    assert spec("snowflake_conversations").metadata["dagster/table_name"].text == "CONVERSATIONS"
    for dimension in DIMENSIONS:
        schema = spec(f"genesys_{dimension.name.removeprefix('dim_')}").metadata["dagster/column_schema"]
        assert [c.name for c in schema.columns] == [c.name.upper() for c in dimension.table.columns]
    for name in ("raw_conversations", "flattened_conversations", "s3_conversations", "snowflake_conversations"):
        assert spec(name).tags["source"] == "genesys-cloud" and spec(name).kinds, name
