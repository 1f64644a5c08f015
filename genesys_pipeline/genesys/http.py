"""HTTP plumbing of the Genesys client: OAuth tokens, retries, stats, the transport.

Kept apart from the API calls so the rules the API imposes (genesys-api.md sections 1 and 4) sit in
one place:
- tokens come from `POST {login}/oauth/token` with Basic auth and are cached until shortly before
  `expires_in`; a 401 from `/api/v2` gets exactly one fresh token and one more try;
- 429 waits `Retry-After` (else `inin-ratelimit-reset`, else the "[N] seconds" in the message);
  502/503/504, timeouts and dropped connections back off exponentially with full jitter; every
  other 4xx fails at once with the ErrorBody's fields. A 2xx whose body is not the JSON object
  the endpoint returns (cut short, or a proxy's HTML page with status 200) is retried like a 503,
  then fails naming method, path, status, content type and the body's start. One loop (`send_with_retries`) applies
  this to the token request and to `/api/v2` requests alike;
- every `/api/v2` request goes through the client's `RequestThrottle` (throttle.py);
- a job submission waits out busy detail-job slots by time, not attempts (`JobSlotWait`).

Secrets: the client secret only ever goes into the Basic header of the token request and the
token only into Bearer headers. Neither is logged, put in an exception or shown by a repr.
"""

from __future__ import annotations

import base64
import dataclasses
import logging
import random
import re
import threading
import time
from email.utils import parsedate_to_datetime
from typing import Any, Callable

import httpx

from genesys_pipeline.genesys.bodies import BadBody, decode_json_object
from genesys_pipeline.genesys.errors import (
    GenesysApiError,
    GenesysAuthError,
    GenesysRetriesExhausted,
    GenesysTransportError,
)
from genesys_pipeline.genesys.settings import ClientSettings
from genesys_pipeline.genesys.throttle import RequestThrottle

# The name `dg.get_dagster_logger("genesys")` gives, without importing Dagster: in a run, Dagster
# captures the records of `dagster.builtin.*` loggers into the run's event log.
log = logging.getLogger("dagster.builtin.genesys")

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


# --- stats -----------------------------------------------------------------------------------


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


# --- retry policy ----------------------------------------------------------------------------


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
    match = _RETRY_IN_MESSAGE.search(str(_json_object(response).get("message") or ""))
    return float(match.group(1)) if match else None


# --- waiting for a detail-job slot -----------------------------------------------------------

SLOT_WAIT_LOG_EVERY_SECONDS = 30.0


def is_job_slots_429(response: httpx.Response) -> bool:
    """Whether a 429 to a job submission says the org's detail-job slots are all taken, rather than
    that this token is over its request rate. The real body of that 429 is UNCONFIRMED, so: a body
    that names a concurrent limit (its message, or the ErrorBody's `limit.key`), or else a 429 while
    the `inin-ratelimit-*` headers show room in the token's window (the rate limit's 429 comes with
    a full window; a job-submission limit is the only other one this request meets)."""
    if response.status_code != 429:
        return False
    body = _json_object(response)
    limit = body.get("limit") if isinstance(body.get("limit"), dict) else {}
    if "concurrent" in f"{body.get('message', '')} {limit.get('key', '')}".lower():
        return True
    count, allowed = (_int_header(response, name) for name in ("inin-ratelimit-count", "inin-ratelimit-allowed"))
    return count is not None and allowed is not None and count < allowed


