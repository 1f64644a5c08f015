"""OAuth client-credentials tokens: `POST {login}/oauth/token` with Basic auth, cached until shortly
before `expires_in`. The client secret only ever goes into the Basic header, the token only into
Bearer headers; neither is logged, put in an exception or shown by a repr."""

from __future__ import annotations

import base64
import threading
import time
from typing import Any

import httpx

from genesys_pipeline.genesys.bodies import BadBody, decode_json_object
from genesys_pipeline.genesys.errors import GenesysAuthError
from genesys_pipeline.genesys.responses import json_object
from genesys_pipeline.genesys.retries import (
    GenesysClientStats,
    RetryPolicy,
    send_with_retries,
)
from genesys_pipeline.genesys.settings import ClientSettings


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
        body = json_object(response)
        error = str(body.get("error") or "unknown_error")
        description = body.get("error_description") or body.get("description") or response.reason_phrase
        return GenesysAuthError(
            f"Genesys token request to {self._token_url} for client_id {self._client_id!r} was "
            f"rejected with HTTP {response.status_code} {error}: {description}. Check the client "
            "id and secret, and that region/login_base_url point at the org's login host.",
            status=response.status_code,
            error=error,
        )
