"""The pipeline's assets, one module per stage: raw -> flattened -> S3 -> Snowflake; and the
unpartitioned dimension tables (queues, wrap-up codes, users, divisions)."""

from genesys_pipeline.defs.dimensions import DIMENSION_ASSETS, genesys_divisions, genesys_queues, genesys_users, genesys_wrapup_codes
from genesys_pipeline.defs.flattened_conversations import flattened_conversations
from genesys_pipeline.defs.raw_conversations import raw_conversations
from genesys_pipeline.defs.s3_conversations import s3_conversations
from genesys_pipeline.defs.snowflake_conversations import snowflake_conversations

PIPELINE_ASSETS = [raw_conversations, flattened_conversations, s3_conversations, snowflake_conversations]

__all__ = [
    "DIMENSION_ASSETS",
    "PIPELINE_ASSETS",
    "flattened_conversations",
    "genesys_divisions",
    "genesys_queues",
    "genesys_users",
    "genesys_wrapup_codes",
    "raw_conversations",
    "s3_conversations",
    "snowflake_conversations",
]
