"""The synchronous conversation details endpoints: `POST .../details/query` (its interval, paging and
filter rules, the approximate `totalHits`, live data shifting pages) and the single and multi get.

Apart from the routing because this is where the emulator decides which records a query serves;
the detail jobs' endpoints are in job_endpoints.py, the matching rules in querying.py.
"""

from __future__ import annotations

import re
from typing import Any

import orjson

from .clock import EmulatorClock
from .config import EmulatorConfig
from .errors import bad_request, not_found
from .lookups import multi_values
from .messages import Request
from .querying import (
    Interval,
    approximate_total_hits,
    day_matched_plans,
    decided_by_plan,
    has_filters,
    plan_fields,
    record_matches,
    sort_plans,
    validate_filters,
    validate_order,
)
from .synthetic import ContactCentre


class DetailsEndpoints:
    """The handlers of the details query and the gets by id; each takes the request and its route's
    match, and returns the JSON-ready answer or raises an `ApiError`."""

    def __init__(self, config: EmulatorConfig, clock: EmulatorClock, centre: ContactCentre) -> None:
        self.config = config
        self.clock = clock
        self.centre = centre

    def details_query(self, request: Request, _: re.Match[str]) -> dict[str, Any]:
        body = request.json()
        interval = Interval(body.get("interval"))
        filtered = has_filters(body)
        limit_days = self.config.query_max_days_filtered if filtered else self.config.query_max_days_unfiltered
        if interval.days > limit_days:
            raise bad_request(
                "You must specify a search interval as part of your query that does not exceed "
                f"{limit_days} days."
            )
        order, order_by = validate_order(body)
        validate_filters(body)
        page_size, page_number = self._paging(body.get("paging"))
        if page_size * page_number > self.config.query_pagination_cap:
            raise bad_request(
                f"Pagination may not exceed {self.config.query_pagination_cap} results. Page through "
                "several smaller intervals (for example hour by hour) instead of one large interval."
            )
        now_ms = self.clock.now_ms()
        plans = list(day_matched_plans(self.centre.day_plans, interval, now_ms))
        if filtered and decided_by_plan(body):
            plans = [plan for plan in plans if record_matches(plan_fields(plan, now_ms), body)]
        elif filtered:
            # Each record decided as served (through the render cache: the query's next page does
            # not render the whole day again).
            shown = self.centre.record_as_served
            plans = [plan for plan in plans if record_matches(shown(plan, now_ms, with_attributes=False), body)]
        sort_plans(plans, order, order_by, now_ms)
        total_hits = len(plans) if self.config.exact_total_hits else approximate_total_hits(
            len(plans), interval, body, self.config.seed
        )
        start = (page_number - 1) * page_size
        if self.config.live_drift and page_number > 1:
            # New records landed before this page since the previous one: the window slides back and
            # the tail of the previous page is served again.
            shift = min(start, 2 * (page_number - 1))
            start -= shift
            total_hits += shift
        page = plans[start : start + page_size]
        if not page:
            return {"totalHits": total_hits}
        conversations = [self.centre.served(plan, now_ms, with_attributes=False) for plan in page]
        return {"conversations": conversations, "totalHits": total_hits}

    def _paging(self, paging: Any) -> tuple[int, int]:
        if paging is None:
            return 25, 1
        if not isinstance(paging, dict) or "pageSize" not in paging or "pageNumber" not in paging:
            raise bad_request("paging must be an object with pageSize and pageNumber", "invalid.value")
        page_size, page_number = paging["pageSize"], paging["pageNumber"]
        if not isinstance(page_size, int) or not 1 <= page_size <= self.config.query_max_page_size:
            raise bad_request(
                f"paging.pageSize must be between 1 and {self.config.query_max_page_size}, got {page_size!r}",
                "invalid.value",
            )
        if not isinstance(page_number, int) or page_number < 1:
            raise bad_request(f"paging.pageNumber must be at least 1, got {page_number!r}", "invalid.value")
        return page_size, page_number

    def single_get(self, _: Request, match: re.Match[str]) -> orjson.Fragment:
        plan = self.centre.find_plan(match["id"])
        record = plan and self.centre.served(plan, self.clock.now_ms(), with_attributes=False)
        if not record:
            raise not_found()
        return record

    def multi_get(self, request: Request, _: re.Match[str]) -> dict[str, Any]:
        ids = multi_values(request.params, "id")
        if not ids:
            raise bad_request("At least one conversation id is required (id=...).", "invalid.value")
        if len(ids) > self.config.multiget_max_ids:
            raise bad_request(f"At most {self.config.multiget_max_ids} ids may be requested at once.", "invalid.value")
        now_ms = self.clock.now_ms()
        found = []
        for conversation_id in dict.fromkeys(ids):
            plan = self.centre.find_plan(conversation_id)
            record = plan and self.centre.served(plan, now_ms, with_attributes=False)
            if record:
                found.append(record)
        return {"conversations": found}
