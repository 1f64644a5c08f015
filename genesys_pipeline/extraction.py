"""Extract every conversation that started in a time window, exactly once, into gzip JSON lines.

Strategy (genesys-api.md sections 2-3, peers.md section 5):
- A window that ends before the data-availability watermark is read with detail jobs: the bulk
  export path, 1000 records a request. The window is cut into pieces small enough that no job meets
  the 400,000-result cap (sized from the details query's `totalHits` per UTC day); a piece that still
  meets it makes the whole window restart with twice as many pieces.
- A window that reaches past the watermark (today, yesterday) is read with the details query, one
  UTC day at a time (the query matches whole UTC days anyway). A day over the 100,000-result cap is
  read once per media type (a segment filter), which splits it without losing anything.
- Jobs match conversations whose lifetime overlaps their interval, and queries match whole UTC
  days, so both return conversations outside the window: only those whose `conversationStart` lies
  in the window are kept. Records are deduplicated by `conversationId` (pages shift on live data).
"""

from __future__ import annotations

import dataclasses
import gzip
import json
import math
from datetime import datetime, timedelta, timezone
from typing import IO, Any, Iterable, Iterator

from .resources.genesys_client import GenesysClient, parse_datetime
from .resources.genesys_errors import JobResultCapExceeded, QueryCapExceeded

# Every mediaType of the v269 API: each conversation has at least one session with one of them,
# so one query per media type covers a day that is too large for a single query.
MEDIA_TYPES = ("callback", "chat", "cobrowse", "email", "internalmessage", "message",
               "screenmonitoring", "screenshare", "unknown", "video", "voice")  # fmt: skip
# Jobs are sized to this share of the cap: overlap matching adds conversations from earlier.
JOB_FILL_TARGET = 0.8
MAX_JOB_PIECES = 1024


class ExtractionError(Exception):
    """The window cannot be extracted completely; the message says why and what to change."""


@dataclasses.dataclass
class ExtractionReport:
    window_start: datetime
    window_end: datetime
    path: str = ""  # "jobs" or "query"
    records_written: int = 0
    duplicates_dropped: int = 0
    started_elsewhere_dropped: int = 0  # served, but started outside the window (or job piece)
    ongoing: int = 0
    api_reported: int | None = None  # conversations the API says started in the window
    api_reported_basis: str = ""
    pieces: int = 0  # jobs submitted or queries run
    data_availability_date: datetime | None = None

    def as_dict(self) -> dict[str, Any]:
        values = dataclasses.asdict(self)
        for key in ("window_start", "window_end", "data_availability_date"):
            values[key] = values[key].isoformat() if values[key] else None
        return values


class _DedupWriter:
    """Writes records as gzip JSON lines, once per conversationId, as they stream in."""

    def __init__(self, handle: IO[bytes], report: ExtractionReport) -> None:
        # mtime=0 and a fixed level: the same records give the same bytes, so a rerun is comparable.
        self._gzip = gzip.GzipFile(fileobj=handle, mode="wb", compresslevel=5, mtime=0)
        self._report = report
        self._seen: set[str] = set()  # ids only (about 100 bytes each), never the records

    def write_started_between(self, records: Iterable[dict[str, Any]], start: datetime, end: datetime) -> int:
        """Write the records that started in [start, end); return how many started there."""
        in_window = 0
        for record in records:
            if not start <= parse_datetime(record["conversationStart"]) < end:
                self._report.started_elsewhere_dropped += 1
                continue
            in_window += 1
            if record["conversationId"] in self._seen:
                self._report.duplicates_dropped += 1
                continue
            self._seen.add(record["conversationId"])
            self._report.records_written += 1
            self._report.ongoing += "conversationEnd" not in record
            self._gzip.write(json.dumps(record, ensure_ascii=False, separators=(",", ":")).encode("utf-8"))
            self._gzip.write(b"\n")
        return in_window

    def close(self) -> None:
        self._gzip.close()


def utc_days(start: datetime, end: datetime) -> list[tuple[datetime, datetime]]:
    """The whole UTC days that [start, end) touches."""
    first = start.astimezone(timezone.utc).replace(hour=0, minute=0, second=0, microsecond=0)
    days = []
    while first < end:
        days.append((first, first + timedelta(days=1)))
        first += timedelta(days=1)
    return days


