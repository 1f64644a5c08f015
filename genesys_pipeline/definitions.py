"""The Dagster code location: every asset, check, resource and schedule of the project."""

import dagster as dg

from .assets import raw_conversations
from .environments import current_environment, resources_for

defs = dg.Definitions(
    assets=[raw_conversations],
    resources=resources_for(current_environment()),
)
