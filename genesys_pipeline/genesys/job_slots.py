"""Waiting for a detail-job slot: when every slot of the org is taken (another integration's jobs may
hold them for many minutes), a job submission waits by time (`job_slot_wait_seconds`), not attempts."""

from __future__ import annotations

import contextlib
import threading
import time
from typing import Any, Iterator

import httpx

from genesys_pipeline.genesys.errors import GenesysRetriesExhausted
from genesys_pipeline.genesys.responses import (
    int_header,
    json_object,
    log,
    span,
    status_reason,
)
from genesys_pipeline.genesys.retries import RetryPolicy

SLOT_WAIT_LOG_EVERY_SECONDS = 30.0


def is_job_slots_429(response: httpx.Response) -> bool:
    """Whether a 429 to a job submission says the org's detail-job slots are all taken, rather than
    that this token is over its request rate. The real body of that 429 is UNCONFIRMED, so: a body
    that names a concurrent limit (its message, or the ErrorBody's `limit.key`), or else a 429 while
    the `inin-ratelimit-*` headers show room in the token's window (the rate limit's 429 comes with
    a full window; a job-submission limit is the only other one this request meets)."""
    if response.status_code != 429:
        return False
    body = json_object(response)
    limit = body.get("limit") if isinstance(body.get("limit"), dict) else {}
    if "concurrent" in f"{body.get('message', '')} {limit.get('key', '')}".lower():
        return True
    count, allowed = (int_header(response, name) for name in ("inin-ratelimit-count", "inin-ratelimit-allowed"))
    return count is not None and allowed is not None and count < allowed


class JobSlotWait:
    """The patience of one job submission. When every detail-job slot of the org is taken (another
    integration's jobs may hold them for many minutes) the submission is repeated for up to
    `budget_seconds` of wall time, honouring Retry-After, instead of `max_attempts` tries; every
    other failure keeps the normal retry budget. Says what it waits for at INFO, at most every 30 s."""

    def __init__(self, budget_seconds: float, policy: RetryPolicy, slots: int | None) -> None:
        self.budget_seconds = budget_seconds
        self._policy = policy
        self._slots = slots  # the org's detail-job slots, if its limits were read
        self._started: float | None = None
        self._logged_at: float | None = None
        self.waits = 0

    def applies_to(self, response: httpx.Response) -> bool:
        return is_job_slots_429(response)

    def delay(self, fields: dict[str, Any], response: httpx.Response) -> float:
        """Seconds to wait before submitting again; `JobSlotsBusy` once the budget is spent."""
        now = time.monotonic()
        self._started = now if self._started is None else self._started
        waited = now - self._started
        limit = json_object(response).get("limit")
        if isinstance(limit, dict) and isinstance(limit.get("value"), int):
            self._slots = limit["value"]
        slots = f"all {self._slots}" if self._slots else "all"
        if waited >= self.budget_seconds:
            raise JobSlotsBusy(attempts=self.waits + 1, waited=waited, budget=self.budget_seconds, slots=slots, **fields)
        self.waits += 1
        if self._logged_at is None or now - self._logged_at >= SLOT_WAIT_LOG_EVERY_SECONDS:
            self._logged_at = now
            log.info(
                "Genesys detail-job submission: %s detail-job slots of the org are in use (another "
                "integration?); waiting, %s of %s so far (job_slot_wait_seconds). The API said: %s: %s",
                slots, span(waited), span(self.budget_seconds), status_reason(fields), fields["message"],
            )  # fmt: skip
        # The backoff's growth (to backoff_cap_seconds; the exponent bounded so it stays a float)
        # spaces out the tries of a long wait; the last one comes when the budget ends.
        return min(self._policy.delay(min(self.waits, 32), response), self.budget_seconds - waited)


class JobSlotsBusy(GenesysRetriesExhausted):
    """Every detail-job slot of the org stayed taken for the whole `job_slot_wait_seconds`."""

    def __init__(self, *, waited: float, budget: float, slots: str, **fields: Any) -> None:
        self.waited_seconds = waited
        self.budget_seconds = budget
        self.slots = slots
        super().__init__(**fields)

    def _describe(self) -> str:
        return (
            f"{super()._describe()}: {self.slots} detail-job slots of the org stayed in use for "
            f"{span(self.waited_seconds)} (job_slot_wait_seconds={self.budget_seconds:g}). Another "
            "integration may be running detail jobs; raise job_slot_wait_seconds on GenesysResource, "
            "or run when its jobs are done."
        )


class JobSlotLimiter:
    """How many detail jobs one client runs at once, from submission until its last results page is
    read (or it is cancelled): the org's `details.jobs.concurrent.access.max` when the client has
    read its limits, never more than the configured `detail_jobs_at_once`. Whether a FULFILLED job
    whose results are still being paged counts against the org's limit is UNCONFIRMED, so it is
    counted here: the client never causes the concurrent-jobs 429 itself (another integration's jobs
    still can, and `JobSlotWait` waits those out)."""

    def __init__(self, capacity: int) -> None:
        self._configured = capacity
        self.capacity = capacity
        self._in_use = 0
        self.peak = 0  # the most jobs this client had at once
        self._changed = threading.Condition()

    def limit_to(self, org_slots: int | None) -> None:
        """The org's limit, once read (None: unknown, the configured number stands)."""
        with self._changed:
            self.capacity = max(1, min(self._configured, org_slots)) if org_slots else self._configured
            self._changed.notify_all()

    @contextlib.contextmanager
    def held(self) -> Iterator[None]:
        with self._changed:
            self._changed.wait_for(lambda: self._in_use < self.capacity)
            self._in_use += 1
            self.peak = max(self.peak, self._in_use)
        try:
            yield
        finally:
            with self._changed:
                self._in_use -= 1
                self._changed.notify()
