"""Extract every conversation that started in a time window, exactly once, into gzip JSON lines.

Strategy (genesys-api.md sections 2-3, peers.md section 5):
- The part of the window before the data-availability watermark is read with detail jobs, the bulk
  export path (1000 records a request). It is cut into pieces small enough that no job meets the
  400,000-result cap, sized from the details query's `totalHits` per UTC day; if a piece still meets
  it, the whole window restarts with twice as many pieces.
- Conversations that had not ended at the watermark may be missing from the jobs ("data up to at
  least" the watermark; genesys-api-more.md s2, UNCONFIRMED) or served as they stood then. They are
  read live with the details query, per UTC day and while the jobs run: those still open
  (`conversationEnd notExists`) and those ended since (ordered by `conversationEnd`, newest first,
  down to the watermark). That pages the conversations open at one instant (and, on the
  watermark's own day, those started after it), far below the 100,000-result cap; over it, the
  watermark's day is read oldest first up to the watermark instead. The live record replaces the job's (it is newer: ended, with its
  metrics), keeping the job's participant attributes, which query records never carry.
- The part after the watermark (today, the last hours) is read with the details query, newest
  first, stopping at the watermark. The query matches whole UTC days, so cutting its interval would
  not shrink it; reading newest-first means only the few hours after the watermark are paged, far
  below the 100,000-result cap. Should even those hours exceed it, the day is read from its other
  end too (oldest first) until the two reads meet: that covers any day of up to twice the cap.
  A split by filter (per media type) would not: the filters have no negation to catch a media
  type Genesys adds later, so such conversations would be skipped without an error.
- Jobs match conversations whose lifetime overlaps their interval and queries match whole UTC
  days, so both serve conversations that started elsewhere: only those whose `conversationStart`
  lies in the piece being read are kept. Records are deduplicated by `conversationId`.
"""

from __future__ import annotations

import contextlib
import math
import shutil
import tempfile
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import datetime, timedelta, timezone
from typing import IO, Any, Callable, ContextManager, Iterable

from genesys_pipeline.genesys.client import GenesysClient
from genesys_pipeline.genesys.errors import JobResultCapExceeded, QueryCapExceeded
from genesys_pipeline.genesys.timestamps import parse_datetime
from genesys_pipeline.steps.prefetch import prefetched
from genesys_pipeline.steps.raw_records import (
    DedupWriter,
    ExtractionError,
    ExtractionReport,
    Newer,
    Progress,
    Protect,
    from_job,
    from_query,
    started_at,
)

# The conversations still open now (genesys-api-more.md s1.1).
STILL_OPEN = [{"type": "and", "predicates": [{"dimension": "conversationEnd", "operator": "notExists"}]}]
# Jobs are sized to this share of the cap: overlap matching adds conversations from earlier.
JOB_FILL_TARGET = 0.8
MAX_JOB_PIECES = 1024
# Detail jobs read at once: while one stream's page is parsed and written, the other's next page
# is being served. A window of more than PARALLEL_FROM conversations gets at least that many pieces.
JOB_STREAMS = 2
PARALLEL_FROM = 5_000

OpenOutput = Callable[[], ContextManager[IO[bytes]]]


def utc_days(start: datetime, end: datetime) -> list[tuple[datetime, datetime]]:
    """The whole UTC days that [start, end) touches."""
    day = start.astimezone(timezone.utc).replace(hour=0, minute=0, second=0, microsecond=0)
    days = []
    while day < end:
        days.append((day, day + timedelta(days=1)))
        day += timedelta(days=1)
    return days


