"""The one retry loop of the Genesys client, its backoff, and the client's stats.

- 429 waits `Retry-After` (else `inin-ratelimit-reset`, else the "[N] seconds" in the message);
  502/503/504, timeouts and dropped connections back off exponentially with full jitter; every other
  status is the caller's to judge. A 2xx whose body is not the JSON object the endpoint returns (cut
  short, or a proxy's HTML page with status 200) is retried like a 503, then fails naming method,
  path, status, content type and the body's start.
- `send_with_retries` applies this to the token request and to `/api/v2` requests alike; a job
  submission's wait for a free detail-job slot is timed by a `SlotWait` (job_slots.py) instead.
"""

from __future__ import annotations

import dataclasses
import random
import re
import threading
import time
from email.utils import parsedate_to_datetime
from typing import Any, Callable, Protocol

import httpx

from genesys_pipeline.genesys.bodies import BadBody
from genesys_pipeline.genesys.errors import (
    GenesysRetriesExhausted,
    GenesysTransportError,
)
from genesys_pipeline.genesys.responses import (
    describe_error,
    error_fields,
    json_object,
    log,
    status_reason,
)

RETRYABLE_STATUSES = frozenset({429, 502, 503, 504})
# Transport failures worth another try. Deliberately not httpx.TransportError as a whole: an
# UnsupportedProtocol or LocalProtocolError is a bug on our side and would fail again.
RETRYABLE_EXCEPTIONS: tuple[type[Exception], ...] = (
    httpx.TimeoutException,  # connect/read/write/pool timeouts
    httpx.NetworkError,  # ConnectError, ReadError (e.g. connection reset), WriteError, CloseError
    httpx.RemoteProtocolError,  # server closed a keep-alive connection mid-response
    httpx.ProxyError,
)
_RETRY_IN_MESSAGE = re.compile(r"Retry the request in \[(\d+(?:\.\d+)?)\] seconds")


@dataclasses.dataclass
class GenesysClientStats:
    """What the client did, for logs and metadata. Thread-safe; read with `snapshot()`."""

    requests: int = 0  # /api/v2 requests sent, every attempt counted (retries included)
    token_requests: int = 0  # POST /oauth/token calls
    retries: int = 0  # attempts repeated after a 429, 5xx or transport error
    rate_limited: int = 0  # 429 responses seen
    server_errors: int = 0  # 502/503/504 responses seen
    transport_errors: int = 0  # timeouts and dropped connections seen
    bad_bodies: int = 0  # 2xx responses whose body was not the expected JSON object
    token_refreshes: int = 0  # new tokens fetched because the API answered 401
    throttle_waits: int = 0  # requests the client-side throttle held back
    throttle_wait_seconds: float = 0.0  # total time spent held back by the throttle
    job_slot_waits: int = 0  # job submissions repeated because every detail-job slot was taken
    job_slot_wait_seconds: float = 0.0  # total time spent waiting for a detail-job slot
    _lock: threading.Lock = dataclasses.field(default_factory=threading.Lock, repr=False, compare=False)

    def add(self, **increments: float) -> None:
        with self._lock:
            for name, amount in increments.items():
                setattr(self, name, getattr(self, name) + amount)

    def snapshot(self) -> dict[str, int | float]:
        with self._lock:
            return {
                field.name: getattr(self, field.name)
                for field in dataclasses.fields(self)
                if not field.name.startswith("_")
            }


@dataclasses.dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int
    backoff_base_seconds: float
    backoff_cap_seconds: float

    def backoff(self, attempt: int) -> float:
        """Exponential backoff with full jitter: uniform(0, min(cap, base * 2**(attempt-1)))."""
        ceiling = min(self.backoff_cap_seconds, self.backoff_base_seconds * 2 ** (attempt - 1))
        return random.uniform(0, ceiling)

    def delay(self, attempt: int, response: httpx.Response | None) -> float:
        """Seconds to wait before attempt `attempt + 1`. For a 429 the server's hint is the floor
        (it says when the window frees); the jittered backoff on top spreads repeated 429s, e.g.
        job submissions waiting for a concurrent-job slot."""
        backoff = self.backoff(attempt)
        hint = retry_after_seconds(response) if response is not None else None
        return backoff if hint is None else max(hint, backoff)


