"""Request handling, independent of the HTTP plumbing: a request in, a `Response` out.

Every `/api/v2` request goes through the same gate, in the real service's order as far as a client
can tell: bearer check (401), per-token rate limit (429 with Retry-After), injected faults, size and
content-type checks, then the endpoint. Every response carries `ININ-Correlation-Id`; API responses
also carry the `inin-ratelimit-*` headers.
"""

from __future__ import annotations

import collections
import dataclasses
import json
import random
import re
import threading
import uuid
from datetime import date
from typing import Any, Callable
from urllib.parse import parse_qs

import orjson

from .auth import TokenIssuer
from .clock import EmulatorClock, iso_ms, parse_iso
from .config import EmulatorConfig
from .errors import ApiError, OAuthError, bad_request, not_found, too_many_requests
from .jobs import JobStore
from .lookups import filter_entities, listing, lookup_entities, multi_values
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
from .ratelimit import SlidingWindowLimiter
from .render_cache import SHARED
from .synthetic import ContactCentre, Shapes

JSON_TYPE = "application/json; charset=UTF-8"
FAULT_KINDS = ("429", "503", "504", "reset")
PROXY_PAGE = (
    b"<!DOCTYPE html><html><head><title>Service unavailable</title></head><body><h1>Please wait"
    b"</h1><p>The gateway could not reach the upstream service. Try again shortly.</p></body></html>"
)


@dataclasses.dataclass
class Response:
    status: int
    body: Any = None  # JSON-ready value, or None for an empty body
    headers: dict[str, str] = dataclasses.field(default_factory=dict)
    reset_connection: bool = False  # an injected fault: drop the TCP connection with a RST
    raw: bytes | None = None  # an injected fault: these bytes go out instead of the JSON of `body`

    def encoded(self) -> bytes:
        if self.raw is not None:
            return self.raw
        if self.body is None:
            return b""
        # orjson: compact UTF-8 like the real service, and fast enough that the emulator is not
        # what a benchmark of the pipeline measures.
        return orjson.dumps(self.body)


@dataclasses.dataclass
class Request:
    method: str
    path: str
    query: str
    headers: dict[str, str]  # lower-cased names
    body: bytes

    @property
    def params(self) -> dict[str, list[str]]:
        return parse_qs(self.query, keep_blank_values=False)

    def json(self) -> dict[str, Any]:
        if not self.body.strip():
            raise bad_request("The request body is required.")
        try:
            value = json.loads(self.body)
        except ValueError as error:
            raise bad_request(f"The request body is not valid JSON: {error}")
        if not isinstance(value, dict):
            raise bad_request("The request body must be a JSON object.")
        return value


