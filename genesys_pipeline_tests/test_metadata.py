"""What the assets show in the Dagster UI, for the cases a run on the stand-ins does not reach."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from genesys_pipeline.steps.metadata import raw_metadata
from genesys_pipeline.steps.raw_records import ExtractionReport


def test_the_raw_step_labels_each_day_with_its_partition_key_not_its_utc_window() -> None:
    # Partitions in Asia/Tokyo: the day 2024-05-08 is [2024-05-07 15:00, 2024-05-08 15:00) in UTC.
    tokyo_day = datetime(2024, 5, 7, 15, tzinfo=timezone.utc)
    report = ExtractionReport(tokyo_day, tokyo_day + timedelta(days=1), path="jobs", records_written=12)
    table = raw_metadata(["2024-05-08"], [report], {}, "/tmp/raw", 1.0, 100)["partitions"].value
    assert "| 2024-05-08 | jobs | 12 |" in table
    assert "2024-05-07" not in table
