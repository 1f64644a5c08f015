"""The emulator's own tests: a raw HTTP session against an emulator (the emulators themselves, CLOCK and
PAST_DAY come from the root conftest.py).

The tests talk raw HTTP (httpx) on purpose: they check the wire behaviour (status codes, headers,
bodies) that any client, the pipeline's or the official SDK, depends on.
"""

from __future__ import annotations

import base64
from datetime import date, datetime, timedelta, timezone
from typing import Any, Iterator

import httpx
import pytest

from genesys_pipeline.local.emulator import (
    DEMO_CLIENT_ID,
    DEMO_CLIENT_SECRET,
    EmulatorServer,
)

DETAILS = "/api/v2/analytics/conversations/details"


class ApiSession:
    """A token plus an httpx client: the minimum a caller of the real API needs."""

    def __init__(self, emulator: EmulatorServer) -> None:
        self.emulator = emulator
        self.http = httpx.Client(base_url=emulator.base_url, timeout=30)
        self.token = self.fetch_token()

    def fetch_token(self) -> str:
        response = self.http.post(
            "/oauth/token",
            headers={"Authorization": basic(DEMO_CLIENT_ID, DEMO_CLIENT_SECRET)},
            data={"grant_type": "client_credentials"},
        )
        response.raise_for_status()
        return response.json()["access_token"]

    def get(self, path: str, **params: Any) -> httpx.Response:
        return self.http.get(path, params=params, headers=self._auth())

    def post(self, path: str, body: Any) -> httpx.Response:
        return self.http.post(path, json=body, headers=self._auth())

    def delete(self, path: str) -> httpx.Response:
        return self.http.delete(path, headers=self._auth())

    def _auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    def query_all(self, interval: str, page_size: int = 100, **extra: Any) -> list[dict[str, Any]]:
        """Page the details query to its end (the empty page), as a correct client does."""
        conversations: list[dict[str, Any]] = []
        page = 1
        while True:
            body = {"interval": interval, "paging": {"pageSize": page_size, "pageNumber": page}, **extra}
            response = self.post(f"{DETAILS}/query", body)
            assert response.status_code == 200, response.text
            batch = response.json().get("conversations")
            if not batch:
                return conversations
            conversations.extend(batch)
            page += 1

    def run_job(self, body: dict[str, Any], page_size: int = 100) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """Submit a job, wait for FULFILLED, page its results; returns (conversations, pages)."""
        submitted = self.post(f"{DETAILS}/jobs", body)
        assert submitted.status_code == 202, submitted.text
        job_id = submitted.json()["jobId"]
        wait_for_state(self, job_id, "FULFILLED")
        pages, conversations, cursor = [], [], None
        while True:
            params: dict[str, Any] = {"pageSize": page_size}
            if cursor:
                params["cursor"] = cursor
            response = self.get(f"{DETAILS}/jobs/{job_id}/results", **params)
            assert response.status_code == 200, response.text
            page = response.json()
            pages.append(page)
            conversations.extend(page.get("conversations", []))
            cursor = page.get("cursor")
            if not cursor:
                return conversations, pages


def wait_for_state(session: ApiSession, job_id: str, wanted: str, attempts: int = 200) -> dict[str, Any]:
    import time

    status: dict[str, Any] = {}
    for _ in range(attempts):
        status = session.get(f"{DETAILS}/jobs/{job_id}").json()
        if status["state"] == wanted:
            return status
        time.sleep(0.02)
    raise AssertionError(f"job {job_id} never reached {wanted}: {status}")


def basic(client_id: str, client_secret: str) -> str:
    return "Basic " + base64.b64encode(f"{client_id}:{client_secret}".encode()).decode()


def epoch_ms(text: str) -> int:
    """An ISO-8601 timestamp of a record as epoch milliseconds."""
    return int(datetime.fromisoformat(text).timestamp() * 1000)


def sessions_of(record: dict[str, Any]) -> Iterator[tuple[dict[str, Any], dict[str, Any]]]:
    """(participant, session) for every session of a conversation record."""
    for participant in record["participants"]:
        for session in participant["sessions"]:
            yield participant, session


def day_interval(day: date, days: int = 1) -> str:
    start = datetime(day.year, day.month, day.day, tzinfo=timezone.utc)
    end = start + timedelta(days=days)
    return f"{start.isoformat().replace('+00:00', 'Z')}/{end.isoformat().replace('+00:00', 'Z')}"


@pytest.fixture
def api(emulator: EmulatorServer) -> Iterator[ApiSession]:
    session = ApiSession(emulator)
    yield session
    session.http.close()
