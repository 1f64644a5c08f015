"""The faults the emulator injects when configured to (`fault_rate`, `bad_body_rate`,
`token_bad_body_rate`): an API request answered 429, 503 or 504 or its connection reset, and a 200
whose body a proxy broke on the way (cut off halfway, or an HTML page).

Apart from the request handling so that what is drawn, and from which seeded stream, sits in one
place: the same seed injects the same faults into the same sequence of requests.
"""

from __future__ import annotations

import random
import threading

from .config import EmulatorConfig
from .errors import ApiError, too_many_requests
from .messages import Response
from .stats import Stats

FAULT_KINDS = ("429", "503", "504", "reset")
PROXY_PAGE = (
    b"<!DOCTYPE html><html><head><title>Service unavailable</title></head><body><h1>Please wait"
    b"</h1><p>The gateway could not reach the upstream service. Try again shortly.</p></body></html>"
)


class FaultInjector:
    """Draws the faults of `config` (read at each request: a test may change the rates while the
    emulator runs) and counts each one in `stats`."""

    def __init__(self, config: EmulatorConfig, stats: Stats) -> None:
        self.config = config
        self.stats = stats
        self._fault_draws = random.Random(config.seed ^ 0xFA17)
        self._fault_lock = threading.Lock()
        self._bad_body_draws = random.Random(config.seed ^ 0xBAD)

    def draw_fault(self) -> str | None:
        """One of FAULT_KINDS for this API request, or None (most of the time)."""
        if self.config.fault_rate <= 0:
            return None
        with self._fault_lock:
            if self._fault_draws.random() >= self.config.fault_rate:
                return None
            return self._fault_draws.choice(FAULT_KINDS)

    def spoil(self, response: Response, rate: float) -> Response:
        """With probability `rate`, a 200 goes out with a broken body, as a proxy in front of the
        service may send it: the JSON cut off halfway, or an HTML page; still status 200."""
        if response.status != 200 or rate <= 0:
            return response
        with self._fault_lock:
            if self._bad_body_draws.random() >= rate:
                return response
            kind = self._bad_body_draws.choice(self.config.bad_body_kinds.split(","))
        self.stats.add(f"faults.bad_body_{kind}")
        if kind == "html":
            response.raw, response.headers["Content-Type"] = PROXY_PAGE, "text/html; charset=UTF-8"
        else:
            encoded = response.encoded()
            response.raw = encoded[: len(encoded) // 2]
        return response


def injected_error(kind: str, retry_after: int) -> ApiError:
    """The error answer of a drawn fault other than "reset"."""
    if kind == "429":
        return too_many_requests(retry_after)
    if kind == "503":
        return ApiError(503, "service.unavailable", "The service is currently unavailable.")
    return ApiError(504, "request.timeout", "The request timed out.")
