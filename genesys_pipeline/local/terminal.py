"""What `make dev` lets through to the terminal from `dagster dev` and the stand-ins.

Without a filter, one run of one day prints over a hundred DEBUG event lines from Dagster's console
logger (every step's start, inputs, outputs and handled resources), Dagster's notice that `dagster dev`
is superseded by `dg dev` (a CLI we do not ship), and the stand-ins' own chatter (fakesnow's advice on
Arrow copies, sqlglot's "Unsupported property" for a Snowflake table property DuckDB has no use for).
None of it tells a user anything they can act on; the run's full log is in the UI either way.
`--verbose` lets everything through.
"""

from __future__ import annotations

import re
import threading
from typing import IO

# A line of Dagster's console logger at DEBUG ("<time> - dagster - DEBUG - <job> - <run id> - ...").
_DAGSTER_DEBUG = re.compile(r" - dagster - (\x1b\[\d+m)?DEBUG(\x1b\[0m)? - ")
# Warnings that name a cause the user cannot change; the line after each is the source line Python
# prints with it.
_NOISY_WARNINGS = (
    re.compile(r"SupersessionWarning: Function `dev_command` is superseded"),
    re.compile(r"fakesnow/.*UserWarning: Arrow output on a DB-API result"),
)
_NOISY_LINES = (
    re.compile(r"^Unsupported property \w+$"),
    # The daemon's first start on a new DAGSTER_HOME: the failed-run alert sensor has no cursor yet.
    re.compile(r"EventLogConsumerDaemon - (\x1b\[\d+m)?WARNING(\x1b\[0m)? - No cursor for event type"),
)


class NoiseFilter:
    """Decides line by line; keeps one line of state (the source line that follows a warning)."""

    def __init__(self, verbose: bool = False) -> None:
        self.verbose = verbose
        self.dropped = 0
        self._skip_next = False

    def keep(self, line: str) -> bool:
        if self.verbose:
            return True
        if self._skip_next:
            self._skip_next = False
            if line.startswith((" ", "\t")):
                self.dropped += 1
                return False
        if any(pattern.search(line) for pattern in _NOISY_WARNINGS):
            self._skip_next = True
        elif not (_DAGSTER_DEBUG.search(line) or any(pattern.search(line) for pattern in _NOISY_LINES)):
            return True
        self.dropped += 1
        return False


def pump(source: IO[bytes], sink: IO[bytes], noise: NoiseFilter, name: str) -> threading.Thread:
    """Copy `source` to `sink` line by line through `noise`, in a daemon thread, until `source` ends."""

    def copy() -> None:
        with source:
            for raw in iter(source.readline, b""):
                if noise.keep(raw.decode(errors="replace").rstrip("\n")):
                    try:
                        sink.write(raw)
                        sink.flush()
                    except (OSError, ValueError):  # the terminal or log file went away first
                        return

    thread = threading.Thread(target=copy, name=f"output-{name}", daemon=True)
    thread.start()
    return thread
