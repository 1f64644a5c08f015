"""Writing a window's records exactly once, and what each record must carry to be filed under its day.

The extraction (extract.py) decides what to read; this module holds what it writes with and reports:
`DedupWriter` (gzip JSON lines, one per conversationId, only those that started in the piece being
read), `ExtractionReport`, the `conversationStart` a record must have (`started_at`, with an error that
says where a bad record came from), and the live record replacing a job's (`carry_attributes`).
"""

from __future__ import annotations

import dataclasses
import gzip
import threading
from concurrent.futures import Future
from datetime import datetime
from typing import IO, Any, Callable, Iterable

import orjson

from genesys_pipeline.genesys.streams import DetailJobStream, DetailsQueryStream
from genesys_pipeline.genesys.timestamps import parse_datetime

Newer = dict[str, dict[str, Any]]  # live records by conversationId
Protect = Callable[[dict[str, Any]], dict[str, Any]]  # a record -> the record as it may be written
Where = Callable[[int], str]  # the n-th record of a stream (from 1) -> where it came from, for errors


class ExtractionError(Exception):
    """The window cannot be extracted completely; the message says why and what to change."""


@dataclasses.dataclass
class ExtractionReport:
    window_start: datetime
    window_end: datetime
    path: str = ""  # "jobs", "query" or "jobs+query"
    records_written: int = 0
    duplicates_dropped: int = 0
    ongoing: int = 0
    # The API's own count of the conversations started in the window, independent of the records
    # read (approximate), or None; `api_count_note` says which count it is, or why there is none.
    api_reported: int | None = None
    api_count_note: str = ""
    jobs: int = 0
    queries: int = 0
    data_availability_date: datetime | None = None
    # What was done to each class of personal data before writing (contracts/personal_data.py), so that
    # a reader of the manifest knows whether a value is the API's or a hash; never the key.
    personal_data: dict[str, str] = dataclasses.field(default_factory=dict)

    def merge(self, piece: "ExtractionReport") -> None:
        """Add a job piece's counts to this window's."""
        self.jobs += 1
        for name in ("records_written", "duplicates_dropped", "ongoing"):
            setattr(self, name, getattr(self, name) + getattr(piece, name))
        self.data_availability_date = piece.data_availability_date or self.data_availability_date

    def as_dict(self) -> dict[str, Any]:
        values = dataclasses.asdict(self)
        for key in ("window_start", "window_end", "data_availability_date"):
            values[key] = values[key].isoformat() if values[key] else None
        return values


class Progress:
    """Reports every `step` records written, across the concurrently written pieces."""

    def __init__(self, report: Callable[[int], None] | None, step: int) -> None:
        self._report, self._step = report, step
        self._lock = threading.Lock()
        self.written = 0

    def add(self) -> None:
        with self._lock:
            self.written += 1
            if self._report is not None and self.written % self._step == 0:
                self._report(self.written)


class DedupWriter:
    """Writes records as one gzip member of JSON lines, once per conversationId, as they stream in.

    The output file is a concatenation of such members (one per job piece, one for the live records
    of conversations open at the watermark, one for the query part),
    which every gzip reader reads as one stream. Pieces never share a conversation (each keeps only
    those that started in it), so deduplicating within a member is enough.
    """

    def __init__(
        self, handle: IO[bytes], report: ExtractionReport, progress: Progress, newer: Future[Newer] | None = None,
        protect: Protect | None = None,
    ) -> None:  # fmt: skip
        # No file name and mtime=0 in the gzip header: the same records give the same bytes.
        self._gzip = gzip.GzipFile(filename="", fileobj=handle, mode="wb", compresslevel=1, mtime=0)
        self._report = report
        self._progress = progress
        self._seen: set[str] = set()  # ids only (about 100 bytes each), never the records
        self._newer = newer  # live records, written elsewhere instead of the records with their ids
        self._protect = protect  # personal data hashed or dropped (steps/privacy.py), in place, just before writing

    def write_started_between(
        self, records: Iterable[dict[str, Any]], start: datetime, end: datetime, where: Where
    ) -> int:
        """Write the records that started in [start, end); return how many started there. A record
        without a conversationStart that parses fails, saying `where(its number)` it came from."""
        started_here = 0
        newer: Newer | None = None
        for number, record in enumerate(records, 1):
            if newer is None:  # waited for at the first record: until then the job was running
                newer = self._newer.result() if self._newer else {}
            try:  # free while nothing is raised: the per-record cost stays one parse
                started = parse_datetime(record["conversationStart"])
            except (KeyError, TypeError, AttributeError, ValueError):
                raise bad_start(record, where(number)) from None
            if not start <= started < end:
                continue  # served because it overlaps the piece; it belongs to the piece it started in
            started_here += 1
            if record["conversationId"] in self._seen:
                self._report.duplicates_dropped += 1
                continue
            self._seen.add(record["conversationId"])
            live = newer.get(record["conversationId"])
            if live is not None:
                carry_attributes(record, live)
                continue
            self._report.records_written += 1
            self._report.ongoing += "conversationEnd" not in record
            self._progress.add()
            if self._protect is not None:
                record = self._protect(record)
            self._gzip.write(orjson.dumps(record) + b"\n")
        return started_here

    def close(self) -> None:
        self._gzip.close()


def from_job(stream: DetailJobStream) -> Where:
    def where(n: int) -> str:
        return f"detail job {stream.job_id} for {stream.interval}, results page {stream.page_of(n)} (record {n})"

    return where


def from_query(stream: DetailsQueryStream, order: str) -> Where:
    return lambda n: f"the details query of {stream.interval} (order {order}), page {stream.page_of(n)} (record {n})"


def started_at(record: dict[str, Any], where: Where, number: int) -> datetime:
    """The record's conversationStart, or an ExtractionError saying what is wrong with it and where
    the record came from."""
    try:
        return parse_datetime(record["conversationStart"])
    except (KeyError, TypeError, AttributeError, ValueError):
        raise bad_start(record, where(number)) from None


def bad_start(record: Any, where: str) -> ExtractionError:
    """Every record is filed under the day its conversationStart falls on: one without a usable
    start cannot be filed, and guessing would put it in the wrong partition or none."""
    if not isinstance(record, dict):
        return ExtractionError(f"A record from {where} is a {type(record).__name__}, not a conversation object")
    if "conversationStart" not in record:
        problem = "is missing"
    else:
        value = record["conversationStart"]
        shown = repr(value) if len(repr(value)) <= 60 else repr(value)[:57] + "..."
        kind = type(value).__name__
        problem = (f"is the str {shown}, which is not an ISO-8601 timestamp" if isinstance(value, str)
                   else f"is the {kind} {shown}, not an ISO-8601 timestamp string")  # fmt: skip
    return ExtractionError(
        f"Conversation {record.get('conversationId')} from {where}: conversationStart {problem}. Every "
        "record must carry its start as an ISO-8601 UTC timestamp (e.g. 2024-05-08T10:00:00.000Z) to be "
        "filed under its day; the extraction stopped rather than guess."
    )


def carry_attributes(job_record: dict[str, Any], live_record: dict[str, Any]) -> None:
    """Query records have no participant attributes (AnalyticsParticipantWithoutAttributes):
    give the live record the job's, by participantId."""
    attributes = {p.get("participantId"): p["attributes"] for p in job_record.get("participants", []) if "attributes" in p}
    for participant in live_record.get("participants", []):
        if participant.get("participantId") in attributes:
            participant.setdefault("attributes", attributes[participant["participantId"]])
