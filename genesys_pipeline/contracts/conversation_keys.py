"""The columns every conversation table shares: its partition, the extraction, and the ids of the
record's levels (conversation, participant, session) that its key is made of."""

from __future__ import annotations

import pyarrow as pa

from genesys_pipeline.contracts.columns import Column, text

PARTITION_DATE = Column(
    "partition_date", pa.date32(), "DATE", False,
    "the partition's day: the day conversationStart falls on in GENESYS_PARTITION_TIMEZONE (default UTC)",
)
EXTRACTION_RUN = text("extraction_run_id", "the Dagster run that extracted the record", nullable=False)
CONVERSATION_ID = text("conversation_id", "conversationId", nullable=False)
PARTICIPANT_ID = text("participant_id", "participants[].participantId", nullable=False)
SESSION_ID = text("session_id", "participants[].sessions[].sessionId", nullable=False)
