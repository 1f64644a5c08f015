"""`make demo`: run the pipeline end to end on the embedded stack, with no credentials.

Starts the Genesys Cloud emulator, moto's S3 server and the fakesnow Snowflake server in this process
(set up as `make dev` sets them up: `stack.py`), points the local resource set at them (no environment
variables involved), runs the whole graph (raw -> flattened -> S3 -> Snowflake, with the row-count
check) for the last few days and prints what each day holds and what the check found. Files stay under
`data/working`, the Snowflake stand-in's database under `data/snowflake`, so both can be inspected
afterwards.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import warnings
from datetime import datetime, timedelta, timezone

import dagster as dg

from genesys_pipeline.local.resources import local_resources
from genesys_pipeline.local.stack import (
    add_stack_options,
    create_bucket,
    emulator_server,
    endpoints_of,
)
from genesys_pipeline.local.stand_ins import LocalStack


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m genesys_pipeline.local.demo", description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, default=3,
                        help="how many days to run, ending with yesterday in UTC (default: %(default)s)")
    add_stack_options(parser, data_dir_holds="the working files and the Snowflake stand-in's database")
    args = parser.parse_args(argv)
    # The stand-ins' own chatter (sqlglot's notes on TRANSIENT, fakesnow's deprecations, DuckDB's note
    # that fakesnow copies Arrow results) and Dagster's notes on the beta parameters the assets use are
    # not news to a person running the demo.
    logging.getLogger("sqlglot").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    warnings.filterwarnings("ignore", message="Arrow output on a DB-API result", category=UserWarning)
    warnings.filterwarnings("ignore", category=dg.BetaWarning)
    # Imported after the filters: the asset modules pass their beta parameters when they are imported.
    from genesys_pipeline.definitions import build_definitions

    snowflake_dir = os.path.join(args.data_dir, "snowflake")
    os.makedirs(snowflake_dir, exist_ok=True)
    with emulator_server(args.daily_volume) as emulator, LocalStack(db_path=snowflake_dir) as stand_ins:
        endpoints = endpoints_of(emulator, stand_ins, working_dir=os.path.join(args.data_dir, "working"))
        create_bucket(endpoints)
        defs = build_definitions(resources=local_resources(endpoints))
        yesterday = datetime.now(timezone.utc).date() - timedelta(days=1)
        days = [(yesterday - timedelta(days=back)).isoformat() for back in reversed(range(args.days))]
        print(f"Genesys emulator {emulator.base_url}, S3 {stand_ins.s3_endpoint_url}, "
              f"Snowflake stand-in port {stand_ins.snowflake_connection_args['port']}; running {', '.join(days)}")
        job = defs.resolve_job_def("genesys_conversations")
        quiet = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}
        failures = 0
        with dg.DagsterInstance.ephemeral() as instance:
            for day in days:
                result = job.execute_in_process(partition_key=day, instance=instance, run_config=quiet,
                                                raise_on_error=False)
                failures += not result.success
                _print_day(day, result)
        print(f"Files under {os.path.abspath(os.path.join(args.data_dir, 'working'))}; Snowflake stand-in "
              f"database under {os.path.abspath(snowflake_dir)}")
        return 1 if failures else 0


def _print_day(day: str, result: dg.ExecuteInProcessResult) -> None:
    rows = {}
    for event in result.get_asset_materialization_events():
        materialization = event.step_materialization_data.materialization
        metadata = {key: value.value for key, value in materialization.metadata.items()}
        if "dagster/row_count" in metadata:
            rows[materialization.asset_key.to_user_string()] = metadata["dagster/row_count"]
    print(f"{day}: " + ", ".join(f"{asset} {count} conversations" for asset, count in rows.items()))
    for evaluation in result.get_asset_check_evaluations():
        # A failed non-blocking check (the API's approximate count off by more than the tolerance) is a warning.
        warning = evaluation.severity == dg.AssetCheckSeverity.WARN
        verdict = "PASSED" if evaluation.passed else ("WARNING" if warning else "FAILED")
        print(f"  check {evaluation.check_name}: {verdict}")
        table = evaluation.metadata.get("comparison") or evaluation.metadata.get("counts")
        if table is not None:
            print("    " + str(table.value).replace("\n", "\n    "))
        if not evaluation.passed and evaluation.description:
            print(f"    {evaluation.description}")
    if not result.success:
        print(f"  {day}: the run FAILED", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
