"""`make dev`: the local operating mode, the Dagster UI and its daemon on the embedded stack, until Ctrl-C.

One command starts the embedded stack and the Dagster UI, with the daemon, so that schedules, sensors
and backfills really run:

- the Genesys Cloud emulator (a thread of this process, http://127.0.0.1:8765 by default; real-time clock),
- moto's S3 server and the fakesnow Snowflake server (`python -m genesys_pipeline.local.stand_ins`, a child
  process; the Snowflake databases persist under DATA_DIR/snowflake, S3 is in memory), and the bucket,
- `dagster dev -w workspace.yaml` (webserver, daemon and code server), with DAGSTER_HOME=DATA_DIR/dagster_home
  (the repository's dagster.yaml is copied there at every start) and the GENESYS_* variables that make
  the code location build the local resource set pointed at the servers above (`stack.to_environment`).

Every service is a server on loopback because Dagster runs each run in a process of its own (and a
deployment each step). Ctrl-C, SIGTERM or SIGHUP stops everything, in reverse order: `dagster dev` and whatever it
started (it runs in a session of its own, which is signalled and then checked to be empty), the
stand-ins (which write their database to disk), the emulator. A second Ctrl-C does not cut that short.

From Python (the browser test): `with local_mode(port=0, emulator_port=0, data_dir=tmp) as url: ...`.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import shlex
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path
from typing import IO, Any

from genesys_pipeline.defs.jobs import CONVERSATIONS_JOB
from genesys_pipeline.local import processes
from genesys_pipeline.local.emulator import EmulatorServer
from genesys_pipeline.local.stack import (
    DEFAULT_DAILY_VOLUME,
    DEFAULT_SEED,
    LOCAL_BUCKET,
    LOCAL_FILE_FORMAT,
    add_stack_options,
    create_bucket,
    emulator_server,
    endpoints_of,
    spawn_stand_ins,
    stop_stand_ins,
    to_environment,
)
from genesys_pipeline.local.stand_ins import LocalStackProcess
from genesys_pipeline.local.terminal import NoiseFilter, pump

# The checkout (workspace.yaml, dagster.yaml, setup.py): genesys_pipeline/local/dev.py is three levels down.
REPOSITORY_ROOT = Path(__file__).resolve().parents[2]
# The stand-ins' ports are the local resource set's defaults (settings.py), so that a `dagster` command
# in another terminal, with no GENESYS_* variable set, reaches the same servers as the UI.
LOCAL_S3_PORT, LOCAL_SNOWFLAKE_PORT = 5000, 8085


class LocalMode:
    """The embedded stack plus `dagster dev`; `start()` returns once the UI is usable, `stop()` tears
    everything down. Prefer `local_mode()`, which is this as a context manager."""

    def __init__(
        self,
        port: int = 3000,
        daily_volume: int = DEFAULT_DAILY_VOLUME,
        data_dir: str | os.PathLike[str] = "data",
        emulator_port: int = 8765,
        host: str = "127.0.0.1",
        seed: int = DEFAULT_SEED,
        log_path: str | os.PathLike[str] | None = None,
        startup_timeout: float = 180.0,
        s3_port: int = LOCAL_S3_PORT,
        snowflake_port: int = LOCAL_SNOWFLAKE_PORT,
        verbose: bool = False,
    ) -> None:
        self.host = host
        self.port = port or processes.free_port(host)
        self.url = f"http://{host}:{self.port}"
        self.daily_volume, self.seed, self.emulator_port = daily_volume, seed, emulator_port
        self.data_dir = Path(data_dir).resolve()
        self.dagster_home = self.data_dir / "dagster_home"
        self.log_path = Path(log_path).resolve() if log_path else None
        self.startup_timeout = startup_timeout
        self.s3_port, self.snowflake_port = s3_port, snowflake_port
        self.noise = NoiseFilter(verbose)
        self.emulator: EmulatorServer | None = None
        self.stack: LocalStackProcess | None = None
        self.dagster: subprocess.Popen[bytes] | None = None
        self._log_file: IO[bytes] | None = None
        self.environment: dict[str, str] = {}  # the GENESYS_* variables `dagster dev` runs with
        self._cancelled = threading.Event()
        self.start_error: Exception | None = None

    # ##### START

    def start(self) -> str:
        try:
            self._start()
        except BaseException:
            self.stop()
            raise
        return self.url

    def _start(self) -> None:
        for sub in ("working", "snowflake", "dagster_home"):
            (self.data_dir / sub).mkdir(parents=True, exist_ok=True)
        if (REPOSITORY_ROOT / "dagster.yaml").is_file():
            shutil.copyfile(REPOSITORY_ROOT / "dagster.yaml", self.dagster_home / "dagster.yaml")
        if self.log_path:
            self.log_path.parent.mkdir(parents=True, exist_ok=True)
            self._log_file = open(self.log_path, "ab")  # noqa: SIM115 (closed in stop())

        try:
            self.emulator = emulator_server(self.daily_volume, self.host, self.emulator_port, self.seed).start()
        except OSError as error:
            raise RuntimeError(
                f"the Genesys emulator cannot listen on {self.host}:{self.emulator_port} ({error}); is another "
                "emulator or `make dev` running? (--emulator-port 0 takes a free port)"
            ) from error
        # Checked before `dagster dev` starts: else the readiness probe below would ask another UI.
        if not processes.port_is_free(self.host, self.port):
            raise RuntimeError(f"port {self.port} on {self.host} is in use (another `make dev` or `dagster dev`?); "
                               "choose another with --port (0: a free one)")  # fmt: skip
        self.stack = spawn_stand_ins(
            self.host, self.data_dir / "snowflake", stderr=subprocess.PIPE,
            cwd=REPOSITORY_ROOT if (REPOSITORY_ROOT / "setup.py").is_file() else None, hint=self._log_hint(),
            s3_port=self.s3_port, snowflake_port=self.snowflake_port,
        )  # fmt: skip
        assert self.stack.process.stderr is not None
        pump(self.stack.process.stderr, self._log_file or sys.stderr.buffer, self.noise, "stand-ins")
        # A bucket or file format chosen in this environment is kept; everything else is where it runs.
        endpoints = endpoints_of(
            self.emulator, self.stack, str(self.data_dir / "working"),
            bucket=os.environ.get("GENESYS_S3_BUCKET") or LOCAL_BUCKET,
            file_format=os.environ.get("GENESYS_S3_FILE_FORMAT") or LOCAL_FILE_FORMAT,
        )  # fmt: skip
        create_bucket(endpoints)

        self.environment = to_environment(endpoints)
        env = dict(os.environ, DAGSTER_HOME=str(self.dagster_home), **self.environment)
        command = [sys.executable, "-m", "dagster", "dev", *code_location_target(), "-h", self.host, "-p", str(self.port)]
        # In a session of its own (see processes.py): a terminal's Ctrl-C reaches only this process,
        # which then stops `dagster dev` and everything it started (code server, run workers) as one
        # group. The cwd is DAGSTER_HOME, where the dagster.yaml in use is (else `dagster dev` warns
        # about the repository's one).
        self.dagster = processes.start_session(
            command, cwd=self.dagster_home, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
        )
        assert self.dagster.stdout is not None
        pump(self.dagster.stdout, self._log_file or sys.stdout.buffer, self.noise, "dagster-dev")
        processes.wait_until_ready(self.url, self.dagster, self.startup_timeout, self._cancelled, self._log_hint())

    def _log_hint(self) -> str:
        return f" (output in {self.log_path})" if self.log_path else ""

    # ##### STOP

    def stop(self) -> None:
        """Stop everything that `start()` started, in reverse order; safe to call more than once."""
        try:
            if self.dagster is not None:
                processes.stop_session(self.dagster, "dagster dev", interrupt_timeout=60)
                self.dagster = None
        finally:
            try:
                if self.stack is not None:
                    stop_stand_ins(self.stack)
                    self.stack = None
            finally:
                if self.emulator is not None:
                    self.emulator.stop()
                    self.emulator = None
                if self._log_file is not None:
                    self._log_file.close()
                    self._log_file = None

    def cancel(self) -> None:
        """Make a `start()` running in another thread give up waiting for the UI (it then stops
        what it started)."""
        self._cancelled.set()

    def alive(self) -> bool:
        """Whether `dagster dev` and the stand-ins are still running."""
        return all(p is not None and p.poll() is None for p in (self.dagster, self.stack and self.stack.process))

    def __enter__(self) -> LocalMode:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


@contextlib.contextmanager
def local_mode(
    port: int = 3000,
    daily_volume: int = DEFAULT_DAILY_VOLUME,
    data_dir: str | os.PathLike[str] = "data",
    emulator_port: int = 8765,
    **options: Any,
) -> Iterator[str]:
    """The local operating mode as a context manager: yields the Dagster UI's URL once the code location
    is loaded and the daemon is healthy, and stops every process on exit. Port 0: a free port.
    Options: `host`, `seed`, `log_path` (all output of `dagster dev` and the stand-ins there instead
    of this process's stdout/stderr), `startup_timeout`."""
    with LocalMode(port, daily_volume, data_dir, emulator_port, **options) as mode:
        yield mode.url


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m genesys_pipeline.local.dev", description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=3000,
                        help="the Dagster UI's port (default: %(default)s; 0: a free one)")
    add_stack_options(parser, data_dir_holds="the working files, the Snowflake stand-in's database and DAGSTER_HOME")
    parser.add_argument("--emulator-port", type=int, default=8765,
                        help="the Genesys emulator's port (default: %(default)s; 0: a free one)")
    parser.add_argument("--host", default="127.0.0.1",
                        help="the interface every service listens on (default: %(default)s)")
    parser.add_argument("--s3-port", type=int, default=LOCAL_S3_PORT,
                        help="the S3 stand-in's port (default: %(default)s; 0: a free one)")
    parser.add_argument("--snowflake-port", type=int, default=LOCAL_SNOWFLAKE_PORT,
                        help="the Snowflake stand-in's port (default: %(default)s; 0: a free one)")
    parser.add_argument("--verbose", action="store_true",
                        help="print everything `dagster dev` and the stand-ins print (DEBUG event lines included)")
    args = parser.parse_args(argv)
    # What processes.py logs (a child that had to be killed) reads like the lines of `_say`.
    logging.basicConfig(level=logging.WARNING, format="local_dev: %(message)s")

    stop = processes.StopSignals(on_repeat=lambda: _say("still stopping, please wait"))
    mode = LocalMode(args.port, args.daily_volume, args.data_dir, args.emulator_port, host=args.host,
                     s3_port=args.s3_port, snowflake_port=args.snowflake_port, verbose=args.verbose)  # fmt: skip
    try:
        _say("starting the Genesys emulator, the S3/Snowflake stand-ins and `dagster dev`...")
        starting = threading.Thread(target=_start_or_record, args=(mode,), name="local-dev-start", daemon=True)
        starting.start()
        while starting.is_alive() and not stop.wait(0.2):
            pass
        if stop.wait(0):  # interrupted while starting: start() gives up and undoes itself
            mode.cancel()
            starting.join()
            _say(f"{stop.received[0]} during start-up")
            return 130
        if mode.start_error is not None:
            _say(f"failed to start: {mode.start_error}")
            return 1
        emulator, stack = mode.emulator, mode.stack
        _say(
            f"Dagster UI on {mode.url}  (Genesys emulator {emulator.base_url if emulator else '?'}, S3 "
            f"{stack.s3_endpoint_url if stack else '?'}, DAGSTER_HOME {mode.dagster_home}); Ctrl-C stops everything"
        )
        _say(_recipes_text(mode))
        while not stop.wait(1.0):
            if not mode.alive():
                _say("a service exited unexpectedly; stopping the rest")
                return 1
        _say(f"{stop.received[0]}: stopping `dagster dev`, the stand-ins and the emulator...")
        return 0
    finally:
        mode.stop()
        _say("stopped")


