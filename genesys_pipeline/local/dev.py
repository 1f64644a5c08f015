"""`make dev` (python -m genesys_pipeline.local.dev): the local operating mode.

One command starts the embedded stack and the Dagster UI, with the daemon, so that schedules, sensors
and backfills really run:

- the Genesys Cloud emulator (a thread of this process, http://127.0.0.1:8765 by default; real-time clock),
- moto's S3 server and the fakesnow Snowflake server (`python -m genesys_pipeline.local.stand_ins`, a child
  process; the Snowflake databases persist under DATA_DIR/snowflake, S3 is in memory), and the bucket,
- `dagster dev -w workspace.yaml` (webserver, daemon and code server), with DAGSTER_HOME=DATA_DIR/dagster_home
  (the repository's dagster.yaml is copied there at every start) and the GENESYS_* variables that make
  `environments.py` build the local resource set pointed at the servers above.

Every service is a server on loopback because Dagster runs each step in a subprocess (multiprocess
executor). Ctrl-C, SIGTERM or SIGHUP stops everything, in reverse order: `dagster dev` and whatever it
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
import select
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from genesys_pipeline.local.emulator import EmulatorConfig, EmulatorServer
from genesys_pipeline.local.stand_ins import LocalStackProcess

log = logging.getLogger(__name__)

REPOSITORY_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_BUCKET = "genesys-local"

# Whether the code location has loaded and the daemon's required loops (backfills, the run queue,
# schedules, sensors) report healthy: only then is a launch from the UI picked up.
_READINESS_QUERY = """{
  workspaceOrError { __typename ... on Workspace { locationEntries { name loadStatus
      locationOrLoadError { __typename ... on PythonError { message } } } } }
  instance { daemonHealth { allDaemonStatuses { daemonType required healthy } } }
}"""


class LocalMode:
    """The embedded stack plus `dagster dev`; `start()` returns once the UI is usable, `stop()` tears
    everything down. Prefer `local_mode()`, which is this as a context manager."""

    def __init__(
        self,
        port: int = 3000,
        daily_volume: int = 2000,
        data_dir: str | os.PathLike[str] = "data",
        emulator_port: int = 8765,
        host: str = "127.0.0.1",
        seed: int = 7,
        log_path: str | os.PathLike[str] | None = None,
        startup_timeout: float = 180.0,
    ) -> None:
        self.host = host
        self.port = port or _free_port(host)
        self.url = f"http://{host}:{self.port}"
        self.daily_volume, self.seed, self.emulator_port = daily_volume, seed, emulator_port
        self.data_dir = Path(data_dir).resolve()
        self.dagster_home = self.data_dir / "dagster_home"
        self.log_path = Path(log_path).resolve() if log_path else None
        self.startup_timeout = startup_timeout
        self.emulator: EmulatorServer | None = None
        self.stack: LocalStackProcess | None = None
        self.dagster: subprocess.Popen[bytes] | None = None
        self._log_file: IO[bytes] | None = None
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
            config = EmulatorConfig(host=self.host, port=self.emulator_port, seed=self.seed,
                                    daily_volume=self.daily_volume)  # fmt: skip
            self.emulator = EmulatorServer(config).start()
        except OSError as error:
            raise RuntimeError(
                f"the Genesys emulator cannot listen on {self.host}:{self.emulator_port} ({error}); is another "
                "emulator or `make dev` running? (--emulator-port 0 takes a free port)"
            ) from error
        if not _port_is_free(self.host, self.port):  # else the readiness probe below would ask another UI
            raise RuntimeError(f"port {self.port} on {self.host} is in use (another `make dev` or `dagster dev`?); "
                               "choose another with --port (0: a free one)")  # fmt: skip
        self.stack = self._spawn_stand_ins()
        bucket = os.environ.get("GENESYS_S3_BUCKET") or DEFAULT_BUCKET
        _create_bucket(self.stack.s3_endpoint_url, bucket)

        env = dict(
            os.environ,
            DAGSTER_HOME=str(self.dagster_home),
            GENESYS_PIPELINE_ENV="local",
            GENESYS_API_BASE_URL=self.emulator.base_url,
            GENESYS_WORKING_DIR=str(self.data_dir / "working"),
            GENESYS_S3_ENDPOINT_URL=self.stack.s3_endpoint_url,
            GENESYS_S3_BUCKET=bucket,
            GENESYS_SNOWFLAKE_CONNECTION_ARGS=json.dumps(self.stack.snowflake_connection_args),
        )
        workspace = REPOSITORY_ROOT / "workspace.yaml"
        target = ["-w", str(workspace)] if workspace.is_file() else ["-m", "genesys_pipeline.definitions"]
        command = [sys.executable, "-m", "dagster", "dev", *target, "-h", self.host, "-p", str(self.port)]
        # In a session of its own: a terminal's Ctrl-C reaches only this process, which then stops
        # `dagster dev` and everything it started (code server, run workers) as one group. The cwd is
        # DAGSTER_HOME, where the dagster.yaml in use is (else `dagster dev` warns about the repo's one).
        with _signals_not_ignored():
            self.dagster = subprocess.Popen(
                command, cwd=self.dagster_home, env=env, start_new_session=True,
                stdin=subprocess.DEVNULL, stdout=self._log_file, stderr=subprocess.STDOUT if self._log_file else None,
            )  # fmt: skip
        self._wait_until_ready()

    def _spawn_stand_ins(self) -> LocalStackProcess:
        """`stand_ins.spawn_local_stack`, but in a session of its own (see `dagster dev` above) and with
        a bounded wait for its endpoints."""
        command = [sys.executable, "-m", "genesys_pipeline.local.stand_ins", "--host", self.host,
                   "--db-path", str(self.data_dir / "snowflake")]  # fmt: skip
        with _signals_not_ignored():
            process = subprocess.Popen(
                command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=self._log_file,
                start_new_session=True, cwd=REPOSITORY_ROOT if (REPOSITORY_ROOT / "setup.py").is_file() else None,
            )  # fmt: skip
        assert process.stdout is not None
        ready, _, _ = select.select([process.stdout], [], [], 120)
        line = process.stdout.readline() if ready else b""
        if not line:
            _stop_session(process, "stand-ins")
            raise RuntimeError(
                f"the S3/Snowflake stand-ins did not start (exit code {process.poll()}); is another `make dev` "
                f"or `make demo` using {self.data_dir / 'snowflake'}?" + self._log_hint()
            )
        endpoints = json.loads(line)
        return LocalStackProcess(endpoints["s3_endpoint_url"], endpoints["snowflake_connection_args"], process)  # type: ignore[arg-type]

    def _wait_until_ready(self) -> None:
        assert self.dagster is not None
        deadline, problem = time.monotonic() + self.startup_timeout, "no answer yet"
        while time.monotonic() < deadline:
            if self._cancelled.is_set():
                raise RuntimeError("start-up cancelled")
            if self.dagster.poll() is not None:
                raise RuntimeError(f"`dagster dev` exited with code {self.dagster.returncode}" + self._log_hint())
            try:
                problem = _readiness_problem(graphql(self.url, _READINESS_QUERY, timeout=10))
            except (OSError, ValueError) as error:  # not listening yet, or not answering GraphQL yet
                problem = str(error)
            if not problem:
                return
            if problem.startswith("code location failed"):
                raise RuntimeError(problem)
            time.sleep(0.5)
        raise TimeoutError(
            f"the Dagster UI was not ready within {self.startup_timeout:.0f} s: {problem}" + self._log_hint()
        )

    def _log_hint(self) -> str:
        return f" (output in {self.log_path})" if self.log_path else ""

    # ##### STOP

    def stop(self) -> None:
        """Stop everything that `start()` started, in reverse order; safe to call more than once."""
        try:
            if self.dagster is not None:
                _stop_session(self.dagster, "dagster dev", interrupt_timeout=60)
                self.dagster = None
        finally:
            try:
                if self.stack is not None:
                    _stop_session(self.stack.process, "stand-ins", interrupt_signal=signal.SIGTERM)
                    if self.stack.process.stdout:
                        self.stack.process.stdout.close()
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
    daily_volume: int = 2000,
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


def graphql(url: str, query: str, variables: dict[str, Any] | None = None, timeout: float = 30) -> dict[str, Any]:
    """POST a query to the Dagster webserver's GraphQL endpoint; its `data`, or ValueError on errors."""
    body = json.dumps({"query": query, "variables": variables or {}}).encode()
    request = urllib.request.Request(f"{url}/graphql", body, {"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=timeout) as response:
        answer = json.load(response)
    if answer.get("errors"):
        raise ValueError(f"GraphQL errors: {answer['errors']}")
    return answer["data"]


def _readiness_problem(data: dict[str, Any]) -> str:
    workspace = data["workspaceOrError"]
    if workspace["__typename"] != "Workspace":
        return f"workspace: {workspace['__typename']}"
    for entry in workspace["locationEntries"]:
        if entry["loadStatus"] != "LOADED":
            return f"code location {entry['name']} is {entry['loadStatus']}"
        loaded = entry["locationOrLoadError"]
        if loaded and loaded["__typename"] == "PythonError":
            return f"code location failed to load: {entry['name']}: {loaded['message']}"
    unhealthy = [d["daemonType"] for d in data["instance"]["daemonHealth"]["allDaemonStatuses"]
                 if d["required"] and not d["healthy"]]  # fmt: skip
    return f"daemons not healthy yet: {', '.join(unhealthy)}" if unhealthy else ""


def _create_bucket(endpoint_url: str, bucket: str) -> None:
    from genesys_pipeline.local.stand_ins import s3_resource

    client = s3_resource(endpoint_url).get_client()
    if bucket not in {b["Name"] for b in client.list_buckets().get("Buckets", [])}:
        client.create_bucket(Bucket=bucket)


def _port_is_free(host: str, port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind((host, port))
        except OSError:
            return False
        return True


def _free_port(host: str) -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def _signals_not_ignored() -> Iterator[None]:
    """Children inherit an ignored SIGINT (a process started with `&` from a script has one), and
    `dagster dev` then ignores SIGTERM too (it maps SIGTERM to its SIGINT handler). A handled signal
    is reset to the default on exec, so handle SIGINT here while the child is started."""
    if threading.current_thread() is not threading.main_thread() or signal.getsignal(signal.SIGINT) != signal.SIG_IGN:
        yield
        return
    signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)


def _session_processes(session_id: int) -> list[int]:
    """Live (not zombie) processes of a session, from /proc (Linux). Children of a stopped leader
    are re-parented, and in a container nobody may reap them: a zombie does not count."""
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()  # after "pid (comm) ": state ppid pgrp session ...
        if fields[0] != "Z" and int(fields[3]) == session_id:
            pids.append(int(entry))
    return pids


def _stop_session(
    process: subprocess.Popen[Any], name: str, interrupt_signal: int = signal.SIGINT, interrupt_timeout: float = 30
) -> None:
    """Stop a child started with `start_new_session=True` and everything it started.

    First `interrupt_signal` to the whole session's group, as a terminal's Ctrl-C would (each process
    shuts down its own way: `dagster dev` stops the webserver, the daemon and its code server); then
    SIGTERM and SIGKILL for whatever is left in the session after `interrupt_timeout`."""
    session = process.pid
    _signal_group(session, interrupt_signal)
    deadline = time.monotonic() + interrupt_timeout
    while time.monotonic() < deadline and (process.poll() is None or _session_processes(session)):
        time.sleep(0.2)
    for sig, grace in ((signal.SIGTERM, 10.0), (signal.SIGKILL, 10.0)):
        left = _session_processes(session)
        if process.poll() is None and process.pid not in left:
            left.append(process.pid)
        if not left:
            break
        log.warning("%s: %d process(es) still running; sending %s", name, len(left), signal.Signals(sig).name)
        for pid in left:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline and (process.poll() is None or _session_processes(session)):
            time.sleep(0.2)
    process.wait(timeout=10)


def _signal_group(group: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(group, sig)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m genesys_pipeline.local.dev", description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=3000, help="the Dagster UI's port (0: a free one)")
    parser.add_argument("--daily-volume", type=int, default=2000, help="the emulator's conversations per UTC day")
    parser.add_argument("--data-dir", default="data", help="working files, Snowflake stand-in, DAGSTER_HOME")
    parser.add_argument("--emulator-port", type=int, default=8765, help="the Genesys emulator's port (0: a free one)")
    parser.add_argument("--host", default="127.0.0.1", help="interface every service listens on")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="local_dev: %(message)s")
    log.setLevel(logging.INFO)

    stop = threading.Event()
    received: list[str] = []

    def on_signal(signum: int, _frame: object) -> None:
        # Kept for the whole run, so that no second Ctrl-C can cut the shutdown short and leave orphans.
        if stop.is_set():
            _say("still stopping, please wait")
        received.append(signal.Signals(signum).name)
        stop.set()

    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, on_signal)

    mode = LocalMode(args.port, args.daily_volume, args.data_dir, args.emulator_port, host=args.host)
    try:
        _say("starting the Genesys emulator, the S3/Snowflake stand-ins and `dagster dev`...")
        starting = threading.Thread(target=_start_or_record, args=(mode,), name="local-dev-start", daemon=True)
        starting.start()
        while starting.is_alive() and not stop.wait(0.2):
            pass
        if stop.is_set():  # interrupted while starting: start() gives up and undoes itself
            mode.cancel()
            starting.join()
            _say(f"{received[0]} during start-up")
            return 130
        if mode.start_error is not None:
            _say(f"failed to start: {mode.start_error}")
            return 1
        emulator, stack = mode.emulator, mode.stack
        _say(
            f"Dagster UI on {mode.url}  (Genesys emulator {emulator.base_url if emulator else '?'}, S3 "
            f"{stack.s3_endpoint_url if stack else '?'}, DAGSTER_HOME {mode.dagster_home}); Ctrl-C stops everything"
        )
        while not stop.wait(1.0):
            if not mode.alive():
                _say("a service exited unexpectedly; stopping the rest")
                return 1
        _say(f"{received[0]}: stopping `dagster dev`, the stand-ins and the emulator...")
        return 0
    finally:
        mode.stop()
        _say("stopped")


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
