"""The Dagster code location: every asset, check, resource and schedule of the project."""

import dagster as dg

defs = dg.Definitions()
