"""Dagster wiring only: one module per asset, the row-count check, the jobs and schedules, the shared
partitions and policies, and the resources per environment. The work itself is in ../steps/;
genesys_pipeline/definitions.py gathers these into the code location."""
