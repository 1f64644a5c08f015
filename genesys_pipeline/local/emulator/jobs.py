"""Async conversation-detail jobs: submit, status, cursor-paged results, cancel (genesys-api.md s3).

A job sees the data lake, not live data: it is evaluated as of the data-availability watermark at
submission (`now - lag`), so conversations that started later are absent and ongoing ones are shown
as they were at the watermark (or, with `jobs_omit_open_at_watermark`, left out). States advance
with real time (QUEUED -> PENDING -> FULFILLED).
"""

from __future__ import annotations

import base64
import dataclasses
import random
import threading
import time
import uuid
from typing import Any, Callable

from .clock import iso_ms
from .config import EmulatorConfig
from .errors import ApiError, bad_request, not_found
from .querying import (
    Interval,
    day_matched_plans,
    decided_by_plan,
    has_filters,
    overlapping_plans,
    plan_fields,
    record_matches,
    sort_plans,
    validate_filters,
    validate_order,
)
from .synthetic import ContactCentre, ConversationPlan

ACTIVE_STATES = ("QUEUED", "PENDING")


@dataclasses.dataclass
class Job:
    job_id: str
    body: dict[str, Any]
    interval: Interval
    as_of_ms: int  # the watermark the job reads at
    submitted_at: float  # time.monotonic()
    submission_date: str
    will_fail: bool
    state: str = "QUEUED"
    completion_date: str | None = None
    expires_at: float | None = None  # time.monotonic()
    expiration_date: str | None = None
    error_message: str | None = None
    results: list[ConversationPlan] | None = None


