"""The code location's executor: Dagster's multiprocess executor, after freeing what abandoned runs hold.

A run killed with `kill -9` (an out-of-memory kill, a lost container) stays STARTED when no daemon
monitors runs, and keeps the `genesys_api` pool slot its step had claimed. Every later run's first step
then waits for that slot for ever, on any day, and the steps never start, so the steps' own check
(`day_exclusivity.take_turn`) is never reached. The executor is created once per run, in the run worker,
before any step claims a slot: there, runs whose worker is provably gone from this machine are marked
failed and their slots freed (`day_exclusivity.fail_abandoned_runs`). Everything else is the stock
executor, under its own name and configuration, so launches that configure `multiprocess` keep working.
"""

import dagster as dg

from genesys_pipeline.defs.day_exclusivity import fail_abandoned_runs

_STOCK = dg.multiprocess_executor


@dg.executor(name=_STOCK.name, config_schema=_STOCK.config_schema, requirements=_STOCK.get_requirements)
def pipeline_executor(init_context: dg.InitExecutorContext) -> dg.Executor:
    # The abandoned run's own log says why it was failed (report_run_failed); this run's worker says it too.
    for run_id, message in fail_abandoned_runs(init_context.instance, "a run starting on this machine").items():
        dg.get_dagster_logger().warning(f"Run {run_id}: {message}")
    return _STOCK.executor_creation_fn(init_context)
