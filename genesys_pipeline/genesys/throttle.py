"""The client-side request budget, shared by the threads (and clients) that use one throttle."""

from __future__ import annotations

import collections
import threading
import time


class RequestThrottle:
    """Keeps a client at or below `limit` requests in any `window_seconds`, across threads.

    A sliding log, like the API's own per-token window: a request may start while fewer than
    `limit` requests are in flight or finished within the last window. A finished request is
    dated by when its *response arrived*, which is no earlier than when the server counted it; so
    a new request is never counted by the server inside the window of the one it replaces, however
    the latency varies. That costs one latency per window, not a safety margin on the budget, so
    the client still runs at its budget.
    """

    def __init__(self, limit: int, window_seconds: float = 60.0) -> None:
        if limit < 1:
            raise ValueError(f"limit must be >= 1, got {limit}")
        self.limit = limit
        self.window_seconds = window_seconds
        self._finished: collections.deque[float] = collections.deque()  # response times, ascending
        self._in_flight = 0
        self._condition = threading.Condition()

    def acquire(self) -> float:
        """Block until a request may start; return the seconds spent waiting."""
        started = time.monotonic()
        with self._condition:
            while True:
                now = time.monotonic()
                while self._finished and self._finished[0] <= now - self.window_seconds:
                    self._finished.popleft()
                if len(self._finished) + self._in_flight < self.limit:
                    self._in_flight += 1
                    return now - started
                # Full: wait until the oldest finished request leaves the window, or until an
                # in-flight one finishes (release() notifies), whichever comes first.
                timeout = self._finished[0] + self.window_seconds - now if self._finished else None
                self._condition.wait(timeout)

    def release(self) -> None:
        """Mark one acquired request as finished (call exactly once per `acquire`)."""
        with self._condition:
            self._in_flight -= 1
            self._finished.append(time.monotonic())
            self._condition.notify_all()