class JobStore:
    def __init__(
        self, config: EmulatorConfig, centre: ContactCentre, emulated_now_ms: Callable[[], int]
    ) -> None:
        self._config = config
        self._centre = centre
        self._now_ms = emulated_now_ms
        self._lock = threading.Lock()
        self._jobs: dict[str, Job] = {}
        self._failure_draws = random.Random(config.seed ^ 0x10B5)
        self._first_submission: float | None = None  # time.monotonic()

    def watermark_ms(self) -> int:
        return self._now_ms() - int(self._config.data_availability_lag_seconds * 1000)

    def submit(self, body: dict[str, Any]) -> Job:
        interval = Interval(body.get("interval"))
        if interval.days > self._config.job_max_interval_days:
            raise bad_request(
                "You must specify a search interval as part of your query that does not exceed "
                f"{self._config.job_max_interval_days} days."
            )
        validate_order(body)
        validate_filters(body)
        if "paging" in body or "aggregations" in body:
            raise bad_request("paging and aggregations are not supported by detail jobs", "invalid.value")
        limit = body.get("limit")
        if limit is not None and (not isinstance(limit, int) or limit < 1):
            raise bad_request(f"limit must be a positive integer, got {limit!r}", "invalid.value")
        with self._lock:
            self._advance_all()
            active = sum(job.state in ACTIVE_STATES for job in self._jobs.values())
            if self._slots_held_elsewhere() or active >= self._config.max_concurrent_jobs:
                raise ApiError(
                    429,
                    "too.many.requests",
                    f"Maximum of {self._config.max_concurrent_jobs} concurrent conversation detail "
                    "jobs exceeded. Wait for a job to finish and retry.",
                    headers={"Retry-After": str(max(1, round(self._config.job_pending_seconds)))},
                )
            now_ms = self._now_ms()
            job = Job(
                job_id=str(uuid.uuid4()),
                body=body,
                interval=interval,
                as_of_ms=self.watermark_ms(),
                submitted_at=time.monotonic(),
                submission_date=iso_ms(now_ms),
                will_fail=self._failure_draws.random() < self._config.job_failure_rate,
            )
            self._jobs[job.job_id] = job
        return job

    def status(self, job_id: str) -> dict[str, Any]:
        job = self._advanced(job_id)
        status: dict[str, Any] = {"state": job.state}
        if job.error_message:
            status["errorMessage"] = job.error_message
        if job.expiration_date:
            status["expirationDate"] = job.expiration_date
        status["submissionDate"] = job.submission_date
        if job.completion_date:
            status["completionDate"] = job.completion_date
        return status

    def results(self, job_id: str, cursor: str | None, page_size_text: str | None) -> dict[str, Any]:
        page_size = self._page_size(page_size_text)
        job = self._advanced(job_id)
        if job.state != "FULFILLED":
            raise bad_request(
                f"Results are not available: the job is {job.state}.", "invalid.value"
            )
        assert job.results is not None
        offset = _decode_cursor(cursor, job_id) if cursor else 0
        page_end = min(offset + page_size, len(job.results))
        if page_end > self._config.job_result_cap:
            raise bad_request(f"Pagination may not exceed {self._config.job_result_cap} results")
        response: dict[str, Any] = {
            "conversations": [
                self._centre.served(plan, job.as_of_ms, with_attributes=True)
                for plan in job.results[offset:page_end]
            ]
        }
        if page_end < len(job.results):
            response["cursor"] = _encode_cursor(job_id, page_end)
        response["dataAvailabilityDate"] = iso_ms(self.watermark_ms())
        return response

    def cancel(self, job_id: str) -> None:
        job = self._advanced(job_id)
        with self._lock:
            if job.state in ACTIVE_STATES or job.state == "FULFILLED":
                job.state = "CANCELLED"
                job.results = None

    # --- internals ---

    def _slots_held_elsewhere(self) -> bool:
        """`jobs_busy_seconds`: another integration of the org holds every detail-job slot for that
        long after our first submission (counted from then, so set-up time before it does not matter).
        Its jobs are invisible to us, as on the real service: we only see the same 429."""
        if self._config.jobs_busy_seconds <= 0:
            return False
        if self._first_submission is None:
            self._first_submission = time.monotonic()
        return time.monotonic() - self._first_submission < self._config.jobs_busy_seconds

    def _page_size(self, text: str | None) -> int:
        if text is None:
            return self._config.job_default_page_size
        try:
            page_size = int(text)
        except ValueError:
            raise bad_request(f"pageSize must be an integer, got {text!r}", "invalid.value")
        if not 1 <= page_size <= self._config.job_max_page_size:
            raise bad_request(
                f"pageSize must be between 1 and {self._config.job_max_page_size}, got {page_size}",
                "invalid.value",
            )
        return page_size

    def _advanced(self, job_id: str) -> Job:
        with self._lock:
            job = self._jobs.get(job_id)
            if job is None:
                raise not_found()
            self._advance(job)
            return job

    def _advance_all(self) -> None:
        for job in self._jobs.values():
            self._advance(job)

    def _advance(self, job: Job) -> None:
        elapsed = time.monotonic() - job.submitted_at
        if job.state == "QUEUED" and elapsed >= self._config.job_queued_seconds:
            job.state = "PENDING"
        done_after = self._config.job_queued_seconds + self._config.job_pending_seconds
        if job.state == "PENDING" and elapsed >= done_after:
            job.completion_date = iso_ms(self._now_ms())
            if job.will_fail:
                job.state = "FAILED"
                job.error_message = "Job failed: an internal error occurred while executing the query."
            else:
                job.results = self._evaluate(job)
                job.state = "FULFILLED"
                job.expires_at = time.monotonic() + self._config.job_ttl_seconds
                expires_ms = self._now_ms() + int(self._config.job_ttl_seconds * 1000)
                job.expiration_date = iso_ms(expires_ms)
        if job.state == "FULFILLED" and job.expires_at is not None and time.monotonic() >= job.expires_at:
            job.state = "EXPIRED"
            job.results = None

    def _evaluate(self, job: Job) -> list[ConversationPlan]:
        body = job.body
        if body.get("startOfDayIntervalMatching"):
            plans = list(day_matched_plans(self._centre.day_plans, job.interval, job.as_of_ms))
        else:
            plans = list(overlapping_plans(
                self._centre.day_plans, self._centre.long_lived_plans, job.interval, job.as_of_ms
            ))  # fmt: skip
        if self._config.jobs_omit_open_at_watermark:
            # UNCONFIRMED behaviour of the data lake (genesys-api-more.md s2.1): a conversation that
            # had not ended at the watermark is left out, with no error and no flag.
            plans = [plan for plan in plans if plan.end_ms <= job.as_of_ms]
        if has_filters(body) and decided_by_plan(body):
            plans = [plan for plan in plans if record_matches(plan_fields(plan, job.as_of_ms), body)]
        elif has_filters(body):
            plans = [
                plan
                for plan in plans
                if record_matches(self._centre.record_as_served(plan, job.as_of_ms, with_attributes=True), body)
            ]
        order, order_by = validate_order(body)
        sort_plans(plans, order, order_by, job.as_of_ms)
        if body.get("limit"):
            plans = plans[: body["limit"]]
        return plans


def _encode_cursor(job_id: str, offset: int) -> str:
    return base64.urlsafe_b64encode(f"{job_id}:{offset}".encode()).decode().rstrip("=")


def _decode_cursor(cursor: str, job_id: str) -> int:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        owner, _, offset = base64.urlsafe_b64decode(padded).decode().partition(":")
        if owner != job_id:
            raise ValueError("cursor of another job")
        return int(offset)
    except (ValueError, UnicodeDecodeError):
        raise bad_request(f"The cursor {cursor!r} is not valid for this job.", "invalid.value")