class JobSlotWait:
    """The patience of one job submission. When every detail-job slot of the org is taken (another
    integration's jobs may hold them for many minutes) the submission is repeated for up to
    `budget_seconds` of wall time, honouring Retry-After, instead of `max_attempts` tries; every
    other failure keeps the normal retry budget. Says what it waits for at INFO, at most every 30 s."""

    def __init__(self, budget_seconds: float, policy: RetryPolicy, slots: int | None) -> None:
        self.budget_seconds = budget_seconds
        self._policy = policy
        self._slots = slots  # the org's detail-job slots, if its limits were read
        self._started: float | None = None
        self._logged_at: float | None = None
        self.waits = 0

    def delay(self, fields: dict[str, Any], response: httpx.Response) -> float:
        """Seconds to wait before submitting again; `JobSlotsBusy` once the budget is spent."""
        now = time.monotonic()
        self._started = now if self._started is None else self._started
        waited = now - self._started
        limit = _json_object(response).get("limit")
        if isinstance(limit, dict) and isinstance(limit.get("value"), int):
            self._slots = limit["value"]
        slots = f"all {self._slots}" if self._slots else "all"
        if waited >= self.budget_seconds:
            raise JobSlotsBusy(attempts=self.waits + 1, waited=waited, budget=self.budget_seconds, slots=slots, **fields)
        self.waits += 1
        if self._logged_at is None or now - self._logged_at >= SLOT_WAIT_LOG_EVERY_SECONDS:
            self._logged_at = now
            log.info(
                "Genesys detail-job submission: %s detail-job slots of the org are in use (another "
                "integration?); waiting, %s of %s so far (job_slot_wait_seconds). The API said: %s: %s",
                slots, _span(waited), _span(self.budget_seconds), _status_reason(fields), fields["message"],
            )  # fmt: skip
        # The backoff's growth (to backoff_cap_seconds; the exponent bounded so it stays a float)
        # spaces out the tries of a long wait; the last one comes when the budget ends.
        return min(self._policy.delay(min(self.waits, 32), response), self.budget_seconds - waited)


class JobSlotsBusy(GenesysRetriesExhausted):
    """Every detail-job slot of the org stayed taken for the whole `job_slot_wait_seconds`."""

    def __init__(self, *, waited: float, budget: float, slots: str, **fields: Any) -> None:
        self.waited_seconds = waited
        self.budget_seconds = budget
        self.slots = slots
        super().__init__(**fields)

    def _describe(self) -> str:
        return (
            f"{super()._describe()}: {self.slots} detail-job slots of the org stayed in use for "
            f"{_span(self.waited_seconds)} (job_slot_wait_seconds={self.budget_seconds:g}). Another "
            "integration may be running detail jobs; raise job_slot_wait_seconds on GenesysResource, "
            "or run when its jobs are done."
        )


# --- the retry loop --------------------------------------------------------------------------


def send_with_retries(
    send: Callable[[], httpx.Response],
    *,
    method: str,
    path: str,
    policy: RetryPolicy,
    stats: GenesysClientStats,
    count_failures: bool = True,
    slot_wait: JobSlotWait | None = None,
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
                    method=method, path=path, attempts=attempt, reason=_describe(error)
                ) from None
            reason, failed = _describe(error), None
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
            fields = _error_fields(method, path, response)
            if slot_wait is not None and is_job_slots_429(response):
                attempt -= 1
                delay = slot_wait.delay(fields, response)
                stats.add(retries=1, job_slot_waits=1, job_slot_wait_seconds=delay)
                time.sleep(delay)
                continue
            if attempt >= policy.max_attempts:
                raise GenesysRetriesExhausted(attempts=attempt, **fields)
            reason, failed = _status_reason(fields), response
        delay = policy.delay(attempt, failed)
        log.warning(
            "Genesys API %s %s failed (%s); retry %d of %d in %.1fs",
            method, path, reason, attempt, policy.max_attempts - 1, delay,
        )  # fmt: skip
        stats.add(retries=1)
        time.sleep(delay)


# --- tokens ----------------------------------------------------------------------------------


