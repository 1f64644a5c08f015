"""The Dagster code location: every asset, check, resource, job and schedule of the project."""

import dagster as dg

from genesys_pipeline.defs import DIMENSION_ASSETS, PIPELINE_ASSETS
from genesys_pipeline.defs.checks import asset_checks
from genesys_pipeline.defs.resources import current_environment, resources_for
from genesys_pipeline.defs.jobs import conversations_job, dimensions_job, jobs
from genesys_pipeline.defs.schedules import schedules

__all__ = ["build_definitions", "conversations_job", "defs", "dimensions_job"]


def build_definitions() -> dg.Definitions:
    """The definitions with the resource set of the environment the process runs in."""
    return dg.Definitions(
        assets=[*PIPELINE_ASSETS, *DIMENSION_ASSETS],
        asset_checks=asset_checks,
        jobs=jobs,
        schedules=schedules,
        resources=resources_for(current_environment()),
    )


defs = build_definitions()
