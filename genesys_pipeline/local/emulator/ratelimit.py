"""Per-token sliding-window rate limit with the `inin-ratelimit-*` headers."""

from __future__ import annotations

import collections
import math
import threading
import time

WINDOW_SECONDS = 60.0


class SlidingWindowLimiter:
    def __init__(self, allowed_per_window: int) -> None:
        self.allowed = allowed_per_window
        self._lock = threading.Lock()
        self._hits: dict[str, collections.deque[float]] = collections.defaultdict(collections.deque)

    def hit(self, token: str) -> tuple[bool, dict[str, str]]:
        """Count one request for `token`. Returns (admitted, headers for the response).

        A rejected request is not counted: the client is told to wait until the oldest admitted
        request leaves the window, and a retry at that moment is admitted.
        """
        now = time.monotonic()
        with self._lock:
            hits = self._hits[token]
            while hits and hits[0] <= now - WINDOW_SECONDS:
                hits.popleft()
            admitted = len(hits) < self.allowed
            if admitted:
                hits.append(now)
            reset = math.ceil(hits[0] + WINDOW_SECONDS - now) if hits else int(WINDOW_SECONDS)
            headers = {
                "inin-ratelimit-allowed": str(self.allowed),
                "inin-ratelimit-count": str(len(hits)),
                "inin-ratelimit-reset": str(max(reset, 1)),
            }
        if not admitted:
            headers["Retry-After"] = headers["inin-ratelimit-reset"]
        return admitted, headers