def retry_after_seconds(response: httpx.Response) -> float | None:
    """The server's wait hint. For a 429: Retry-After, else inin-ratelimit-reset, else the
    message's "[N] seconds". For other statuses only an explicit Retry-After counts: every
    response carries inin-ratelimit-reset, and on a 503 it says nothing about the outage."""
    headers = ("Retry-After", "inin-ratelimit-reset") if response.status_code == 429 else ("Retry-After",)
    for header in headers:
        value = response.headers.get(header)
        if value:
            try:
                return max(0.0, float(value))
            except ValueError:
                try:  # Retry-After may also be an HTTP date
                    return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
                except (TypeError, ValueError):
                    pass
    if response.status_code != 429:
        return None
    match = _RETRY_IN_MESSAGE.search(str(json_object(response).get("message") or ""))
    return float(match.group(1)) if match else None


class SlotWait(Protocol):
    """The patience of one job submission for a free detail-job slot (job_slots.JobSlotWait)."""

    def applies_to(self, response: httpx.Response) -> bool: ...

    def delay(self, fields: dict[str, Any], response: httpx.Response) -> float: ...


def send_with_retries(
    send: Callable[[], httpx.Response],
    *,
    method: str,
    path: str,
    policy: RetryPolicy,
    stats: GenesysClientStats,
    count_failures: bool = True,
    slot_wait: SlotWait | None = None,
    where: str | None = None,
) -> httpx.Response:
    """Call `send` (one attempt) until its response has a status that is not retryable; return
    that response, 2xx or not: what a final status means is the caller's to say.

    429, 502/503/504 and dropped connections or timeouts wait `policy.delay` and try again, up to
    `policy.max_attempts` attempts in all; then `GenesysRetriesExhausted` or
    `GenesysTransportError`. `count_failures=False` leaves the 429/5xx/transport counters of
    `stats` alone: they describe `/api/v2` traffic, and the token request is not part of it.
    With `slot_wait`, a 429 of busy detail-job slots costs no attempt: `slot_wait` times it.
    `send` raises `BadBody` for a 2xx it cannot decode: retried the same way, then
    `GenesysBadResponse`, whose message says `where` (the job or page) if given.
    """
    attempt = 0
    while True:
        attempt += 1
        try:
            response = send()
        except RETRYABLE_EXCEPTIONS as error:
            if count_failures:
                stats.add(transport_errors=1)
            if attempt >= policy.max_attempts:
                # `from None`: the httpx exception adds nothing a user needs and keeps the
                # request object (with its Authorization header) out of the error chain.
                raise GenesysTransportError(
                    method=method, path=path, attempts=attempt, reason=describe_error(error)
                ) from None
            reason, failed = describe_error(error), None
        except BadBody as bad:
            if count_failures:
                stats.add(bad_bodies=1)
            if attempt >= policy.max_attempts:
                raise bad.exhausted(method, path, attempt, where) from None
            reason, failed = bad.summary(), None
        else:
            status = response.status_code
            if status not in RETRYABLE_STATUSES:
                return response
            if count_failures:
                stats.add(**{"rate_limited" if status == 429 else "server_errors": 1})
            fields = error_fields(method, path, response)
            if slot_wait is not None and slot_wait.applies_to(response):
                attempt -= 1
                delay = slot_wait.delay(fields, response)
                stats.add(retries=1, job_slot_waits=1, job_slot_wait_seconds=delay)
                time.sleep(delay)
                continue
            if attempt >= policy.max_attempts:
                raise GenesysRetriesExhausted(attempts=attempt, **fields)
            reason, failed = status_reason(fields), response
        delay = policy.delay(attempt, failed)
        log.warning(
            "Genesys API %s %s failed (%s); retry %d of %d in %.1fs",
            method, path, reason, attempt, policy.max_attempts - 1, delay,
        )  # fmt: skip
        stats.add(retries=1)
        time.sleep(delay)
