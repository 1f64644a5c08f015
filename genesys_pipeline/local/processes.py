"""Child processes for `make dev`: each in a session of its own, stopped with everything it started.

`dagster dev` starts a webserver, a daemon, a code server and run workers, and those start more. A
terminal's Ctrl-C would reach all of them at once, in no order; here only `make dev` gets it (as a
`StopSignals` request), and it stops each child session as a whole: the polite signal first, then
SIGTERM and SIGKILL for whatever is still running. Also here: free ports, and asking the Dagster
webserver over GraphQL whether the UI is usable yet.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import socket
import subprocess
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

# Whether the code location has loaded and the daemon's required loops (backfills, the run queue,
# schedules, sensors) report healthy: only then is a launch from the UI picked up.
_READINESS_QUERY = """{
  workspaceOrError { __typename ... on Workspace { locationEntries { name loadStatus
      locationOrLoadError { __typename ... on PythonError { message } } } } }
  instance { daemonHealth { allDaemonStatuses { daemonType required healthy } } }
}"""


# ##### SESSIONS


class StopSignals:
    """SIGINT, SIGTERM and SIGHUP as a request to stop, from now until this process ends.

    The handlers stay for the whole run, so that no second Ctrl-C can cut the shutdown short and leave
    orphans: a repeated signal only calls `on_repeat`."""

    def __init__(self, on_repeat: Callable[[], None]) -> None:
        self.received: list[str] = []  # the signals' names, in order
        self._event = threading.Event()
        self._on_repeat = on_repeat
        for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(signum, self._handle)

    def _handle(self, signum: int, _frame: object) -> None:
        if self._event.is_set():
            self._on_repeat()
        self.received.append(signal.Signals(signum).name)
        self._event.set()

    def wait(self, timeout: float) -> bool:
        """Whether a stop has been asked for, waiting at most `timeout` seconds for one."""
        return self._event.wait(timeout)


def exit_on_termination() -> None:
    """SIGTERM and SIGHUP end this process as Ctrl-C does: as an exception in the main thread, so the
    `with` blocks that started child sessions stop them (a `timeout` or a closed terminal would otherwise
    kill only this process and leave the emulator, the stand-ins and `dagster dev` running)."""

    def _exit(signum: int, _frame: object) -> None:
        raise SystemExit(128 + signum)

    for signum in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, _exit)


def start_session(command: list[str], **popen: Any) -> subprocess.Popen[bytes]:
    """`subprocess.Popen(command, **popen)` as the leader of a new session, with no stdin.

    In a session of its own, a child is out of reach of the terminal's Ctrl-C: this process decides
    when it stops, and `stop_session` then finds everything it started by the session id."""
    with _signals_not_ignored():
        return subprocess.Popen(command, start_new_session=True, stdin=subprocess.DEVNULL, **popen)


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


def stop_session(
    process: subprocess.Popen[Any], name: str, interrupt_signal: int = signal.SIGINT, interrupt_timeout: float = 30
) -> None:
    """Stop a child started by `start_session` and everything it started.

    First `interrupt_signal` to the whole session's group, as a terminal's Ctrl-C would (each process
    shuts down its own way: `dagster dev` stops the webserver, the daemon and its code server); then
    SIGTERM and SIGKILL for whatever is left in the session after `interrupt_timeout`."""
    session = process.pid
    with contextlib.suppress(ProcessLookupError, PermissionError):  # the group may be gone already
        os.killpg(session, interrupt_signal)
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


# ##### PORTS


def port_is_free(host: str, port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind((host, port))
        except OSError:
            return False
        return True


def free_port(host: str) -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


# ##### THE DAGSTER UI


def graphql(url: str, query: str, variables: dict[str, Any] | None = None, timeout: float = 30) -> dict[str, Any]:
    """POST a query to the Dagster webserver's GraphQL endpoint; its `data`, or ValueError on errors."""
    body = json.dumps({"query": query, "variables": variables or {}}).encode()
    request = urllib.request.Request(f"{url}/graphql", body, {"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=timeout) as response:
        answer = json.load(response)
    if answer.get("errors"):
        raise ValueError(f"GraphQL errors: {answer['errors']}")
    return answer["data"]


def wait_until_ready(
    url: str, dagster: subprocess.Popen[bytes], timeout: float, cancelled: threading.Event, hint: str = ""
) -> None:
    """Return once the UI at `url` is usable (code location loaded, required daemons healthy).

    RuntimeError if `dagster` exits, the code location fails to load or `cancelled` is set;
    TimeoutError after `timeout` seconds. `hint` ends the messages that the output can explain."""
    deadline, problem = time.monotonic() + timeout, "no answer yet"
    while time.monotonic() < deadline:
        if cancelled.is_set():
            raise RuntimeError("start-up cancelled")
        if dagster.poll() is not None:
            raise RuntimeError(f"`dagster dev` exited with code {dagster.returncode}" + hint)
        try:
            problem = _readiness_problem(graphql(url, _READINESS_QUERY, timeout=10))
        except (OSError, ValueError) as error:  # not listening yet, or not answering GraphQL yet
            problem = str(error)
        if not problem:
            return
        if problem.startswith("code location failed"):
            raise RuntimeError(problem)
        time.sleep(0.5)
    raise TimeoutError(f"the Dagster UI was not ready within {timeout:.0f} s: {problem}" + hint)


def _readiness_problem(data: dict[str, Any]) -> str:
    """What still keeps the UI from being usable, from the answer to `_READINESS_QUERY`; "" if nothing."""
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
