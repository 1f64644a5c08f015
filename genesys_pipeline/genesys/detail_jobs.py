"""The async detail job's lifecycle: take a job slot, submit, poll until FULFILLED, page the results
by cursor up to the API's result cap, and cancel a job that is not read to its end.

Apart from the details query because a job lives on the server between calls: it holds one of the
org's few job slots until it is read or cancelled, so every way out of the stream must free it.
"""

from __future__ import annotations

import time
from datetime import datetime
from typing import Any, Generator, Iterator, Mapping

from genesys_pipeline.genesys.errors import (
    DetailJobError,
    JobResultCapExceeded,
    cap_answer_raises,
)
from genesys_pipeline.genesys.org_limits import OrgLimitCalls
from genesys_pipeline.genesys.responses import log
from genesys_pipeline.genesys.streams import Conversation, DetailJobStream
from genesys_pipeline.genesys.timestamps import format_interval, parse_datetime

JOBS_PATH = "/api/v2/analytics/conversations/details/jobs"
AVAILABILITY_PATH = f"{JOBS_PATH}/availability"
JOB_PROGRESS_LOG_SECONDS = 60  # while a detail job runs, its state is logged at least this often
# After the first poll, a job is polled again after this share of the time it has run so far: a job that
# is done is seen at most half its run time late, and one running an hour costs about 20 polls (fewer
# with job_poll_max_interval_seconds), not one every few seconds.
JOB_POLL_GROWTH = 0.5

JOB_FAILED_STATES = ("FAILED", "CANCELLED", "EXPIRED")


