"""What `make dev` lets through to the terminal (genesys_pipeline/local/terminal.py); the browser test
checks the same on a real `make dev` log."""

from __future__ import annotations

import io

from genesys_pipeline.local.terminal import NoiseFilter, pump

# Lines as `dagster dev` and the stand-ins print them during one run.
PRINTED = """\
\x1b[32m2026-12-02 11:08:02 +0000\x1b[0m - dagster - \x1b[34mINFO\x1b[0m - Launching Dagster services...
/x/click/core.py:911: SupersessionWarning: Function `dev_command` is superseded and its usage is discouraged. Use 'dg dev' instead.
  return callback(*args, **kwargs)
2026-12-02 11:12:15 +0000 - dagster - DEBUG - genesys_conversations - f5e5 - 472 - RUN_START - Started execution of run.
2026-12-02 11:12:29 +0000 - dagster - INFO - genesys_conversations - f5e5 - raw_conversations - Extracting conversations
/x/site-packages/fakesnow/cursor.py:689: UserWarning: Arrow output on a DB-API result makes an extra copy of the rows.
  self._arrow_table = self._duck_conn.to_arrow_table()
Unsupported property transientproperty
\x1b[32m2026-12-02 14:07:19 +0000\x1b[0m - dagster.daemon.EventLogConsumerDaemon - \x1b[34mWARNING\x1b[0m - No cursor for event type DagsterEventType.RUN_FAILURE, ignoring older events
2026-12-02 14:07:20 +0000 - dagster.daemon.SensorDaemon - WARNING - a warning of another kind
Traceback (most recent call last):
  File "x.py", line 1, in <module>
ValueError: a real problem
"""


def test_the_filter_drops_debug_events_and_known_chatter_and_keeps_the_rest() -> None:
    noise = NoiseFilter()
    kept = [line for line in PRINTED.splitlines() if noise.keep(line)]
    assert kept == [
        "\x1b[32m2026-12-02 11:08:02 +0000\x1b[0m - dagster - \x1b[34mINFO\x1b[0m - Launching Dagster services...",
        "2026-12-02 11:12:29 +0000 - dagster - INFO - genesys_conversations - f5e5 - raw_conversations - Extracting conversations",
        "2026-12-02 14:07:20 +0000 - dagster.daemon.SensorDaemon - WARNING - a warning of another kind",
        "Traceback (most recent call last):",
        '  File "x.py", line 1, in <module>',
        "ValueError: a real problem",
    ]
    assert noise.dropped == 7


def test_verbose_lets_everything_through_and_pump_copies_in_order() -> None:
    sink = io.BytesIO()
    pump(io.BytesIO(PRINTED.encode()), sink, NoiseFilter(verbose=True), "test").join(5)
    assert sink.getvalue().decode() == PRINTED
