"""The dimension assets `genesys_queues`, `genesys_wrapup_codes`, `genesys_users`, `genesys_divisions`:
the wiring of steps/dimensions.py, one asset per table of contracts/dimension_tables.py."""

import time
from collections import Counter

import dagster as dg
from dagster_snowflake import SnowflakeResource

from genesys_pipeline.contracts.dimension_tables import DIMENSIONS, Dimension
from genesys_pipeline.contracts.personal_data import ENTITY_FIELDS
from genesys_pipeline.defs.partitions import ASSET_TAGS, failing_at_once, retry_policy
from genesys_pipeline.resources.genesys import GenesysResource
from genesys_pipeline.resources.warehouse import SnowflakeTarget
from genesys_pipeline.settings import SETTINGS
from genesys_pipeline.steps.dimensions import load_dimension, unique_entities
from genesys_pipeline.steps.metadata import dimension_metadata, table_schema
from genesys_pipeline.steps.privacy import protector_for

DIMENSIONS_GROUP = "genesys_dimensions"


def asset_name(dimension: Dimension) -> str:
    """`dim_queues` -> `genesys_queues`."""
    return "genesys_" + dimension.name.removeprefix("dim_")


def _dimension_asset(dimension: Dimension) -> dg.AssetsDefinition:
    @dg.asset(
        name=asset_name(dimension),
        group_name=DIMENSIONS_GROUP,
        kinds={"genesys", "snowflake"},
        owners=list(SETTINGS.asset_owners),
        tags=ASSET_TAGS,
        metadata={"dagster/column_schema": table_schema(dimension.table, unique=dimension.id_column),
                  "dagster/table_name": dg.MetadataValue.text(dimension.name.upper())},
        pool="genesys_api",  # a listing is a few pages of the same OAuth client's rate budget
        retry_policy=retry_policy,
        description=f"{dimension.table.description} A snapshot of the Genesys directory as it is now, in "
        f"the Snowflake table {dimension.name.upper()} (with the table prefix, if one is set), replaced as a "
        "whole in one transaction; names exactly as the API sends them. Not partitioned: the "
        "genesys_dimensions job and its daily schedule refresh it.",
    )
    @failing_at_once
    def _asset(
        context: dg.AssetExecutionContext,
        genesys: GenesysResource,
        snowflake: SnowflakeResource,
        snowflake_target: SnowflakeTarget,
    ) -> dg.MaterializeResult:
        started = time.monotonic()
        protector = protector_for(genesys.personal_data)  # before any request: a missing hash key fails at once
        with genesys.get_client() as client:
            entities = list(getattr(client, dimension.listing)(**dimension.listing_args))
        context.log.info(f"{dimension.listing}: {len(entities)} entities")
        with snowflake.get_connection() as connection:
            load = load_dimension(connection, snowflake_target, dimension, entities, context.run.run_id,
                                  log=context.log.debug, protector=protector)  # fmt: skip
        context.log.info(
            f"{load.table}: {load.rows} rows (replaced {load.rows_replaced}; {load.duplicates_dropped} duplicates "
            f"dropped; {load.unlisted_added} unlisted system entities added)"
        )
        states = None
        if "state" in dimension.column_names:
            states = Counter(str(e.get("state")) for e in unique_entities(entities)[0])
        metadata = dimension_metadata(dimension, load, states, time.monotonic() - started)
        if dimension.name in ENTITY_FIELDS:  # what was done to the personal data this table holds
            metadata["personal_data"] = dg.MetadataValue.json(protector.policy.as_dict())
        return dg.MaterializeResult(metadata=metadata)

    return _asset


genesys_queues, genesys_wrapup_codes, genesys_users, genesys_divisions = (
    _dimension_asset(dimension) for dimension in DIMENSIONS
)
DIMENSION_ASSETS = [genesys_queues, genesys_wrapup_codes, genesys_users, genesys_divisions]
