"""The Dagster code location: every asset, check, job and schedule of defs/, with the resources of the
environment the process runs in (GENESYS_PIPELINE_ENV, see genesys_pipeline/settings.py)."""

from __future__ import annotations

from typing import Any, Mapping, Optional

import dagster as dg

from genesys_pipeline.defs.alerts import alert_resources, sensors
from genesys_pipeline.defs.checks import asset_checks
from genesys_pipeline.defs.dimensions import DIMENSION_ASSETS
from genesys_pipeline.defs.executor import pipeline_executor
from genesys_pipeline.defs.flattened_conversations import flattened_conversations
from genesys_pipeline.defs.jobs import jobs
from genesys_pipeline.defs.raw_conversations import raw_conversations
from genesys_pipeline.defs.resources import resources_for
from genesys_pipeline.defs.s3_conversations import s3_conversations
from genesys_pipeline.defs.schedules import schedules
from genesys_pipeline.defs.snowflake_conversations import snowflake_conversations

# The partitioned chain, in the order data moves through it.
PIPELINE_ASSETS = [raw_conversations, flattened_conversations, s3_conversations, snowflake_conversations]

__all__ = ["DIMENSION_ASSETS", "PIPELINE_ASSETS", "build_definitions", "defs"]


def build_definitions(
    resources: Optional[Mapping[str, Any]] = None, executor: Optional[dg.ExecutorDefinition] = None
) -> dg.Definitions:
    """The project's definitions. `resources` replaces the environment's resource set (the demo and the
    tests point it at their own servers); `executor` replaces the pipeline's (Dagster's multiprocess
    executor, steps forked from a forkserver that imported this module, after freeing what abandoned
    runs hold: defs/executor.py)."""
    return dg.Definitions(
        assets=[*PIPELINE_ASSETS, *DIMENSION_ASSETS],
        asset_checks=asset_checks,
        jobs=jobs,
        schedules=schedules,
        sensors=sensors,
        resources={**alert_resources(), **(dict(resources) if resources is not None else resources_for())},
        executor=executor if executor is not None else pipeline_executor,
    )


defs = build_definitions()
