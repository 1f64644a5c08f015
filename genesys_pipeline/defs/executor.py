"""The code location's executor: Dagster's default one (`multiprocess`, or `in_process` when a launch
chooses it), after freeing what abandoned runs hold, with steps started from a forkserver that has the
pipeline's modules imported already; in the local environment, whole runs in one process.

A run killed with `kill -9` (an out-of-memory kill, a lost container) stays STARTED when no daemon
monitors runs, and keeps the `genesys_api` pool slot its step had claimed. Every later run's first step
then waits for that slot for ever, on any day, and the steps never start, so the steps' own check
(`day_exclusivity.take_turn`) is never reached. The executor is created once per run, in the run worker,
before any step claims a slot: there, runs whose worker is provably gone from this machine are marked
failed and their slots freed (`day_exclusivity.fail_abandoned_runs`).

How steps start. Dagster's stock executor starts each step with `spawn`: a new Python that imports
Dagster, pyarrow, boto3, the Snowflake connector and the definitions again, 3-6 s a step on two idle
cores and up to 60 s on a busy machine, more than most steps' work. Here a forkserver imports them once per run and
forks every step from that; each step is still a process of its own (a step killed by the kernel fails
alone). In the local environment (`make dev`, the CLI against it) runs execute in-process instead:
measured with benchmarks/ui_day.py (a day of 2,000 conversations launched from the UI, launch to the
check's result, 2 cores): idle, spawn took 43-50 s, the forkserver 21-24 s and in-process 20-23 s (from
the run's start: 14-19 s against 12-14 s); with other work on the machine (load average 8-19), spawn
113-303 s, the forkserver 52-160 s, in-process 22-56 s. The forkserver is one more Python importing
everything each run, on top of the run worker's own import, and that import is what a busy machine
stretches most. A step's crash then ends the whole run, which a local run can afford; a launch can
still choose `execution: config: multiprocess: {}`.

Everything else is Dagster's default executor and its configuration: a launch may set
`execution: config: multiprocess:` (`max_concurrent`, `start_method: spawn: {}`, ...) or
`execution: config: in_process: {}`.
"""

import dagster as dg

from genesys_pipeline.defs.day_exclusivity import fail_abandoned_runs
from genesys_pipeline.settings import SETTINGS

# Dagster's default executor (a job's executor when it names none): `multiprocess` unless a launch
# chooses `in_process`, with the schema every Dagster user knows (`execution: config: multiprocess: ...`).
_STOCK = dg.multi_or_in_process_executor

# What the forkserver imports before it forks any step: the code location itself, and with it everything
# the steps use. Importing it opens no connection and starts no thread (resources are built when a
# step starts; test_executor.py checks it in the local and the production environment), so that each
# forked step starts clean. A job loaded from another module (a test's own definitions) still works: its
# module is imported in each step as usual, on top of these.
PRELOADED_MODULES = ["genesys_pipeline.definitions"]
DEFAULT_START_METHOD = {"forkserver": {"preload_modules": PRELOADED_MODULES}}


def default_execution(environment: str) -> dict[str, dict]:
    """What a run launched without execution config runs with: in-process in the local environment
    (measured fastest there, see above), else step processes forked from the forkserver."""
    return {"in_process": {}} if environment == "local" else {"multiprocess": {}}


def _stock_config_with_our_defaults(environment: str) -> dg.Field:
    stock = _STOCK.config_schema.as_field()
    modes = dict(stock.config_type.fields)
    multiprocess = dict(modes["multiprocess"].config_type.fields)
    multiprocess["start_method"] = dg.Field(
        multiprocess["start_method"].config_type,
        is_required=False,
        default_value=DEFAULT_START_METHOD,
        description=(
            "How step processes are started. The default, `forkserver` with the pipeline's modules "
            "preloaded, imports them once per run; `spawn: {}` starts each step in a new Python process, "
            "which imports everything again (several seconds a step)."
        ),
    )
    modes["multiprocess"] = dg.Field(multiprocess, description=modes["multiprocess"].description)
    return dg.Field(dg.Selector(modes), default_value=default_execution(environment), description=stock.description)


def executor_for(environment: str) -> dg.ExecutorDefinition:
    """The executor of the code location in `environment` (GENESYS_PIPELINE_ENV)."""

    @dg.executor(name="multi_or_in_process", config_schema=_stock_config_with_our_defaults(environment),
                 requirements=_STOCK.get_requirements)  # fmt: skip
    def pipeline_executor(init_context: dg.InitExecutorContext) -> dg.Executor:
        # The abandoned run's own log says why it was failed (report_run_failed); this run's worker says it too.
        for run_id, message in fail_abandoned_runs(init_context.instance, "a run starting on this machine").items():
            dg.get_dagster_logger().warning(f"Run {run_id}: {message}")
        return _STOCK.executor_creation_fn(init_context)

    return pipeline_executor


pipeline_executor = executor_for(SETTINGS.environment)
