"""Where failed runs are announced: a chat webhook (GENESYS_ALERT_WEBHOOK_URL), off unless set."""

from __future__ import annotations

from typing import Optional
from urllib.parse import urlsplit

import dagster as dg
from pydantic import Field, field_validator

from genesys_pipeline.steps.alerts import failure_text, post_to_webhook


class FailureAlerts(dg.ConfigurableResource):
    """Posts a message about each failed run of the pipeline's jobs to an incoming chat webhook (Slack,
    Mattermost, Google Chat: anything that takes `{"text": ...}`). The URL is a secret: give it as an
    EnvVar; it is never logged."""

    webhook_url: str = Field(description="The incoming webhook's URL (secret; use dg.EnvVar).")
    ui_base_url: Optional[str] = Field(
        default=None, description="The Dagster UI's address, for a link to the failed run (e.g. https://dagster.example.com)."
    )

    @field_validator("webhook_url", "ui_base_url", mode="before")
    @classmethod
    def _http_url(cls, value: Optional[str], info: object) -> Optional[str]:
        if value is None or isinstance(value, dg.EnvVar):
            return value
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            name = getattr(info, "field_name", "url")
            shown = "(the value is a secret and not shown)" if name == "webhook_url" else repr(value)
            raise ValueError(f"FailureAlerts.{name} must be an http(s) URL {shown}")
        return value

    def announce_failure(self, job_name: str, run_id: str, days: str, error: Optional[str]) -> str:
        """Send the message; returns it (for the sensor's log)."""
        text = failure_text(job_name, run_id, days, error, self.ui_base_url)
        post_to_webhook(self.webhook_url, text)
        return text