class AccessTokens:
    """OAuth client-credentials tokens, fetched lazily and cached until shortly before expiry."""

    def __init__(
        self, http: httpx.Client, settings: ClientSettings, policy: RetryPolicy, stats: GenesysClientStats
    ) -> None:
        self._http = http
        self._token_url = f"{settings.login_base_url}/oauth/token"
        self._client_id = settings.client_id
        credentials = f"{settings.client_id}:{settings.client_secret}".encode()
        self._basic = "Basic " + base64.b64encode(credentials).decode("ascii")
        self._policy = policy
        self._stats = stats
        self._lock = threading.Lock()
        self._token: str | None = None
        self._refresh_at = 0.0

    def __repr__(self) -> str:
        return f"AccessTokens(token_url={self._token_url!r}, client_id={self._client_id!r})"

    def get(self) -> str:
        with self._lock:  # one thread fetches, the others wait for its token
            if self._token is None or time.monotonic() >= self._refresh_at:
                self._token, lifetime = self._fetch()
                # Renew 10% early (at most 60 s) so a token never expires mid-request.
                self._refresh_at = time.monotonic() + lifetime - min(60.0, 0.1 * lifetime)
            return self._token

    def invalidate(self, token: str) -> bool:
        """Drop `token` after a 401. False if another thread already replaced it."""
        with self._lock:
            if self._token != token:
                return False
            self._token = None
            return True

    def _fetch(self) -> tuple[str, float]:
        body: dict[str, Any] = {}

        def send() -> httpx.Response:
            nonlocal body
            self._stats.add(token_requests=1)
            response = self._http.post(
                self._token_url,
                data={"grant_type": "client_credentials"},
                headers={"Authorization": self._basic},
            )
            if response.status_code == 200:
                # The body holds the token: a BadBody of it never shows the body.
                body = decode_json_object(response, secret=True)
                if not isinstance(body.get("access_token"), str) or not body["access_token"]:
                    raise BadBody(response, "a JSON object without a string access_token", secret=True)
            return response

        response = send_with_retries(
            send, method="POST", path="/oauth/token", policy=self._policy, stats=self._stats, count_failures=False
        )
        if response.status_code != 200:
            raise self._rejected(response)
        return body["access_token"], float(body.get("expires_in") or 3600)

    def _rejected(self, response: httpx.Response) -> GenesysAuthError:
        # The login service answers OAuth-style {"error", "description"}, not an ErrorBody.
        body = _json_object(response)
        error = str(body.get("error") or "unknown_error")
        description = body.get("error_description") or body.get("description") or response.reason_phrase
        return GenesysAuthError(
            f"Genesys token request to {self._token_url} for client_id {self._client_id!r} was "
            f"rejected with HTTP {response.status_code} {error}: {description}. Check the client "
            "id and secret, and that region/login_base_url point at the org's login host.",
            status=response.status_code,
            error=error,
        )


# --- transport -------------------------------------------------------------------------------