class DetailJobCalls(OrgLimitCalls):
    """`run_details_job` and the single job calls it is made of. A submission waits for as many
    job slots as the org's limits say, once read (org_limits.py)."""

    def run_details_job(
        self,
        start: datetime,
        end: datetime,
        *,
        conversation_filters: list[dict[str, Any]] | None = None,
        segment_filters: list[dict[str, Any]] | None = None,
        order: str | None = None,
        order_by: str | None = None,
        start_of_day_interval_matching: bool | None = None,
        extra_body: Mapping[str, Any] | None = None,
    ) -> DetailJobStream:
        """Submit a detail job for `[start, end)`, wait until FULFILLED, yield its conversations.

        Jobs read the data lake: only data before `get_data_availability()` is complete; the
        stream reports the watermark it saw as `data_availability_date`. By default a job matches
        conversations whose lifetime overlaps the interval. Raises `DetailJobError` if the job
        ends FAILED/CANCELLED/EXPIRED or exceeds `job_timeout_seconds`, `JobResultCapExceeded`
        once more than `job_result_cap` results would be paged. If the stream fails or is closed
        (or interrupted, e.g. KeyboardInterrupt) before the last page, the job is cancelled.
        """
        body: dict[str, Any] = {"interval": format_interval(start, end)}
        optional = {
            "conversationFilters": conversation_filters,
            "segmentFilters": segment_filters,
            "order": order,
            "orderBy": order_by,
            "startOfDayIntervalMatching": start_of_day_interval_matching,
        }
        body.update({key: value for key, value in optional.items() if value is not None})
        body.update(extra_body or {})
        stream = DetailJobStream(body["interval"])
        return stream._start(lambda: self._run_job(stream, body))

    def _run_job(
        self, stream: DetailJobStream, body: dict[str, Any]
    ) -> Generator[Conversation, None, None]:
        completed = False
        # The slot is taken before submitting and kept until the last page is read or the job cancelled.
        with self.job_slots.held():
            try:
                stream.job_id = self.submit_details_job(body)
                stream.state = "QUEUED"
                status = self.wait_for_details_job(stream.job_id, progress=stream)
                stream.state = status["state"]
                yield from self._job_results(stream, stream.job_id)
                completed = True
            finally:
                # try/finally, not except: GeneratorExit (the consumer closed the stream) and
                # KeyboardInterrupt are BaseExceptions and must free the job's slot too.
                if stream.job_id is not None and not completed:
                    stream.cancelled = self.cancel_details_job(stream.job_id, quiet=True)

    def submit_details_job(self, body: Mapping[str, Any]) -> str:
        """`POST .../details/jobs` (expects 202 `{jobId}`); return the job id. While every
        detail-job slot of the org is taken (429) the submission waits, up to
        `job_slot_wait_seconds`, then raises `JobSlotsBusy`; other failures have the normal budget."""
        slots = self.limits.job_slots if self.limits else None
        slot_wait = self._transport.job_slot_wait(self._settings.job_slot_wait_seconds, slots)
        where = f"job submission for {body.get('interval')}"
        payload = self._json("POST", JOBS_PATH, where=where, json=dict(body), slot_wait=slot_wait)
        job_id = payload.get("jobId")
        if not job_id:
            raise DetailJobError(job_id="?", state="NOT_SUBMITTED", error_message=f"no jobId in {payload}")
        log.info("Submitted Genesys detail job %s for %s", job_id, body.get("interval"))
        return str(job_id)

    def get_details_job_status(self, job_id: str) -> dict[str, Any]:
        """`GET .../details/jobs/{jobId}`: `{state, errorMessage?, submissionDate, ...}`."""
        return self._json("GET", f"{JOBS_PATH}/{job_id}", where=f"job {job_id} status")

    def wait_for_details_job(
        self, job_id: str, *, progress: DetailJobStream | None = None
    ) -> dict[str, Any]:
        """Poll the job until FULFILLED and return that status: first after
        `job_poll_interval_seconds`, then after JOB_POLL_GROWTH of the time it has run so far, at most
        `job_poll_max_interval_seconds` apart (jobs take from about a second to many minutes; every poll
        is a request of the client's budget, which the throttle keeps to). Raises `DetailJobError` on
        FAILED/CANCELLED/EXPIRED or after `job_timeout_seconds`. The state seen by each poll is written
        to `progress.state` if given."""
        settings = self._settings
        delay = settings.job_poll_interval_seconds
        started = time.monotonic()
        deadline = started + settings.job_timeout_seconds
        last_told: tuple[str, float] = ("", started)  # the state last logged, and when
        while True:
            time.sleep(delay)
            status = self.get_details_job_status(job_id)
            state = str(status.get("state"))
            if progress is not None:
                progress.state = state
            # A job can take many minutes on a large org: say what it is doing whenever its state
            # changes, and at least every JOB_PROGRESS_LOG_SECONDS, so a long step is never silent.
            now = time.monotonic()
            if state != last_told[0] or now - last_told[1] >= JOB_PROGRESS_LOG_SECONDS:
                log.info("Genesys detail job %s: %s after %.0f s (timeout %.0f s)", job_id, state, now - started,
                         settings.job_timeout_seconds)  # fmt: skip
                last_told = (state, now)
            if state == "FULFILLED":
                return status
            if state in JOB_FAILED_STATES:
                raise DetailJobError(job_id=job_id, state=state, error_message=status.get("errorMessage"))
            if time.monotonic() + delay > deadline:
                raise DetailJobError(
                    job_id=job_id,
                    state=state,
                    error_message=f"not FULFILLED within {settings.job_timeout_seconds:g} s",
                )
            ran = time.monotonic() - started
            delay = min(max(ran * JOB_POLL_GROWTH, settings.job_poll_interval_seconds),
                        settings.job_poll_max_interval_seconds)  # fmt: skip

    def _job_results(self, stream: DetailJobStream, job_id: str) -> Iterator[Conversation]:
        page_size, cap = self._settings.job_page_size, self._settings.job_result_cap
        path = f"{JOBS_PATH}/{job_id}/results"
        cursor: str | None = None
        while True:
            # Never ask for results past the cap: shrink the last page to end exactly at it.
            remaining = cap - stream.conversations
            if remaining <= 0:
                raise JobResultCapExceeded(job_id=job_id, cap=cap)
            params: dict[str, Any] = {"pageSize": min(page_size, remaining)}
            if cursor:
                params["cursor"] = cursor
            with cap_answer_raises(lambda: JobResultCapExceeded(job_id=job_id, cap=cap)):
                payload = self._json("GET", path, where=f"job {job_id} results page {stream.pages + 1}", params=params)
            stream.pages += 1
            if payload.get("dataAvailabilityDate"):
                stream.data_availability_date = parse_datetime(payload["dataAvailabilityDate"])
            for conversation in payload.get("conversations") or []:
                stream.conversations += 1
                yield conversation
            stream._page_ends.append(stream.conversations)
            cursor = payload.get("cursor")
            if not cursor:
                return

    def cancel_details_job(self, job_id: str, *, quiet: bool = False) -> bool:
        """`DELETE .../details/jobs/{jobId}`. With `quiet`, a failure is logged, not raised (used
        on cleanup paths, where it must not hide the original error). True if the delete
        succeeded."""
        try:
            self._transport.request("DELETE", f"{JOBS_PATH}/{job_id}")
        except Exception as error:
            if not quiet:
                raise
            log.warning("Could not cancel Genesys detail job %s: %s", job_id, error)
            return False
        log.info("Cancelled Genesys detail job %s", job_id)
        return True

    def get_data_availability(self) -> datetime:
        """The data-lake watermark: job results are complete for data before this instant."""
        payload = self._json("GET", AVAILABILITY_PATH)
        return parse_datetime(payload["dataAvailabilityDate"])
