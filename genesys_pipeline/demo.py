"""`make demo`: run the pipeline end to end on the embedded default, with no credentials.

Starts the Genesys Cloud emulator in this process on a free port, points the local resource set at it,
materializes the last few days' partitions and prints what each one holds. Data is kept under
`data/` (the working location), so the results can be inspected afterwards.
"""

from __future__ import annotations

import argparse
import os
import sys
from datetime import datetime, timedelta, timezone

import dagster as dg

from .emulator import EmulatorConfig, EmulatorServer


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m genesys_pipeline.demo", description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, default=3, help="how many days up to yesterday to materialize")
    parser.add_argument("--daily-volume", type=int, default=2000, help="the emulator's conversations per day")
    parser.add_argument("--working-dir", default="data/working", help="the working location")
    args = parser.parse_args(argv)

    with EmulatorServer(EmulatorConfig(seed=7, daily_volume=args.daily_volume)) as emulator:
        os.environ["GENESYS_PIPELINE_ENV"] = "local"
        os.environ["GENESYS_API_BASE_URL"] = emulator.base_url
        os.environ["GENESYS_WORKING_DIR"] = args.working_dir
        from .definitions import build_definitions

        defs = build_definitions()  # the local resource set, pointed at this emulator

        yesterday = datetime.now(timezone.utc).date() - timedelta(days=1)
        days = [(yesterday - timedelta(days=back)).isoformat() for back in reversed(range(args.days))]
        print(f"Genesys emulator on {emulator.base_url}; materializing {', '.join(days)}", flush=True)
        job = defs.resolve_implicit_global_asset_job_def()
        quiet = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}
        failures = 0
        with dg.DagsterInstance.ephemeral() as instance:
            results = [(day, job.execute_in_process(partition_key=day, instance=instance, run_config=quiet,
                                                    raise_on_error=False)) for day in days]
        for day, result in results:
            failures += not result.success
            for event in result.get_asset_materialization_events():
                materialization = event.step_materialization_data.materialization
                meta = {key: value.value for key, value in materialization.metadata.items()}
                print(f"  {day} {materialization.asset_key.to_user_string()}: "
                      f"{meta.get('records_written', '?')} records via {meta.get('extraction_path', '?')}, "
                      f"{meta.get('requests', '?')} requests, {meta.get('rate_limited_429s', '?')} 429s")
            if not result.success:
                print(f"  {day}: FAILED", file=sys.stderr)
        print(f"Data under {os.path.abspath(args.working_dir)}")
        return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
