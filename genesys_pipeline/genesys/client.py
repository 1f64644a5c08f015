"""The Genesys Cloud API calls the pipeline makes, on top of `GenesysTransport`.

In the pipeline, get a client from `GenesysResource.get_client()`; elsewhere, build one from
`ClientSettings` and use it as a context manager. All methods are safe to call from several
threads at once: they share one keep-alive connection pool, one token and one request budget.
"""

from __future__ import annotations

import bisect
import contextlib
import dataclasses
import time
from datetime import datetime, timezone
from typing import Any, Callable, Generator, Iterable, Iterator, Mapping, Self

from genesys_pipeline.genesys.errors import (
    DetailJobError,
    GenesysApiError,
    GenesysError,
    JobResultCapExceeded,
    QueryCapExceeded,
)
from genesys_pipeline.genesys.http import GenesysTransport
from genesys_pipeline.genesys.job_slots import JobSlotLimiter
from genesys_pipeline.genesys.responses import log
from genesys_pipeline.genesys.retries import GenesysClientStats
from genesys_pipeline.genesys.settings import ClientSettings
from genesys_pipeline.genesys.throttle import RequestThrottle

DETAILS_PATH = "/api/v2/analytics/conversations/details"
QUERY_PATH = f"{DETAILS_PATH}/query"
JOBS_PATH = f"{DETAILS_PATH}/jobs"
AVAILABILITY_PATH = f"{JOBS_PATH}/availability"
QUEUES_PATH = "/api/v2/routing/queues"
WRAPUP_CODES_PATH = "/api/v2/routing/wrapupcodes"
USERS_PATH = "/api/v2/users"
DIVISIONS_PATH = "/api/v2/authorization/divisions"
LIMITS_PATH = "/api/v2/organizations/limits/namespaces"
JOB_SLOTS_KEY = "details.jobs.concurrent.access.max"
JOB_PROGRESS_LOG_SECONDS = 60  # while a detail job runs, its state is logged at least this often
# After the first poll, a job is polled again after this share of the time it has run so far: a job that
# is done is seen at most half its run time late, and one running an hour costs about 20 polls (fewer
# with job_poll_max_interval_seconds), not one every few seconds.
JOB_POLL_GROWTH = 0.5

JOB_FAILED_STATES = ("FAILED", "CANCELLED", "EXPIRED")
_CAP_MESSAGE = "Pagination may not exceed"  # in the 400 of both pagination caps

Conversation = dict[str, Any]


class ConversationStream(Iterator[Conversation]):
    """A single-use iterator of conversation records that reports its progress as it goes.

    Nothing is requested until the first `next()`. To stop early, call `close()` or use it as a
    context manager: that runs the stream's cleanup (a detail job is cancelled) at once rather than
    whenever the iterator is garbage-collected.
    """

    def __init__(self, interval: str) -> None:
        self.interval = interval
        self.pages = 0  # response pages received
        self.conversations = 0  # records yielded so far
        self._page_ends: list[int] = []  # `conversations` at the end of each page, for `page_of`
        self._generator: Generator[Conversation, None, None] | None = None

    def page_of(self, record_number: int) -> int:
        """The response page (from 1) that held the `record_number`-th record yielded (from 1),
        so an error about one record can say where it came from."""
        return bisect.bisect_left(self._page_ends, record_number) + 1

    def _start(self, produce: Callable[[], Generator[Conversation, None, None]]) -> Self:
        self._generator = produce()
        return self

    def __iter__(self) -> Self:
        return self

    def __next__(self) -> Conversation:
        assert self._generator is not None
        return next(self._generator)

    def close(self) -> None:
        if self._generator is not None:
            self._generator.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


class DetailsQueryStream(ConversationStream):
    """Conversations of a synchronous details query, page by page."""

    def __init__(self, interval: str) -> None:
        super().__init__(interval)
        self.total_hits: int | None = None  # the latest `totalHits` (approximate, may drift)
        self.duplicates_skipped = 0  # records served again on a later page (live data shifts)


