"""The one daily partitions definition every partitioned asset, job and schedule shares.

A partition is a calendar day in `GENESYS_PARTITION_TIMEZONE` (default UTC): it holds the
conversations whose `conversationStart` falls on that local day.
"""

from __future__ import annotations

import os

import dagster as dg

PARTITION_TIMEZONE = os.environ.get("GENESYS_PARTITION_TIMEZONE", "UTC")
PARTITION_START_DATE = os.environ.get("GENESYS_PARTITION_START_DATE", "2024-01-01")

daily_partitions = dg.DailyPartitionsDefinition(
    start_date=PARTITION_START_DATE,
    timezone=PARTITION_TIMEZONE,
)
