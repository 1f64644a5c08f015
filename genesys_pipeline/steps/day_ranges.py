"""Which runs of the conversations chain must wait for which, and whether a run's worker is provably gone.

Two runs that touch the same day must not interleave: each replaces the day's files, S3 objects and
Snowflake rows, so one run's publish could delete what the other's load is reading. A run's days are
a range of calendar days (one day for the schedule and single-day launches, up to a backfill chunk for
ranged runs); two runs conflict when their ranges share a day.

Conflicting runs take turns in the order in which each started its first step of the chain: the one
that started first goes on, the later one waits. Every run computes the same order from the same
stored timestamps, so no two runs wait for each other (no deadlock), and runs of different days never
wait at all.

No Dagster here: the caller (defs/day_exclusivity.py) reads the runs from the Dagster instance.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path


@dataclass(frozen=True)
class DayRange:
    """The calendar days first..last, both included."""

    first: date
    last: date

    @classmethod
    def of_keys(cls, keys: Sequence[str]) -> DayRange:
        """The range of daily partition keys (YYYY-MM-DD), in any order."""
        if not keys:
            raise ValueError("a run of the conversations chain has at least one day; got no partition keys")
        days = sorted(date.fromisoformat(key) for key in keys)
        return cls(days[0], days[-1])

    def overlaps(self, other: DayRange) -> bool:
        return self.first <= other.last and other.first <= self.last

    def __str__(self) -> str:
        return self.first.isoformat() if self.first == self.last else f"{self.first.isoformat()}..{self.last.isoformat()}"


@dataclass(frozen=True)
class RunInLine:
    """A run in progress, its days, and when it started its first step of the chain (a stored event's
    timestamp, the same for every reader); None while it has not started one."""

    run_id: str
    days: DayRange
    first_step_at: float | None

    def goes_before(self, other: RunInLine) -> bool:
        """Whether this run is ahead of `other` in line (both have started; the run id breaks ties)."""
        assert self.first_step_at is not None and other.first_step_at is not None
        return (self.first_step_at, self.run_id) < (other.first_step_at, other.run_id)


@dataclass(frozen=True)
class Turn:
    """What a run's step should do: wait for `ahead` (runs ahead in line on an overlapping day), or go on
    when it is empty. `unplaced` are overlapping runs in progress that have not shown a first step."""

    ahead: tuple[RunInLine, ...]
    unplaced: tuple[RunInLine, ...]


def whose_turn(me: RunInLine, others: Iterable[RunInLine]) -> Turn:
    """The overlapping runs `me` must wait for. A run that has not started a chain step yet is behind
    `me` (it will find `me` ahead when it does), unless its start is being recorded at this very moment:
    the caller rechecks once its own first step is a moment old (see SETTLE_SECONDS in the caller)."""
    overlapping = [run for run in others if run.run_id != me.run_id and run.days.overlaps(me.days)]
    ahead = tuple(run for run in overlapping if run.first_step_at is not None and run.goes_before(me))
    unplaced = tuple(run for run in overlapping if run.first_step_at is None)
    return Turn(ahead, unplaced)


# ##### IS A RUN'S WORKER STILL THERE?


@dataclass(frozen=True)
class WorkerProcess:
    """A process as seen from its machine: the host name, the boot (a reboot reuses pids), the pid
    namespace (containers sharing a host name do not see each other's pids) and the process's start
    time in clock ticks since boot (a pid reused by a later process has another start time). The last
    three are None where /proc is not available (macOS)."""

    host: str
    pid: int
    boot_id: str | None = None
    pid_namespace: str | None = None
    started_ticks: int | None = None

    def same_machine(self, other: WorkerProcess) -> bool:
        return (self.host, self.boot_id, self.pid_namespace) == (other.host, other.boot_id, other.pid_namespace)


def _read(path: str) -> str | None:
    try:
        return Path(path).read_text(encoding="ascii").strip()
    except OSError:
        return None


def _started_ticks(pid: int) -> int | None:
    """Field 22 of /proc/<pid>/stat (starttime); None if there is no such process or only its zombie
    (killed, not yet reaped by its parent: it runs nothing any more)."""
    stat = _read(f"/proc/{pid}/stat")
    if stat is None:
        return None
    # The fields after the command name, which is in parentheses and may hold spaces: state is field 3.
    fields = stat.rsplit(")", 1)[1].split()
    return None if fields[0] in ("Z", "X") else int(fields[19])


def worker_process(pid: int) -> WorkerProcess:
    """Process `pid` of this machine, as a later reader on this machine can recognise it."""
    try:
        namespace = os.readlink("/proc/self/ns/pid")
    except OSError:
        namespace = None
    return WorkerProcess(socket.gethostname(), pid, _read("/proc/sys/kernel/random/boot_id"), namespace,
                         _started_ticks(pid))  # fmt: skip


def is_provably_gone(worker: WorkerProcess) -> bool:
    """True only when `worker` ran on this machine (same host, boot and pid namespace) and that process
    no longer exists. Anything uncertain (another machine, a container of its own) answers False: a run
    is never declared abandoned on a guess."""
    here = worker_process(os.getpid())
    if not worker.same_machine(here):
        return False
    if worker.started_ticks is not None and here.started_ticks is not None:
        # /proc available: gone unless a live process with that pid started at the same tick.
        return _started_ticks(worker.pid) != worker.started_ticks
    try:
        os.kill(worker.pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # exists, owned by someone else
        return False
    return False