class DetailJobStream(ConversationStream):
    """Conversations of an async detail job: submit, wait for FULFILLED, page by cursor."""

    def __init__(self, interval: str) -> None:
        super().__init__(interval)
        self.job_id: str | None = None
        self.state: str | None = None  # the job's last known state
        self.data_availability_date: datetime | None = None  # watermark on the latest page
        self.cancelled = False  # True if the stream deleted its unfinished job


@dataclasses.dataclass(frozen=True)
class OrgLimits:
    """The org's effective limits of one namespace, or why they could not be read."""

    namespace: str
    values: dict[str, Any]  # limit key -> value, e.g. {"details.jobs.concurrent.access.max": 5}
    unavailable: str | None = None  # e.g. "HTTP 403 not.authorized: ..."; None when read

    @property
    def job_slots(self) -> int | None:
        """Detail jobs the org may run at once, if the limits say."""
        value = self.values.get(JOB_SLOTS_KEY)
        return value if isinstance(value, int) else None


class GenesysClient:
    """Genesys Cloud analytics and lookup calls. See `GenesysResource` for the settings.

    The throttle holds the client to `settings.requests_per_minute` unless a shared `throttle` is
    given. Close the client (or leave its `with` block) to close its connections and log its stats.
    """

    def __init__(self, settings: ClientSettings, *, throttle: RequestThrottle | None = None) -> None:
        self._settings = settings
        self.stats = GenesysClientStats()
        self._transport = GenesysTransport(
            settings, throttle or RequestThrottle(settings.requests_per_minute), self.stats
        )
        self.limits: OrgLimits | None = None  # the latest `get_analytics_limits()`
        # Detail jobs of this client at once (all threads): the org's limit once read, at most the setting.
        self.job_slots = JobSlotLimiter(settings.detail_jobs_at_once)

    def __repr__(self) -> str:
        return f"GenesysClient(api_base_url={self._settings.api_base_url!r})"

    def close(self) -> None:
        log.info("Genesys client stats: %s", self.stats.snapshot())
        self._transport.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    # --- synchronous details query -------------------------------------------------------------

    def query_conversation_details(
        self,
        start: datetime,
        end: datetime,
        *,
        conversation_filters: list[dict[str, Any]] | None = None,
        segment_filters: list[dict[str, Any]] | None = None,
        order: str = "asc",
        order_by: str = "conversationStart",
        extra_body: Mapping[str, Any] | None = None,
        fail_fast_on_cap: bool = True,
    ) -> DetailsQueryStream:
        """Page `POST .../details/query` for `[start, end)` to the end; yield each conversation.

        The API matches conversations that *started on a UTC day the interval touches*. Paging
        stops at a page shorter than `pageSize` (an empty one included), never at `totalHits`,
        which is approximate; records served twice (live data shifts pages) are yielded once.
        Raises `QueryCapExceeded` before yielding anything if `totalHits` exceeds
        `query_result_cap`, and in any case before requesting a page past it, so the caller can
        split the interval. With
        `fail_fast_on_cap=False` the pages below the cap are yielded first: for a caller that
        reads newest-first and stops early, a day over the cap is no problem.
        """
        interval = format_interval(start, end)
        body: dict[str, Any] = {"interval": interval, "order": order, "orderBy": order_by}
        if conversation_filters:
            body["conversationFilters"] = conversation_filters
        if segment_filters:
            body["segmentFilters"] = segment_filters
        body.update(extra_body or {})
        stream = DetailsQueryStream(interval)
        return stream._start(lambda: self._query_pages(stream, body, fail_fast_on_cap))

    def _query_pages(
        self, stream: DetailsQueryStream, body: dict[str, Any], fail_fast_on_cap: bool
    ) -> Generator[Conversation, None, None]:
        page_size, cap = self._settings.query_page_size, self._settings.query_result_cap

        def cap_exceeded() -> QueryCapExceeded:
            return QueryCapExceeded(
                interval=stream.interval, total_hits=stream.total_hits, cap=cap, page_size=page_size
            )

        # Only the ids are kept to drop duplicates, never the records themselves.
        seen: set[str] = set()
        page_number = 0
        while True:
            page_number += 1
            if page_number * page_size > cap:
                raise cap_exceeded()
            where = f"details query page {page_number} of {stream.interval}"
            with _cap_answer_raises(cap_exceeded):
                payload = self._json("POST", QUERY_PATH, where=where, json={
                    **body, "paging": {"pageSize": page_size, "pageNumber": page_number},
                })  # fmt: skip
            stream.pages += 1
            if isinstance(payload.get("totalHits"), int):
                stream.total_hits = payload["totalHits"]
            if fail_fast_on_cap and page_number == 1 and (stream.total_hits or 0) > cap:
                raise cap_exceeded()
            conversations = payload.get("conversations") or []
            for conversation in conversations:
                conversation_id = conversation.get("conversationId")
                if conversation_id in seen:
                    stream.duplicates_skipped += 1
                    continue
                seen.add(conversation_id)
                stream.conversations += 1
                yield conversation
            stream._page_ends.append(stream.conversations)
            # A short page is the last one. totalHits cannot say where the end is: it is an estimate
            # ("the approximate number"), and stopping at an estimate that is too low loses records.
            if len(conversations) < page_size:
                return

    # --- async detail jobs ---------------------------------------------------------------------

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
            with _cap_answer_raises(lambda: JobResultCapExceeded(job_id=job_id, cap=cap)):
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

    # --- the org's limits -----------------------------------------------------------------------

    def get_analytics_limits(self, namespace: str = "analytics") -> OrgLimits:
        """The org's effective limits (`GET /api/v2/organizations/limits/namespaces/{namespace}`),
        for the record and to say how many detail-job slots a submission waits for. Which namespace
        holds the detail-job keys is UNCONFIRMED, hence the parameter. A 403 (the OAuth client may
        not read limits) or 404 (no such namespace) comes back as `unavailable`, not raised: the
        limits inform, the extraction does not need them."""
        try:
            payload = self._json("GET", f"{LIMITS_PATH}/{namespace}")
        except GenesysApiError as error:
            if error.status not in (403, 404):
                raise
            reason = f"HTTP {error.status} {error.code or ''}: {error.message}".replace(" :", ":")
            if error.status == 403:
                reason += "; the OAuth client may lack the permission to read them"
            self.limits = OrgLimits(namespace, {}, unavailable=reason)
            log.info("Genesys %s limits of the org could not be read (%s); carrying on without them", namespace, reason)
            return self.limits
        entities = [e for e in payload.get("entities") or [] if isinstance(e, dict) and "key" in e]
        self.limits = OrgLimits(namespace, {str(e["key"]): e.get("value") for e in entities})
        self.job_slots.limit_to(self.limits.job_slots)
        log.info("Genesys %s limits of the org: %s", namespace, self.limits.values)
        return self.limits

    # --- conversations by id -------------------------------------------------------------------

    def get_conversations(self, conversation_ids: Iterable[str]) -> Iterator[Conversation]:
        """`GET .../details?id=a,b,...` in chunks of `multiget_chunk_size`; yield the records
        found (unknown ids are skipped by the API). Duplicate ids are requested once."""
        chunk_size = self._settings.multiget_chunk_size
        chunk: list[str] = []
        for conversation_id in dict.fromkeys(conversation_ids):
            chunk.append(conversation_id)
            if len(chunk) == chunk_size:
                yield from self._multi_get(chunk)
                chunk = []
        if chunk:
            yield from self._multi_get(chunk)

    def _multi_get(self, ids: list[str]) -> list[Conversation]:
        where = f"{len(ids)} conversations by id from {ids[0]}"
        return self._json("GET", DETAILS_PATH, where=where, params={"id": ",".join(ids)}).get("conversations") or []

    # --- lookups (id -> name) ------------------------------------------------------------------

    def iter_queues(self, params: Mapping[str, Any] | None = None) -> Iterator[dict[str, Any]]:
        """Every routing queue (`GET /api/v2/routing/queues`)."""
        return self._iter_listing(QUEUES_PATH, params)

    def iter_wrapup_codes(self, params: Mapping[str, Any] | None = None) -> Iterator[dict[str, Any]]:
        """Every wrap-up code (`GET /api/v2/routing/wrapupcodes`)."""
        return self._iter_listing(WRAPUP_CODES_PATH, params)

    def iter_users(
        self, state: str = "any", params: Mapping[str, Any] | None = None
    ) -> Iterator[dict[str, Any]]:
        """Every user (`GET /api/v2/users`). `state="any"` by default: the API's default
        (`active`) hides deleted agents, whose ids still appear in historical conversations."""
        return self._iter_listing(USERS_PATH, {**(params or {}), "state": state})

    def iter_divisions(self, params: Mapping[str, Any] | None = None) -> Iterator[dict[str, Any]]:
        """Every division (`GET /api/v2/authorization/divisions`)."""
        return self._iter_listing(DIVISIONS_PATH, params)

    def _iter_listing(self, path: str, params: Mapping[str, Any] | None) -> Iterator[dict[str, Any]]:
        """Page a page-number listing to its end. The end is `pageCount`, the envelope's contract:
        `nextUri` may be left out of pages that are not the last, so it is not trusted to say there
        are more. A page without an integer `pageCount`, or a listing that still says it has more
        pages once page 1's `pageCount` pages are read, fails naming the path: otherwise a broken
        envelope would either cut the listing short or page it forever."""
        page_number, budget = 1, None
        while True:
            payload = self._json("GET", path, where=f"page {page_number}", params={
                **(params or {}), "pageSize": self._settings.lookup_page_size, "pageNumber": page_number,
            })  # fmt: skip
            entities = payload.get("entities") or []
            yield from entities
            page_count = payload.get("pageCount")
            if not isinstance(page_count, int) or isinstance(page_count, bool):
                raise GenesysError(
                    f"GET {path} page {page_number}: no integer pageCount in the listing "
                    f"(got {page_count!r}), so its end is unknown"
                )
            budget = page_count if budget is None else budget
            if not entities or page_number >= page_count:
                return
            if page_number >= budget:
                raise GenesysError(
                    f"GET {path} did not end: page {page_number} of the {budget} that page 1 announced "
                    f"says pageCount {page_count}; stopped rather than page on"
                )
            page_number += 1

    # --- plumbing ------------------------------------------------------------------------------

    def _json(self, method: str, path: str, *, where: str | None = None, **kwargs: Any) -> dict[str, Any]:
        """The endpoint's JSON object; a 2xx that is not one is retried, then fails saying `where`."""
        return self._transport.request_json(method, path, where=where, **kwargs)


@contextlib.contextmanager
def _cap_answer_raises(cap_error: Callable[[], GenesysError]) -> Iterator[None]:
    """Raise `cap_error()` for the API's 400 to a page past a pagination cap: a cap error says to
    split the interval, which the bare 400 does not. Any other error passes through."""
    try:
        yield
    except GenesysApiError as error:
        if error.status == 400 and _CAP_MESSAGE in error.message:
            raise cap_error() from error
        raise


def format_interval(start: datetime, end: datetime) -> str:
    """`2024-05-09T00:00:00.000Z/2024-05-10T00:00:00.000Z`; both ends must be timezone-aware."""
    if start.tzinfo is None or end.tzinfo is None:
        raise ValueError("interval start and end must be timezone-aware datetimes (use UTC)")
    if end <= start:
        raise ValueError(f"interval end {end.isoformat()} is not after its start {start.isoformat()}")
    return f"{_iso_ms(start)}/{_iso_ms(end)}"


def _iso_ms(instant: datetime) -> str:
    utc = instant.astimezone(timezone.utc)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"


def parse_datetime(text: str) -> datetime:
    """Parse the API's ISO-8601 UTC timestamps (`2024-05-01T06:00:00.000Z`)."""
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(timezone.utc)