class GenesysTransport:
    """Sends `/api/v2` requests with a bearer token, through the throttle, with retries.

    Owns one keep-alive connection pool, shared by every thread using the transport; `close()`
    it when done.
    """

    def __init__(self, settings: ClientSettings, throttle: RequestThrottle, stats: GenesysClientStats) -> None:
        self._http = httpx.Client(
            timeout=httpx.Timeout(settings.read_timeout_seconds, connect=settings.connect_timeout_seconds),
            headers={"Accept": "application/json", "User-Agent": "genesys-pipeline/0.1 (httpx)"},
            limits=httpx.Limits(max_connections=32, max_keepalive_connections=16),
        )
        self._api_base_url = settings.api_base_url
        self._policy = RetryPolicy(settings.max_attempts, settings.backoff_base_seconds, settings.backoff_cap_seconds)
        self._tokens = AccessTokens(self._http, settings, self._policy, stats)
        self._throttle = throttle
        self._stats = stats

    def __repr__(self) -> str:
        return f"GenesysTransport(api_base_url={self._api_base_url!r})"

    def job_slot_wait(self, budget_seconds: float, slots: int | None) -> JobSlotWait:
        """Patience for one job submission, on this transport's retry policy."""
        return JobSlotWait(budget_seconds, self._policy, slots)

    def close(self) -> None:
        self._http.close()

    def request(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, Any] | None = None,
        json: Any = None,
        slot_wait: JobSlotWait | None = None,
    ) -> httpx.Response:
        """Send one logical request; return its 2xx response or raise a `GenesysError`."""
        return self._request(method, path, params, json, slot_wait, decode=False, where=None)[0]

    def request_json(
        self,
        method: str,
        path: str,
        *,
        where: str | None = None,
        params: dict[str, Any] | None = None,
        json: Any = None,
        slot_wait: JobSlotWait | None = None,
    ) -> dict[str, Any]:
        """Like `request`, for an endpoint that answers a JSON object: return it decoded. A 2xx
        whose body is not one is retried; `where` (the job or page) goes into the final error."""
        return self._request(method, path, params, json, slot_wait, decode=True, where=where)[1]

    def _request(
        self,
        method: str,
        path: str,
        params: dict[str, Any] | None,
        json: Any,
        slot_wait: JobSlotWait | None,
        *,
        decode: bool,
        where: str | None,
    ) -> tuple[httpx.Response, dict[str, Any]]:
        refreshed = False
        body: dict[str, Any] = {}

        def send() -> httpx.Response:
            nonlocal refreshed, body
            response, token = self._send(method, path, params, json)
            if response.status_code == 401 and not refreshed:
                # The token expired or was revoked early: fetch a new one and send again, once
                # per logical request. Within the same attempt, so it costs no retry budget.
                refreshed = True
                if self._tokens.invalidate(token):
                    self._stats.add(token_refreshes=1)
                log.info("Genesys API answered 401 on %s %s; fetching a new token", method, path)
                response, _ = self._send(method, path, params, json)
            if decode and response.status_code < 300:
                body = decode_json_object(response)
            return response

        response = send_with_retries(
            send, method=method, path=path, policy=self._policy, stats=self._stats, slot_wait=slot_wait, where=where
        )
        if response.status_code < 300:
            return response, body
        fields = _error_fields(method, path, response)
        if response.status_code == 401:  # so a freshly issued token was refused too
            raise GenesysAuthError(
                f"Genesys API {method} {path} answered HTTP 401 {fields['code']} "
                f"({fields['message']}) even with a freshly issued token (correlation id "
                f"{fields['correlation_id']}); check the OAuth client's roles and org",
                status=401,
                code=fields["code"],
                correlation_id=fields["correlation_id"],
            )
        raise GenesysApiError(**fields)

    def _send(
        self, method: str, path: str, params: dict[str, Any] | None, json: Any
    ) -> tuple[httpx.Response, str]:
        """One exchange with the current token, through the throttle; the response and the token."""
        token = self._tokens.get()
        waited = self._throttle.acquire()
        if waited > 0.001:
            self._stats.add(throttle_waits=1, throttle_wait_seconds=waited)
        self._stats.add(requests=1)
        try:
            response = self._http.request(
                method,
                self._api_base_url + path,
                params=params,
                json=json,
                headers={"Authorization": f"Bearer {token}"},
            )
        finally:
            self._throttle.release()
        return response, token


# --- helpers ---------------------------------------------------------------------------------


def _json_object(response: httpx.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def _error_fields(method: str, path: str, response: httpx.Response) -> dict[str, Any]:
    """The ErrorBody of a failed response, as GenesysApiError keyword arguments."""
    body = _json_object(response)
    message = body.get("message")
    if not message:
        # Not an ErrorBody (e.g. a proxy's HTML page): keep a short, single-line excerpt.
        message = " ".join(response.text.split())[:200] or response.reason_phrase
    return {
        "method": method,
        "path": path,
        "status": response.status_code,
        "code": body.get("code"),
        "message": str(message),
        "correlation_id": response.headers.get("ININ-Correlation-Id") or body.get("contextId"),
        "body": body,
    }


def _status_reason(fields: dict[str, Any]) -> str:
    """`HTTP 503 code, correlation id ...`, leaving out what the response did not carry."""
    code = f" {fields['code']}" if fields["code"] else ""
    correlation = f", correlation id {fields['correlation_id']}" if fields["correlation_id"] else ""
    return f"HTTP {fields['status']}{code}{correlation}"


def _int_header(response: httpx.Response, name: str) -> int | None:
    try:
        return int(response.headers.get(name, ""))
    except ValueError:
        return None


def _span(seconds: float) -> str:
    """`45 s` or `3 min`: how long a wait has lasted, for people."""
    return f"{seconds:.0f} s" if seconds < 90 else f"{seconds / 60:.0f} min"


def _describe(error: Exception) -> str:
    text = str(error)
    return f"{type(error).__name__}: {text}" if text else type(error).__name__