def code_location_target() -> list[str]:
    """How `dagster` finds the code location: the checkout's workspace.yaml (location `genesys_pipeline`),
    else the module (an installed package without the checkout; location `genesys_pipeline.definitions`).
    `make dev` and the commands it prints use the same, or the daemon would not find the location of a
    run launched from the command line ("Location ... does not exist in workspace")."""
    workspace = REPOSITORY_ROOT / "workspace.yaml"
    return ["-w", str(workspace)] if workspace.is_file() else ["-m", "genesys_pipeline.definitions"]


def cli_recipes(mode: LocalMode, day: date = date(2024, 5, 1), backfill_days: int = 27) -> dict[str, str]:
    """The `dagster` commands that run a day, a range of the next two days (one run) and a backfill of
    the `backfill_days` after those on this UI's instance from another terminal: each is queued, the daemon
    runs it, and it shows in the UI like a launch from there."""
    cli_env = f"DAGSTER_HOME={shlex.quote(str(mode.dagster_home))}"
    if (mode.host, mode.emulator_port, mode.s3_port, mode.snowflake_port) != ("127.0.0.1", 8765, 5000, 8085):
        # The command loads the definitions too, so it needs the same settings as `dagster dev`.
        cli_env += " " + " ".join(f"{k}={shlex.quote(v)}" for k, v in sorted(mode.environment.items()))
    launch = f"{cli_env} {shlex.quote(str(Path(sys.executable).parent / 'dagster'))} job"
    target = " ".join(shlex.quote(part) for part in code_location_target())
    range_tags = {"dagster/asset_partition_range_start": str(day + timedelta(days=1)),
                  "dagster/asset_partition_range_end": str(day + timedelta(days=2))}  # fmt: skip
    return {
        "one day": f"{launch} launch {target} -j {CONVERSATIONS_JOB} --tags "
        + shlex.quote(json.dumps({"dagster/partition": str(day)})),
        "a range, one run": f"{launch} launch {target} -j {CONVERSATIONS_JOB} --tags " + shlex.quote(json.dumps(range_tags)),
        "a backfill": f"{launch} backfill {target} -j {CONVERSATIONS_JOB} --from {day + timedelta(days=3)} "
        f"--to {day + timedelta(days=2 + backfill_days)} --noprompt",
    }


def _recipes_text(mode: LocalMode) -> str:
    lines = ["from another terminal (queued like a launch from the UI; the daemon runs them):"]
    return "\n".join(lines + [f"  {label + ':':18}{command}" for label, command in cli_recipes(mode).items()])


def _say(message: str) -> None:
    """One line for the person at the terminal; never fails (a pipe such as `| tee` dies with Ctrl-C too)."""
    with contextlib.suppress(OSError, ValueError):
        print(f"local_dev: {message}", flush=True)


def _start_or_record(mode: LocalMode) -> None:
    """`mode.start()` off the main thread, so the main thread stays free to receive Ctrl-C."""
    try:
        mode.start()
    except Exception as error:  # reported by main()
        mode.start_error = error


if __name__ == "__main__":
    sys.exit(main())
