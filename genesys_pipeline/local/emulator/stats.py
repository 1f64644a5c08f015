"""The emulator's counters: requests per endpoint, statuses, rate-limited requests, injected faults.

Apart because the request handling, the fault injection and the admin endpoint that serves them
(`/emulator/stats`) all share one instance.
"""

from __future__ import annotations

import collections
import threading


class Stats:
    """Counters a test or benchmark reads to see what the emulator really served."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.counts: collections.Counter[str] = collections.Counter()

    def add(self, key: str, amount: int = 1) -> None:
        with self._lock:
            self.counts[key] += amount

    def snapshot(self) -> dict[str, int]:
        with self._lock:
            return dict(sorted(self.counts.items()))
