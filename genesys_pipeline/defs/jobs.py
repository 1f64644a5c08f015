"""The project's jobs: what a schedule, a backfill or a launch from the UI runs.

`genesys_conversations`   the partitioned chain of a day (or a range of days): extract, flatten, publish,
                          load, and the blocking row-count check. A backfill launched from the UI runs
                          it in chunks of `BACKFILL_DAYS_PER_RUN` days (partitions.backfill_policy).
`genesys_dimensions`      the four unpartitioned directory tables (queues, wrap-up codes, users in every
                          state, divisions), each a full snapshot replaced as a whole. A job of its own
                          because it has no partitions: Dagster cannot run partitioned and
                          unpartitioned assets as one partition's run, and a failure of one job should
                          not hold up the other (the flatten step reads the listings itself, so the
                          conversation tables never wait for these).
"""

from __future__ import annotations

import dagster as dg

from genesys_pipeline.defs.dimensions import DIMENSIONS_GROUP
from genesys_pipeline.defs.partitions import CONVERSATIONS_GROUP

CONVERSATIONS_JOB = "genesys_conversations"
DIMENSIONS_JOB = "genesys_dimensions"

# The whole graph for a partition (or a range): extract, flatten, publish, load, prove the counts.
conversations_job = dg.define_asset_job(
    CONVERSATIONS_JOB,
    selection=dg.AssetSelection.groups(CONVERSATIONS_GROUP),  # partitioned by their daily_partitions
    description="Genesys conversations of a day (or range) from the API through to Snowflake, with "
    "the row-count check.",
)

dimensions_job = dg.define_asset_job(
    DIMENSIONS_JOB,
    selection=dg.AssetSelection.groups(DIMENSIONS_GROUP),
    description="Genesys queues, wrap-up codes, users (every state) and divisions, each replaced as a "
    "whole in its own Snowflake table.",
)

jobs = [conversations_job, dimensions_job]