def extract_window(
    client: GenesysClient, start: datetime, end: datetime, open_output: Any, *, job_result_cap: int
) -> ExtractionReport:
    """Extract conversations started in [start, end) into the binary file `open_output()` yields.

    `open_output` is a context-manager factory (e.g. `WorkingStorage.writer`) so that a restart
    (jobs split finer) begins a fresh file, and a failure never replaces a good one.
    """
    start, end = start.astimezone(timezone.utc), end.astimezone(timezone.utc)
    watermark = client.get_data_availability()
    if end <= watermark:
        return _extract_with_jobs(client, start, end, watermark, open_output, job_result_cap)
    report = ExtractionReport(start, end, path="query", data_availability_date=watermark)
    with open_output() as handle:
        writer = _DedupWriter(handle, report)
        _extract_with_queries(client, report, writer)
        writer.close()
    return report


def _extract_with_queries(client: GenesysClient, report: ExtractionReport, writer: _DedupWriter) -> None:
    total_hits = 0
    for day_start, day_end in utc_days(report.window_start, report.window_end):
        try:
            stream = client.query_conversation_details(day_start, day_end)
            report.pieces += 1
            writer.write_started_between(stream, report.window_start, report.window_end)
            total_hits += stream.total_hits or 0
        except QueryCapExceeded:
            total_hits += _query_by_media_type(client, report, writer, day_start, day_end)
    whole_days = report.window_start == report.window_start.replace(hour=0, minute=0, second=0, microsecond=0)
    if whole_days and report.window_end - report.window_start == timedelta(days=1):
        report.api_reported, report.api_reported_basis = total_hits, "details query totalHits"


def _query_by_media_type(
    client: GenesysClient, report: ExtractionReport, writer: _DedupWriter, day_start: datetime, day_end: datetime
) -> int:
    total = 0
    for media_type in MEDIA_TYPES:
        media_filter = [{"type": "or", "predicates": [{"dimension": "mediaType", "value": media_type}]}]
        try:
            stream = client.query_conversation_details(day_start, day_end, segment_filters=media_filter)
            report.pieces += 1
            writer.write_started_between(stream, report.window_start, report.window_end)
        except QueryCapExceeded as error:
            raise ExtractionError(
                f"{error}: even one media type of {day_start:%Y-%m-%d} exceeds the details query's cap. "
                "This day is after the data-availability watermark; rerun it once the watermark has "
                "passed (detail jobs have no such limit) or raise query_result_cap if your org allows."
            ) from error
        total += stream.total_hits or 0
    return total


def _estimate_started(client: GenesysClient, start: datetime, end: datetime) -> int:
    """Conversations started on the UTC days the window touches, from the query's totalHits."""
    estimate = 0
    for day_start, day_end in utc_days(start, end):
        stream = client.query_conversation_details(day_start, day_end)
        try:
            next(stream, None)
            estimate += stream.total_hits or 0
        except QueryCapExceeded as error:
            estimate += error.total_hits or 0
        finally:
            stream.close()
    return estimate


def _pieces(start: datetime, end: datetime, count: int) -> Iterator[tuple[datetime, datetime]]:
    step = (end - start) / count
    for index in range(count):
        yield start + step * index, (start + step * (index + 1)) if index < count - 1 else end


def _extract_with_jobs(
    client: GenesysClient, start: datetime, end: datetime, watermark: datetime, open_output: Any, job_cap: int
) -> ExtractionReport:
    estimate = _estimate_started(client, start, end)
    count = max(1, math.ceil(estimate / (job_cap * JOB_FILL_TARGET)))
    while True:
        report = ExtractionReport(start, end, path="jobs", data_availability_date=watermark)
        try:
            with open_output() as handle:
                writer = _DedupWriter(handle, report)
                api_reported = 0
                for piece_start, piece_end in _pieces(start, end, count):
                    stream = client.run_details_job(piece_start, piece_end)
                    report.pieces += 1
                    # Overlap matching returns a conversation in every piece its lifetime spans;
                    # it is kept from the piece it started in.
                    api_reported += writer.write_started_between(stream, piece_start, piece_end)
                    if stream.data_availability_date:
                        report.data_availability_date = stream.data_availability_date
                writer.close()
            report.api_reported, report.api_reported_basis = api_reported, "detail job results"
            return report
        except JobResultCapExceeded:
            if count * 2 > MAX_JOB_PIECES:
                raise ExtractionError(
                    f"{start:%Y-%m-%d %H:%M} to {end:%Y-%m-%d %H:%M} still meets the detail jobs' "
                    f"result cap ({job_cap}) when split into {count} jobs"
                )
            count *= 2

