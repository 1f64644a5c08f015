"""The Genesys client's transport: `/api/v2` requests with a bearer token, through the throttle, with
retries. Its parts: tokens.py (the token cache), retries.py (the one retry loop, backoff, stats),
job_slots.py (waiting for a free detail-job slot), responses.py (reading error responses).

Kept apart from the API calls so the rules the API imposes (genesys-api.md sections 1 and 4) sit in
one place:
- tokens come from `POST {login}/oauth/token` with Basic auth and are cached until shortly before
  `expires_in`; a 401 from `/api/v2` gets exactly one fresh token and one more try;
- 429 waits `Retry-After` (else `inin-ratelimit-reset`, else the "[N] seconds" in the message);
  502/503/504, timeouts and dropped connections back off exponentially with full jitter; every
  other 4xx fails at once with the ErrorBody's fields. A 2xx whose body is not the JSON object
  the endpoint returns (cut short, or a proxy's HTML page with status 200) is retried like a 503,
  then fails naming method, path, status, content type and the body's start. One loop
  (`send_with_retries`) applies this to the token request and to `/api/v2` requests alike;
- every `/api/v2` request goes through the client's `RequestThrottle` (throttle.py);
- a job submission waits out busy detail-job slots by time, not attempts (`JobSlotWait`).

Secrets: the client secret only ever goes into the Basic header of the token request and the
token only into Bearer headers. Neither is logged, put in an exception or shown by a repr.
"""

from __future__ import annotations

from typing import Any

import httpx

from genesys_pipeline.genesys.bodies import decode_json_object
from genesys_pipeline.genesys.errors import GenesysApiError, GenesysAuthError
from genesys_pipeline.genesys.job_slots import JobSlotWait
from genesys_pipeline.genesys.responses import error_fields, log
from genesys_pipeline.genesys.retries import (
    GenesysClientStats,
    RetryPolicy,
    send_with_retries,
)
from genesys_pipeline.genesys.settings import ClientSettings
from genesys_pipeline.genesys.throttle import RequestThrottle
from genesys_pipeline.genesys.tokens import AccessTokens


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
        fields = error_fields(method, path, response)
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
