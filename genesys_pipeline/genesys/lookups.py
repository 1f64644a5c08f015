"""The lookup listings (id -> name: queues, wrap-up codes, users, divisions), each paged by page
number to the end its `pageCount` announces.

Apart from the conversation calls because the listings follow the platform's common entity-listing
envelope, with an end of their own to check, not the analytics API's paging.
"""

from __future__ import annotations

from typing import Any, Iterator, Mapping

from genesys_pipeline.genesys.errors import GenesysError
from genesys_pipeline.genesys.session import ClientSession

QUEUES_PATH = "/api/v2/routing/queues"
WRAPUP_CODES_PATH = "/api/v2/routing/wrapupcodes"
USERS_PATH = "/api/v2/users"
DIVISIONS_PATH = "/api/v2/authorization/divisions"


class LookupCalls(ClientSession):
    """`iter_queues`, `iter_wrapup_codes`, `iter_users` and `iter_divisions`."""

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
