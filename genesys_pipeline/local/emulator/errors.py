"""Errors in the shapes the real services use.

`/api/v2` answers every error with an `ErrorBody`; the login service answers OAuth-style
`{"error", "description", "error_description"}` instead (genesys-api.md sections 1.3 and 4.4).
"""

from __future__ import annotations

from typing import Any


class ApiError(Exception):
    """An `/api/v2` error: raised anywhere in a handler, rendered as an ErrorBody."""

    def __init__(
        self, status: int, code: str, message: str, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers or {}

    def body(self, correlation_id: str) -> dict[str, Any]:
        return {
            "message": self.message,
            "code": self.code,
            "status": self.status,
            "contextId": correlation_id,
            "details": [],
            "errors": [],
        }


class OAuthError(Exception):
    """A login-service error (`/oauth/token`)."""

    def __init__(self, status: int, error: str, description: str) -> None:
        super().__init__(description)
        self.status = status
        self.error = error
        self.description = description

    def body(self) -> dict[str, str]:
        return {
            "error": self.error,
            "description": self.description,
            "error_description": self.description,
        }


def bad_request(message: str, code: str = "bad.request") -> ApiError:
    return ApiError(400, code, message)


def not_found() -> ApiError:
    return ApiError(404, "not.found", "The requested resource was not found.")


def too_many_requests(retry_after_seconds: int) -> ApiError:
    # The normalised 429 (in force since 2021-11-10): Retry-After header plus this body.
    return ApiError(
        429,
        "too.many.requests.retry.after",
        f"Rate limit exceeded the maximum. Retry the request in [{retry_after_seconds}] seconds",
        headers={"Retry-After": str(retry_after_seconds)},
    )