def extract_window(
    client: GenesysClient,
    start: datetime,
    end: datetime,
    open_output: OpenOutput,
    *,
    job_result_cap: int,
    on_progress: Callable[[int], None] | None = None,
    progress_every: int = 10_000,
    protect: Protect | None = None,
    on_estimate: Callable[[int | None], None] | None = None,
) -> ExtractionReport:
    """Extract conversations started in [start, end) into the binary file `open_output()` yields.

    `open_output` is a context-manager factory (e.g. `WorkingStorage.writer`): a restart (jobs cut
    finer) begins a fresh file, and a failure never replaces a good one. `on_progress(n)` is called
    every `progress_every` records written; `protect(record)` is what is written of each record;
    `on_estimate(n)` gets the API's approximate count of the window before the first record is read
    (None when there is none: see `_set_api_count`).
    """
    start, end = start.astimezone(timezone.utc), end.astimezone(timezone.utc)
    watermark = client.get_data_availability()
    split = min(max(watermark, start), end)  # jobs read [start, split), the query [split, end)
    day_totals = _query_totals(client, start, end)
    estimate = sum(day_totals)
    if on_estimate is not None:
        on_estimate(estimate if _whole_utc_days(start, end) else None)
    pieces = max(math.ceil(estimate / (job_result_cap * JOB_FILL_TARGET)), JOB_STREAMS if estimate > PARALLEL_FROM else 1)
    pieces = pieces if split > start else 0
    while True:
        report = ExtractionReport(start, end, data_availability_date=watermark)
        progress = Progress(on_progress, progress_every)
        report.path = "+".join(name for name, used in (("jobs", split > start), ("query", split < end)) if used)
        try:
            with open_output() as handle:
                if pieces:
                    # Queried while the jobs are queued and run: they are the slow part.
                    with ThreadPoolExecutor(1, thread_name_prefix="open-at-watermark") as side:
                        newer = side.submit(_open_at_watermark, client, report, start, split, watermark)
                        _read_with_jobs(client, report, handle, start, split, pieces, progress, newer, protect)
                    writer = DedupWriter(handle, report, progress, protect=protect)
                    live = sorted(newer.result().values(), key=_start_order)  # their starts were checked
                    writer.write_started_between(live, start, split, lambda n: f"live record {n} of those open then")
                    writer.close()
                if split < end:
                    writer = DedupWriter(handle, report, progress, protect=protect)
                    _read_with_query(client, report, writer, split, end)
                    writer.close()
        except JobResultCapExceeded:
            if pieces * 2 > MAX_JOB_PIECES:
                raise ExtractionError(
                    f"{start:%Y-%m-%d %H:%M} to {split:%Y-%m-%d %H:%M} still meets the detail jobs' "
                    f"result cap ({job_result_cap}) when split into {pieces} jobs"
                )
            pieces *= 2
            continue
        _set_api_count(report, start, end, day_totals)
        return report


def _set_api_count(report: ExtractionReport, start: datetime, end: datetime, day_totals: list[int]) -> None:
    """What the API itself says the window holds, for the API count check to compare with the records.

    The details query's totalHits (fetched for each UTC day anyway, to size the jobs) counts whole UTC
    days, so a window of whole UTC days has an independent count; it is approximate. Detail jobs give
    no count of their own (their results are the records), so any other window has none, and says so
    rather than comparing the records with themselves.
    """
    days = utc_days(start, end)
    if _whole_utc_days(start, end):
        report.api_reported = sum(day_totals)
        utc_dates = ", ".join(f"{day:%Y-%m-%d}" for day, _ in days)
        report.api_count_note = f"details-query totalHits for UTC {utc_dates}, approximate"
    else:
        report.api_reported = None
        report.api_count_note = (
            "no independent count: the window is not whole UTC days, the details query's totalHits "
            "counts whole UTC days only and detail jobs give no count of their own"
        )


def _whole_utc_days(start: datetime, end: datetime) -> bool:
    days = utc_days(start, end)
    return (start, end) == (days[0][0], days[-1][1])


def _query_totals(client: GenesysClient, start: datetime, end: datetime) -> list[int]:
    """The query's totalHits for each UTC day the window touches (one small request a day)."""
    totals = []
    for day_start, day_end in utc_days(start, end):
        stream = client.query_conversation_details(day_start, day_end, fail_fast_on_cap=False)
        with contextlib.closing(stream):
            next(stream, None)
        totals.append(stream.total_hits or 0)
    return totals


def _open_at_watermark(
    client: GenesysClient, report: ExtractionReport, start: datetime, split: datetime, watermark: datetime
) -> Newer:
    """Live records of the conversations started in [start, split) that had not ended at the
    watermark, by id. Per UTC day: those still open, and those ended since (newest end first, down
    to the watermark; unfiltered, so wherever the API sorts the open ones, which have no end, the
    first query has them). The latter also pages the day's conversations started after the split,
    so on the split's day it can meet the cap: then the day is read oldest first up to the split."""
    found: Newer = {}

    def collect(day: tuple[datetime, datetime], filters: Any, order: str, order_by: str,
                stop: Callable[[dict[str, Any], datetime], bool]) -> None:  # fmt: skip
        stream = client.query_conversation_details(*day, conversation_filters=filters, order=order,
                                                   order_by=order_by, fail_fast_on_cap=False)  # fmt: skip
        report.queries += 1
        where = from_query(stream, order)
        with contextlib.closing(stream):
            for number, record in enumerate(stream, 1):
                started = started_at(record, where, number)
                if stop(record, started):
                    return
                if start <= started < split and not _ended_before(record, watermark):
                    found[record["conversationId"]] = record

    for day in utc_days(start, split):
        try:
            collect(day, STILL_OPEN, "desc", "conversationStart", lambda record, started: False)
            try:
                collect(day, None, "desc", "conversationEnd", lambda record, _: _ended_before(record, watermark))
            except QueryCapExceeded:
                collect(day, None, "asc", "conversationStart", lambda record, started: started >= split)
        except QueryCapExceeded as error:
            raise ExtractionError(
                f"{error}: more conversations that started on {day[0]:%Y-%m-%d} were open at the "
                f"data-availability watermark ({watermark:%Y-%m-%d %H:%M} UTC), or started before it, than one "
                "details query can page, so the ones the detail jobs may leave out cannot all be read."
            ) from error
    return found


