"""What a failed run tells the people on call, and sending it to a chat webhook.

The message says which job failed, for which day or days, why (the first error's message), and where
to look (the run's page, when the UI's address is known). It goes to an incoming webhook as
`{"text": ...}`, which Slack, Mattermost, Rocket.Chat and Google Chat accept alike. The webhook's URL is
a secret (anyone who has it can post): it never appears in a log line or an error.
"""

from __future__ import annotations

from typing import Optional

import httpx

MAX_ERROR_CHARS = 600  # a chat message, not a traceback: the run's page has the rest


class AlertError(Exception):
    """The webhook could not be reached or refused the message (the URL is never part of the message)."""


def failure_text(
    job_name: str, run_id: str, days: str, error: Optional[str], ui_base_url: Optional[str] = None
) -> str:
    """One chat message for a failed run."""
    cause = " ".join((error or "no error message was recorded").split())
    if len(cause) > MAX_ERROR_CHARS:
        cause = cause[: MAX_ERROR_CHARS - 1] + "…"
    lines = [f"genesys_pipeline: run of {job_name} failed" + (f" for {days}" if days else ""), f"Cause: {cause}"]
    lines.append(f"Run: {ui_base_url.rstrip('/')}/runs/{run_id}" if ui_base_url else f"Run id: {run_id}")
    return "\n".join(lines)


def post_to_webhook(url: str, text: str, timeout_seconds: float = 10.0) -> None:
    """POST `{"text": text}`; AlertError if it does not answer 2xx."""
    try:
        response = httpx.post(url, json={"text": text}, timeout=timeout_seconds)
    except httpx.HTTPError as error:
        raise AlertError(f"the alert webhook could not be reached ({type(error).__name__})") from None
    if not response.is_success:
        raise AlertError(f"the alert webhook answered HTTP {response.status_code}")
