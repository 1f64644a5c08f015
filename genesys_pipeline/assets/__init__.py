"""The pipeline's assets, one module per stage."""

from .raw import raw_conversations

__all__ = ["raw_conversations"]
