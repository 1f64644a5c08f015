"""The Dagster code location: every asset, check, resource and job of the project."""

import dagster as dg

from .assets import PIPELINE_ASSETS
from .checks import asset_checks
from .environments import current_environment, resources_for
from .partitions import daily_partitions

# The whole graph for a partition (or a range): extract, flatten, publish, load, prove the counts.
conversations_job = dg.define_asset_job(
    "genesys_conversations",
    selection=dg.AssetSelection.assets(*PIPELINE_ASSETS),
    partitions_def=daily_partitions,
    description="Genesys conversations of a day (or range) from the API through to Snowflake, with "
    "the row-count check.",
)


def build_definitions() -> dg.Definitions:
    """The definitions with the resource set of the environment the process runs in."""
    return dg.Definitions(
        assets=PIPELINE_ASSETS,
        asset_checks=asset_checks,
        jobs=[conversations_job],
        resources=resources_for(current_environment()),
    )


defs = build_definitions()
