"""CPU seconds of every process of a few process sessions, sampled from /proc (Linux; psutil is not a
dependency of the project, and /proc is all it would read).

`CpuSampler(sessions)` is a thread that every `interval` seconds reads user + system time of each
process whose session id is one of `sessions` (each server the benchmark starts leads a session of its
own, and everything it starts stays in it: `dagster dev`'s webserver, daemon, code server, run workers
and their step processes). A process that has exited but is not yet reaped keeps its final times in
/proc, so what is lost is at most the last `interval` of a process reaped between two samples.
`cpu_at(t)` gives, per process, the CPU it used from `start()` to the last sample at or before `t`.
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass, field

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


@dataclass
class Process:
    pid: int
    session: int
    parent: int
    command: str
    baseline: float  # CPU seconds already used when sampling started (0 for a process born later)
    samples: list[tuple[float, float]] = field(default_factory=list)  # (wall clock, CPU seconds)

    def used_by(self, instant: float) -> float:
        """CPU seconds used since sampling started, as of the last sample at or before `instant`."""
        last = self.baseline
        for when, cpu in self.samples:
            if when > instant:
                break
            last = cpu
        return last - self.baseline


def _stat(pid: int) -> tuple[int, int, float] | None:
    """(session, parent pid, user + system CPU seconds) of a process, None if it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            text = stat.read()
    except OSError:
        return None
    fields = text[text.rindex(")") + 2 :].split()  # after "pid (comm) ": state ppid pgrp session ...
    return int(fields[3]), int(fields[1]), (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def _command(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as cmdline:
            return cmdline.read().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return ""


class CpuSampler(threading.Thread):
    def __init__(self, sessions: set[int], interval: float = 0.2) -> None:
        super().__init__(name="cpu-sampler", daemon=True)
        self.sessions, self.interval = sessions, interval
        self.processes: dict[int, Process] = {}
        self._foreign: set[int] = set()  # pids seen outside our sessions: not read again
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._first = True

    def sample(self) -> None:
        now = time.time()
        pids = {int(entry) for entry in os.listdir("/proc") if entry.isdigit()}
        self._foreign &= pids
        with self._lock:
            for pid in pids - self._foreign:
                stat = _stat(pid)
                if stat is None:
                    continue
                session, parent, cpu = stat
                known = self.processes.get(pid)
                if known is None:
                    if session not in self.sessions:
                        self._foreign.add(pid)
                        continue
                    # Alive before sampling started: only what it uses from now on counts.
                    known = self.processes[pid] = Process(pid, session, parent, _command(pid), cpu if self._first else 0.0)
                elif not known.samples or known.samples[-1][1] != cpu:
                    # A forked child execs after we first saw it: its command line is the one it ends with.
                    known.command = _command(pid) or known.command
                known.samples.append((now, cpu))
            self._first = False

    def run(self) -> None:
        while not self._stopping.wait(self.interval):
            self.sample()

    def start(self) -> None:
        self.sample()  # the baselines
        super().start()

    def stop(self) -> None:
        self._stopping.set()
        self.join()
        self.sample()

    def cpu_at(self, instant: float) -> dict[int, float]:
        with self._lock:
            return {pid: process.used_by(instant) for pid, process in self.processes.items()}


def own_cpu_seconds() -> float:
    """This process's user + system CPU seconds (the harness: launches, polling, sampling)."""
    times = os.times()
    return times.user + times.system
