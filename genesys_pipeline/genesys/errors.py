"""Exceptions raised by the Genesys Cloud client.

Every message is built from non-secret parts only (method, path, status, ErrorBody code and
message, correlation id). The client secret and access tokens are never passed to these classes,
so `str(error)`, `repr(error)` and Dagster's error display cannot leak them.

`cap_answer_raises` turns the API's bare 400 to a page past a pagination cap into the cap error
that says what to do; the query's paging and the job's results paging both use it.
"""

from __future__ import annotations

import contextlib
from typing import Any, Callable, Iterator

_CAP_MESSAGE = "Pagination may not exceed"  # in the 400 of both pagination caps


class GenesysError(Exception):
    """Base class of every error raised by the Genesys client."""


class GenesysAuthError(GenesysError):
    """The login service rejected the client credentials, or the API answered 401 even with a
    freshly issued token (so refreshing again would not help)."""

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        error: str | None = None,
        code: str | None = None,
        correlation_id: str | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.error = error  # OAuth `error` of the login service, e.g. "invalid_client"
        self.code = code  # ErrorBody `code` of a 401 from /api/v2, e.g. "bad.credentials"
        self.correlation_id = correlation_id


class GenesysApiError(GenesysError):
    """A `/api/v2` request failed with an HTTP error that retrying will not fix (4xx other than
    401/429). Carries the fields of the platform's ErrorBody."""

    def __init__(
        self,
        *,
        method: str,
        path: str,
        status: int,
        code: str | None,
        message: str,
        correlation_id: str | None,
        body: dict[str, Any] | None = None,
    ) -> None:
        self.method = method
        self.path = path
        self.status = status
        self.code = code
        self.message = message
        self.correlation_id = correlation_id
        self.body = body or {}
        super().__init__(self._describe())

    def _describe(self) -> str:
        code = f" {self.code}" if self.code else ""
        return (
            f"Genesys API {self.method} {self.path} failed with HTTP {self.status}{code}: "
            f"{self.message} (correlation id {self.correlation_id or 'unknown'})"
        )


class GenesysRetriesExhausted(GenesysApiError):
    """A retryable HTTP status (429, 502, 503, 504) persisted through the whole retry budget."""

    def __init__(self, *, attempts: int, **fields: Any) -> None:
        self.attempts = attempts
        super().__init__(**fields)

    def _describe(self) -> str:
        return f"{super()._describe()}; gave up after {self.attempts} attempts"


class GenesysBadResponse(GenesysRetriesExhausted):
    """A 2xx whose body was not the JSON object the endpoint returns (cut short, or an HTML page
    from a proxy or gateway), through the whole retry budget. `excerpt` is the body's start, left
    out (None) where the body may hold a secret, i.e. for the token endpoint."""

    def __init__(
        self, *, attempts: int, content_type: str, reason: str, excerpt: str | None, where: str | None, **fields: Any
    ) -> None:
        self.content_type = content_type
        self.reason = reason
        self.excerpt = excerpt
        self.where = where
        super().__init__(attempts=attempts, **fields)

    def _describe(self) -> str:
        where = f" ({self.where})" if self.where else ""
        body = "not shown: it may hold a token" if self.excerpt is None else f"starts {self.excerpt!r}"
        return (
            f"Genesys API {self.method} {self.path}{where} answered HTTP {self.status} with content type "
            f"{self.content_type or 'none'} and a body that is {self.reason} (body {body}; correlation id "
            f"{self.correlation_id or 'unknown'}); gave up after {self.attempts} attempts. A proxy or "
            "gateway between this client and Genesys Cloud may be answering in its place."
        )


class GenesysTransportError(GenesysError):
    """Timeouts or dropped connections persisted through the whole retry budget."""

    def __init__(self, *, method: str, path: str, attempts: int, reason: str) -> None:
        self.method = method
        self.path = path
        self.attempts = attempts
        self.reason = reason
        super().__init__(
            f"Genesys API {method} {path} failed after {attempts} attempts: {reason}"
        )


class QueryCapExceeded(GenesysError):
    """A details query would page past the API's result cap (100,000 by default).

    Raised before any conversation of the interval is yielded when `totalHits` already shows the
    overflow, and at the latest before requesting a page past the cap. Split the interval (for
    example hour by hour) and query the parts.
    """

    def __init__(self, *, interval: str, total_hits: int | None, cap: int, page_size: int) -> None:
        self.interval = interval
        self.total_hits = total_hits
        self.cap = cap
        self.page_size = page_size
        hits = "unknown" if total_hits is None else str(total_hits)
        super().__init__(
            f"The details query for {interval} matches {hits} conversations, more than the "
            f"{cap}-result pagination cap; split the interval into smaller parts"
        )


class JobResultCapExceeded(GenesysError):
    """A detail job holds more results than may be paged (400,000 by default).

    The API does not announce a job's size up front, so this is raised mid-stream, after `cap`
    conversations were yielded; discard them and submit smaller intervals.
    """

    def __init__(self, *, job_id: str, cap: int) -> None:
        self.job_id = job_id
        self.cap = cap
        super().__init__(
            f"Detail job {job_id} has more than {cap} results, the job results pagination cap; "
            "split the interval into smaller jobs"
        )


class DetailJobError(GenesysError):
    """A detail job ended FAILED, CANCELLED or EXPIRED, or did not finish in time."""

    def __init__(self, *, job_id: str, state: str, error_message: str | None = None) -> None:
        self.job_id = job_id
        self.state = state
        self.error_message = error_message
        detail = f": {error_message}" if error_message else ""
        super().__init__(f"Detail job {job_id} ended {state}{detail}")


@contextlib.contextmanager
def cap_answer_raises(cap_error: Callable[[], GenesysError]) -> Iterator[None]:
    """Raise `cap_error()` for the API's 400 to a page past a pagination cap: a cap error says to
    split the interval, which the bare 400 does not. Any other error passes through."""
    try:
        yield
    except GenesysApiError as error:
        if error.status == 400 and _CAP_MESSAGE in error.message:
            raise cap_error() from error
        raise
