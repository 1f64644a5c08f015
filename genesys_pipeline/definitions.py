"""The Dagster code location: every asset, check, resource and schedule of the project."""

import dagster as dg

from .assets import raw_conversations
from .environments import current_environment, resources_for


def build_definitions() -> dg.Definitions:
    """The definitions with the resource set of the environment the process runs in."""
    return dg.Definitions(
        assets=[raw_conversations],
        resources=resources_for(current_environment()),
    )


defs = build_definitions()
