"""The iterators the client hands out for conversation records, and what they report as they go.

Apart from the calls that fill them because the pipeline's steps hold on to them (page counts,
`totalHits`, the job's state and watermark) long after the call that made them has returned.
"""

from __future__ import annotations

import bisect
from datetime import datetime
from typing import Any, Callable, Generator, Iterator, Self

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
