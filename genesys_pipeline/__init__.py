"""Genesys Cloud conversation analytics into Snowflake, as Dagster assets."""
