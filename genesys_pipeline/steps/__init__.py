"""The work of each stage, as plain functions and classes: no Dagster decorators here."""
