"""The pipeline's assets, one module per stage: raw -> flattened -> S3 -> Snowflake."""

from .flattened import flattened_conversations
from .raw import raw_conversations
from .s3 import s3_conversations
from .snowflake import snowflake_conversations

PIPELINE_ASSETS = [raw_conversations, flattened_conversations, s3_conversations, snowflake_conversations]

__all__ = [
    "PIPELINE_ASSETS",
    "flattened_conversations",
    "raw_conversations",
    "s3_conversations",
    "snowflake_conversations",
]
