"""OAuth client credentials on the login path and bearer checks for `/api/v2`."""

from __future__ import annotations

import base64
import binascii
import secrets
import threading
import time
from urllib.parse import parse_qs

from .errors import ApiError, OAuthError


class TokenIssuer:
    def __init__(self, client_id: str, client_secret: str, lifetime_seconds: int) -> None:
        self._client_id = client_id
        self._client_secret = client_secret
        self.lifetime_seconds = lifetime_seconds
        self._lock = threading.Lock()
        self._expiry_by_token: dict[str, float] = {}

    def issue(self, authorization: str | None, body: bytes, query: str) -> dict[str, object]:
        """Answer `POST /oauth/token` (Basic auth, form `grant_type=client_credentials`).

        `grant_type` is also accepted as a query parameter, as real clients do.
        """
        form = parse_qs(body.decode("utf-8", errors="replace")) if body else {}
        params = parse_qs(query)
        grant_type = (form.get("grant_type") or params.get("grant_type") or [None])[0]
        client_id, client_secret = _basic_credentials(authorization)
        if client_id is None:
            raise OAuthError(401, "invalid_client", "client not found")
        if client_id != self._client_id:
            raise OAuthError(401, "invalid_client", "client not found")
        if not secrets.compare_digest(client_secret or "", self._client_secret):
            raise OAuthError(401, "invalid_client", "authentication failed")
        if grant_type is None:
            raise OAuthError(400, "invalid_request", "grant_type is required")
        if grant_type != "client_credentials":
            raise OAuthError(400, "unsupported_grant_type", f"unsupported grant type: {grant_type}")
        token = secrets.token_urlsafe(48)
        with self._lock:
            self._expiry_by_token[token] = time.monotonic() + self.lifetime_seconds
        return {"access_token": token, "token_type": "bearer", "expires_in": self.lifetime_seconds}

    def authenticate(self, authorization: str | None) -> str:
        """Return the bearer token of a valid request, or raise the 401 ErrorBody."""
        if not authorization or not authorization.lower().startswith("bearer "):
            raise ApiError(
                401,
                "authentication.required",
                "No authentication bearer token specified in authorization header.",
            )
        token = authorization[len("bearer ") :].strip()
        with self._lock:
            expiry = self._expiry_by_token.get(token)
        if expiry is None or expiry <= time.monotonic():
            raise ApiError(401, "bad.credentials", "Invalid login credentials.")
        return token

    def revoke_all(self) -> int:
        """Invalidate every token issued so far (an admin hook: forces clients through a 401)."""
        with self._lock:
            count = len(self._expiry_by_token)
            self._expiry_by_token.clear()
        return count


def _basic_credentials(authorization: str | None) -> tuple[str | None, str | None]:
    if not authorization or not authorization.lower().startswith("basic "):
        return None, None
    try:
        decoded = base64.b64decode(authorization[6:].strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None, None
    client_id, _, client_secret = decoded.partition(":")
    return client_id, client_secret
