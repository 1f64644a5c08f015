"""Bodies of 2xx responses that are not the JSON object the endpoint returns.

A proxy or gateway in front of Genesys Cloud may answer 200 with an HTML page, and a connection
cut mid-body leaves JSON that stops halfway. Neither is the API's answer, so the retry loop
(http.py) treats them like a 503; these say what was wrong, for its log lines and final error,
without ever showing the token endpoint's body (it holds the access token).
"""

from __future__ import annotations

from typing import Any

import httpx
import orjson

from genesys_pipeline.genesys.errors import GenesysBadResponse

BODY_EXCERPT_CHARS = 100


class BadBody(Exception):
    """Raised inside one attempt: a 2xx whose body is not the expected JSON object. Internal to
    the retry loop, which turns the last one into `GenesysBadResponse`."""

    def __init__(self, response: httpx.Response, reason: str, *, secret: bool = False) -> None:
        super().__init__(reason)
        self.response = response
        self.reason = reason
        self.secret = secret

    def summary(self) -> str:
        status, content_type = self.response.status_code, self._content_type()
        return f"HTTP {status} with a body that is {self.reason}, content type {content_type}"

    def exhausted(self, method: str, path: str, attempts: int, where: str | None) -> GenesysBadResponse:
        response = self.response
        # Only the first bytes are decoded: a cut-short results page can be megabytes long.
        head = response.content[: BODY_EXCERPT_CHARS * 4].decode("utf-8", "replace")
        return GenesysBadResponse(
            method=method,
            path=path,
            status=response.status_code,
            code=None,
            message=self.reason,
            correlation_id=response.headers.get("ININ-Correlation-Id"),
            attempts=attempts,
            content_type=self._content_type(),
            reason=self.reason,
            excerpt=None if self.secret else " ".join(head.split())[:BODY_EXCERPT_CHARS],
            where=where,
        )

    def _content_type(self) -> str:
        return self.response.headers.get("Content-Type") or "none"


def decode_json_object(response: httpx.Response, *, secret: bool = False) -> dict[str, Any]:
    """The body of a 2xx as the JSON object it must be, else `BadBody`. orjson: a job results
    page is ~5 MB of JSON; the standard library takes 5x longer."""
    content = response.content
    if not content:
        raise BadBody(response, "empty", secret=secret)
    try:
        body = orjson.loads(content)
    except orjson.JSONDecodeError as error:
        raise BadBody(response, f"not valid JSON ({error})", secret=secret) from None
    if not isinstance(body, dict):
        raise BadBody(response, f"JSON but not an object (a {type(body).__name__})", secret=secret)
    return body