class Stats:
    """Counters a test or benchmark reads to see what the emulator really served."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.counts: collections.Counter[str] = collections.Counter()

    def add(self, key: str, amount: int = 1) -> None:
        with self._lock:
            self.counts[key] += amount

    def snapshot(self) -> dict[str, int]:
        with self._lock:
            return dict(sorted(self.counts.items()))


Handler = Callable[[Request, re.Match[str]], Any]


class EmulatorApp:
    def __init__(self, config: EmulatorConfig) -> None:
        self.config = config
        self.clock = EmulatorClock(config.start_time(), config.clock_rate)
        shapes = Shapes(config.campaign_calls, config.agentless_calls, config.direct_user_calls,
                        config.digital_open_for_days)  # fmt: skip
        self.centre = ContactCentre(
            config.seed, config.daily_volume, config.site_timezone, shapes=shapes,
            newer_media_type=config.newer_media_type, unknown_fields=config.unknown_fields,
            render_cache=SHARED if config.render_cache else None,
        )  # fmt: skip
        self.tokens = TokenIssuer(config.client_id, config.client_secret, config.token_lifetime_seconds)
        self.limiter = SlidingWindowLimiter(config.rate_limit_per_minute)
        self.jobs = JobStore(config, self.centre, self.clock.now_ms)
        self.stats = Stats()
        self._fault_draws = random.Random(config.seed ^ 0xFA17)
        self._fault_lock = threading.Lock()
        self._bad_body_draws = random.Random(config.seed ^ 0xBAD)
        details = "/api/v2/analytics/conversations/details"
        self._api_routes: list[tuple[str, re.Pattern[str], Handler]] = [
            ("POST", re.compile(rf"{details}/query"), self._details_query),
            ("POST", re.compile(rf"{details}/jobs"), self._submit_job),
            ("GET", re.compile(rf"{details}/jobs/availability"), self._availability),
            ("GET", re.compile(rf"{details}/jobs/(?P<job>[^/]+)/results"), self._job_results),
            ("GET", re.compile(rf"{details}/jobs/(?P<job>[^/]+)"), self._job_status),
            ("DELETE", re.compile(rf"{details}/jobs/(?P<job>[^/]+)"), self._cancel_job),
            ("GET", re.compile(details), self._multi_get),
            ("GET", re.compile(r"/api/v2/analytics/conversations/(?P<id>[^/]+)/details"), self._single_get),
            ("GET", re.compile(r"/api/v2/routing/queues"), self._lookup("queues")),
            ("GET", re.compile(r"/api/v2/routing/queues/(?P<id>[^/]+)"), self._lookup_one("queues")),
            ("GET", re.compile(r"/api/v2/routing/wrapupcodes"), self._lookup("wrapup_codes")),
            ("GET", re.compile(r"/api/v2/routing/wrapupcodes/(?P<id>[^/]+)"), self._lookup_one("wrapup_codes")),
            ("GET", re.compile(r"/api/v2/users"), self._lookup("users")),
            ("GET", re.compile(r"/api/v2/users/(?P<id>[^/]+)"), self._lookup_one("users")),
            ("GET", re.compile(r"/api/v2/authorization/divisions"), self._lookup("divisions")),
            ("GET", re.compile(r"/api/v2/authorization/divisions/(?P<id>[^/]+)"), self._lookup_one("divisions")),
            ("GET", re.compile(r"/api/v2/flows/outcomes"), self._lookup("flow_outcomes")),
            ("GET", re.compile(r"/api/v2/flows/outcomes/(?P<id>[^/]+)"), self._lookup_one("flow_outcomes")),
            ("GET", re.compile(r"/api/v2/organizations/limits/namespaces/(?P<namespace>[^/]+)"), self._org_limits),
        ]  # fmt: skip

    # --- dispatch -------------------------------------------------------------------------------

    def handle(self, request: Request) -> Response:
        correlation_id = str(uuid.uuid4())
        if request.path == "/oauth/token":
            response = self._spoil(self._token(request), self.config.token_bad_body_rate)
        elif request.path.startswith("/emulator/"):
            response = self._admin(request)
        else:
            response = self._spoil(self._api(request, correlation_id), self.config.bad_body_rate)
        response.headers.setdefault("Content-Type", JSON_TYPE)
        response.headers["ININ-Correlation-Id"] = correlation_id
        if not response.reset_connection:
            self.stats.add(f"status.{response.status}")
        return response

    def _token(self, request: Request) -> Response:
        self.stats.add("requests.oauth_token")
        if request.method != "POST":
            return Response(405, {"error": "invalid_request", "description": "use POST",
                                  "error_description": "use POST"})  # fmt: skip
        try:
            return Response(200, self.tokens.issue(request.headers.get("authorization"), request.body, request.query))
        except OAuthError as error:
            return Response(error.status, error.body())

    def _api(self, request: Request, correlation_id: str) -> Response:
        rate_headers: dict[str, str] = {}
        try:
            token = self.tokens.authenticate(request.headers.get("authorization"))
            admitted, rate_headers = self.limiter.hit(token)
            if not admitted:
                self.stats.add("rate_limited")
                raise too_many_requests(int(rate_headers["Retry-After"]))
            fault = self._draw_fault()
            if fault == "reset":
                self.stats.add("faults.reset")
                return Response(0, reset_connection=True)
            if fault is not None:
                self.stats.add(f"faults.{fault}")
                raise _injected(fault, self.config.fault_retry_after_seconds)
            if len(request.body) > self.config.max_request_bytes:
                raise ApiError(413, "request.entity.too.large", "The request is over the maximum size.")
            handler, match = self._route(request)
            self.stats.add(f"requests.{handler.__name__.strip('_')}")
            result = handler(request, match)
            response = result if isinstance(result, Response) else Response(200, result)
        except ApiError as error:
            response = Response(error.status, error.body(correlation_id), dict(error.headers))
        response.headers.update({k: v for k, v in rate_headers.items() if k != "Retry-After" or response.status == 429})
        return response

    def _route(self, request: Request) -> tuple[Handler, re.Match[str]]:
        path_known = False
        for method, pattern, handler in self._api_routes:
            match = pattern.fullmatch(request.path)
            if match:
                path_known = True
                if method == request.method:
                    if method == "POST":
                        _require_json(request)
                    return handler, match
        if path_known:
            raise ApiError(405, "method.not.allowed", f"{request.method} is not allowed here.")
        raise not_found()

    def _draw_fault(self) -> str | None:
        if self.config.fault_rate <= 0:
            return None
        with self._fault_lock:
            if self._fault_draws.random() >= self.config.fault_rate:
                return None
            return self._fault_draws.choice(FAULT_KINDS)

    def _spoil(self, response: Response, rate: float) -> Response:
        """With probability `rate`, a 200 goes out with a broken body, as a proxy in front of the
        service may send it: the JSON cut off halfway, or an HTML page; still status 200."""
        if response.status != 200 or rate <= 0:
            return response
        with self._fault_lock:
            if self._bad_body_draws.random() >= rate:
                return response
            kind = self._bad_body_draws.choice(self.config.bad_body_kinds.split(","))
        self.stats.add(f"faults.bad_body_{kind}")
        if kind == "html":
            response.raw, response.headers["Content-Type"] = PROXY_PAGE, "text/html; charset=UTF-8"
        else:
            encoded = response.encoded()
            response.raw = encoded[: len(encoded) // 2]
        return response

    # --- conversation details ---------------------------------------------------------------------

    def _details_query(self, request: Request, _: re.Match[str]) -> dict[str, Any]:
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

    def _single_get(self, _: Request, match: re.Match[str]) -> orjson.Fragment:
        plan = self.centre.find_plan(match["id"])
        record = plan and self.centre.served(plan, self.clock.now_ms(), with_attributes=False)
        if not record:
            raise not_found()
        return record

    def _multi_get(self, request: Request, _: re.Match[str]) -> dict[str, Any]:
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

    # --- jobs -----------------------------------------------------------------------------------

    def _submit_job(self, request: Request, _: re.Match[str]) -> Response:
        job = self.jobs.submit(request.json())
        return Response(202, {"jobId": job.job_id})

    def _job_status(self, _: Request, match: re.Match[str]) -> dict[str, Any]:
        return self.jobs.status(match["job"])

    def _job_results(self, request: Request, match: re.Match[str]) -> dict[str, Any]:
        params = request.params
        cursor = (params.get("cursor") or [None])[0]
        page_size = (params.get("pageSize") or [None])[0]
        return self.jobs.results(match["job"], cursor, page_size)

    def _cancel_job(self, _: Request, match: re.Match[str]) -> Response:
        self.jobs.cancel(match["job"])
        return Response(204)

    def _availability(self, _: Request, __: re.Match[str]) -> dict[str, Any]:
        return {"dataAvailabilityDate": iso_ms(self.jobs.watermark_ms())}

    # --- lookups --------------------------------------------------------------------------------

    def _lookup(self, kind: str) -> Handler:
        def lookup_listing(request: Request, _: re.Match[str]) -> dict[str, Any]:
            entities = lookup_entities(self.centre, kind, self.config.list_default_wrapup_code)
            entities = filter_entities(kind, entities, request.params)
            return listing(request.path, entities, request.params, self.config.lookup_max_page_size,
                           omit_next_uri=self.config.lookup_omit_next_uri)

        lookup_listing.__name__ = f"list_{kind}"
        return lookup_listing

    def _lookup_one(self, kind: str) -> Handler:
        def lookup_entity(_: Request, match: re.Match[str]) -> dict[str, Any]:
            for entity in lookup_entities(self.centre, kind, self.config.list_default_wrapup_code):
                if entity["id"] == match["id"]:
                    return entity
            raise not_found()

        lookup_entity.__name__ = f"get_{kind}"
        return lookup_entity

    # --- organization limits ----------------------------------------------------------------------

    def _org_limits(self, _: Request, match: re.Match[str]) -> dict[str, Any]:
        """The org's effective limits of a namespace (`LimitsEntityListing`, genesys-api-more.md s5):
        this emulator's own configured limits under the key names public code uses. Only `analytics`
        is served; the real keys' namespaces are UNCONFIRMED. Documented as needing no permission."""
        if self.config.limits_forbidden:
            raise ApiError(403, "not.authorized", "You are not authorized to perform the requested action.")
        if match["namespace"] != "analytics":
            raise not_found()
        values = {
            "details.jobs.concurrent.access.max": self.config.max_concurrent_jobs,
            "client.credentials.token.rate.per.minute": self.config.rate_limit_per_minute,
            "token.rate.per.minute": self.config.rate_limit_per_minute,
            "request.bytes.max": self.config.max_request_bytes,
        }
        return {"entities": [{"key": key, "namespace": "analytics", "value": value} for key, value in values.items()]}

    # --- emulator-only admin endpoints (not part of the Genesys API) ------------------------------

    def _admin(self, request: Request) -> Response:
        try:
            if request.path == "/emulator/stats" and request.method == "GET":
                return Response(200, self.stats.snapshot())
            if request.path == "/emulator/clock":
                if request.method == "POST":
                    body = request.json()
                    if "now" in body:
                        self.clock.set(parse_iso(str(body["now"])))
                    else:
                        self.clock.advance(float(body.get("advanceSeconds", 0)))
                return Response(200, {"now": iso_ms(self.clock.now_ms())})
            if request.path == "/emulator/tokens/revoke" and request.method == "POST":
                return Response(200, {"revoked": self.tokens.revoke_all()})
            if request.path == "/emulator/truth/conversations" and request.method == "GET":
                return Response(200, self._truth(request))
        except ApiError as error:
            return Response(error.status, error.body("admin"))
        except ValueError as error:
            return Response(400, bad_request(str(error)).body("admin"))
        return Response(404, not_found().body("admin"))

    def _truth(self, request: Request) -> dict[str, Any]:
        """Ground truth: ids of conversations that started in [start, end) and exist now."""
        interval = Interval((request.params.get("interval") or [None])[0])
        now_ms = self.clock.now_ms()
        ids = [
            plan.conversation_id
            for day in interval.touched_utc_days()
            for plan in self.centre.day_plans(day)
            if interval.start_ms <= plan.start_ms < interval.end_ms and plan.start_ms <= now_ms
        ]
        return {"count": len(ids), "conversationIds": ids, "asOf": iso_ms(now_ms)}

    def conversations_started(self, day: date) -> list[str]:
        """In-process ground truth: ids of the conversations that started on a UTC day, by now."""
        now_ms = self.clock.now_ms()
        return [p.conversation_id for p in self.centre.day_plans(day) if p.start_ms <= now_ms]


def _require_json(request: Request) -> None:
    content_type = request.headers.get("content-type", "")
    if request.body and not content_type.lower().startswith("application/json"):
        raise ApiError(415, "unsupported.media.type", f"Unsupported Content-Type {content_type!r}; use application/json.")


def _injected(kind: str, retry_after: int) -> ApiError:
    if kind == "429":
        return too_many_requests(retry_after)
    if kind == "503":
        return ApiError(503, "service.unavailable", "The service is currently unavailable.")
    return ApiError(504, "request.timeout", "The request timed out.")

