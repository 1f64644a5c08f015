"""The synchronous conversation details endpoints: the details query, paged by page number up to the
API's result cap, and conversations fetched by id.

Apart from the detail jobs: the query answers at once from live data and is paged by page number,
a job answers from the data lake after a wait and is paged by cursor.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Generator, Iterable, Iterator, Mapping

from genesys_pipeline.genesys.errors import QueryCapExceeded, cap_answer_raises
from genesys_pipeline.genesys.session import ClientSession
from genesys_pipeline.genesys.streams import Conversation, DetailsQueryStream
from genesys_pipeline.genesys.timestamps import format_interval

DETAILS_PATH = "/api/v2/analytics/conversations/details"
QUERY_PATH = f"{DETAILS_PATH}/query"


class DetailsQueryCalls(ClientSession):
    """`query_conversation_details` and `get_conversations`."""

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
            with cap_answer_raises(cap_exceeded):
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
