"""Reading a Genesys response for people: the ErrorBody's fields, short reasons, header values.

Shared by the retry loop, the token cache, the job-slot wait and the transport.
"""

from __future__ import annotations

import logging
from typing import Any

import httpx

# The name `dg.get_dagster_logger("genesys")` gives, without importing Dagster: in a run, Dagster
# captures the records of `dagster.builtin.*` loggers into the run's event log.
log = logging.getLogger("dagster.builtin.genesys")


def json_object(response: httpx.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def error_fields(method: str, path: str, response: httpx.Response) -> dict[str, Any]:
    """The ErrorBody of a failed response, as GenesysApiError keyword arguments."""
    body = json_object(response)
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


def status_reason(fields: dict[str, Any]) -> str:
    """`HTTP 503 code, correlation id ...`, leaving out what the response did not carry."""
    code = f" {fields['code']}" if fields["code"] else ""
    correlation = f", correlation id {fields['correlation_id']}" if fields["correlation_id"] else ""
    return f"HTTP {fields['status']}{code}{correlation}"


def int_header(response: httpx.Response, name: str) -> int | None:
    try:
        return int(response.headers.get(name, ""))
    except ValueError:
        return None


def span(seconds: float) -> str:
    """`45 s` or `3 min`: how long a wait has lasted, for people."""
    return f"{seconds:.0f} s" if seconds < 90 else f"{seconds / 60:.0f} min"


def describe_error(error: Exception) -> str:
    text = str(error)
    return f"{type(error).__name__}: {text}" if text else type(error).__name__