def _ended_before(record: dict[str, Any], instant: datetime) -> bool:
    return "conversationEnd" in record and parse_datetime(record["conversationEnd"]) < instant


def _start_order(record: dict[str, Any]) -> tuple[str, str]:
    return record["conversationStart"], record["conversationId"]


def _pieces(start: datetime, end: datetime, count: int) -> list[tuple[datetime, datetime]]:
    step = (end - start) / count
    edges = [start + step * index for index in range(count)] + [end]
    return list(zip(edges, edges[1:]))


def _read_with_jobs(
    client: GenesysClient,
    report: ExtractionReport,
    handle: IO[bytes],
    start: datetime,
    end: datetime,
    pieces: int,
    progress: Progress,
    newer: Future[Newer],
    protect: Protect | None = None,
) -> int:
    """Run the pieces' jobs JOB_STREAMS at a time, each into a spool file, and append the spools to
    `handle` in piece order (so the output does not depend on which job finished first). Records
    whose id is in `newer` are left for the caller to write from there."""

    def read_piece(bounds: tuple[datetime, datetime]) -> tuple[IO[bytes], ExtractionReport, int]:
        piece_start, piece_end = bounds
        piece_report = ExtractionReport(piece_start, piece_end)
        spool = tempfile.TemporaryFile()
        writer = DedupWriter(spool, piece_report, progress, newer, protect)
        stream = client.run_details_job(piece_start, piece_end)
        # Overlap matching serves a conversation in every piece its lifetime spans; it is kept
        # from the piece it started in.
        records = prefetched(stream)
        with contextlib.closing(records):
            started = writer.write_started_between(records, piece_start, piece_end, from_job(stream))
        writer.close()
        piece_report.data_availability_date = stream.data_availability_date
        return spool, piece_report, started

    started_in_window = 0
    with ThreadPoolExecutor(JOB_STREAMS, thread_name_prefix="detail-job") as pool:
        try:
            for spool, piece_report, started in pool.map(read_piece, _pieces(start, end, pieces)):
                with spool:
                    spool.seek(0)
                    shutil.copyfileobj(spool, handle)
                report.merge(piece_report)
                started_in_window += started
        finally:
            pool.shutdown(cancel_futures=True)
    return started_in_window


def _read_with_query(
    client: GenesysClient, report: ExtractionReport, writer: DedupWriter, start: datetime, end: datetime
) -> None:
    """Each UTC day newest first down to `start`; over the cap, oldest first too, up to where the
    newest-first read stopped (see the module docstring)."""
    for day_start, day_end in reversed(utc_days(start, end)):
        last_read: list[datetime] = []
        try:
            _read_day(client, report, writer, (start, end), (day_start, day_end), "desc", start.__gt__, last_read)
        except QueryCapExceeded:
            oldest_newest_first = last_read[-1] if last_read else day_end
            try:
                _read_day(client, report, writer, (start, end), (day_start, day_end), "asc",
                          oldest_newest_first.__lt__, last_read)  # fmt: skip
            except QueryCapExceeded as error:
                raise ExtractionError(
                    f"{error}: the conversations that started between {last_read[-1]:%Y-%m-%d %H:%M} and "
                    f"{oldest_newest_first:%Y-%m-%d %H:%M} UTC lie deeper than one details query can page from "
                    "either end of the day. Rerun once the data-availability watermark has passed them "
                    "(detail jobs have no such limit)."
                ) from error


def _read_day(
    client: GenesysClient,
    report: ExtractionReport,
    writer: DedupWriter,
    keep: tuple[datetime, datetime],
    day: tuple[datetime, datetime],
    order: str,
    stop_at: Callable[[datetime], bool],
    last_read: list[datetime],
) -> None:
    """Page a UTC day's query by conversationStart in `order`, writing the records started in `keep`,
    up to the first whose start `stop_at`; `last_read` gets the start of every record passed on."""
    stream = client.query_conversation_details(*day, order=order, fail_fast_on_cap=False)
    report.queries += 1

    where = from_query(stream, order)

    def until_stop(records: Iterable[dict[str, Any]]) -> Iterable[dict[str, Any]]:
        for number, record in enumerate(records, 1):
            started = started_at(record, where, number)
            if stop_at(started):
                return
            last_read[:] = [started]
            yield record

    records = prefetched(stream)
    with contextlib.closing(records):
        writer.write_started_between(until_stop(records), *keep, where)
