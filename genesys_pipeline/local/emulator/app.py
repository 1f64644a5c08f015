"""Request handling, independent of the HTTP plumbing: a request in, a `Response` out.

Every `/api/v2` request goes through the same gate, in the real service's order as far as a client
can tell: bearer check (401), per-token rate limit (429 with Retry-After), injected faults, size and
content-type checks, then the endpoint. Every response carries `ININ-Correlation-Id`; API responses
also carry the `inin-ratelimit-*` headers.

This module holds the gate and the routing table; the endpoints' handlers sit by API family in
details_endpoints.py, job_endpoints.py and lookup_endpoints.py, the emulator's own endpoints in
admin.py, the injected faults in faults.py.
"""

from __future__ import annotations

import re
import uuid
from datetime import date

from .admin import AdminEndpoints
from .auth import TokenIssuer
from .clock import EmulatorClock
from .config import EmulatorConfig
from .details_endpoints import DetailsEndpoints
from .errors import ApiError, OAuthError, not_found, too_many_requests
from .faults import FaultInjector, injected_error
from .job_endpoints import JobEndpoints
from .jobs import JobStore
from .lookup_endpoints import LookupEndpoints
from .messages import JSON_TYPE, Handler, Request, Response
from .ratelimit import SlidingWindowLimiter
from .render_cache import SHARED
from .stats import Stats
from .synthetic import ContactCentre, Shapes


class EmulatorApp:
    """The emulated service: its clock, contact centre, tokens, rate limit, jobs and counters, and
    `handle`, which answers one request."""

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
        self.faults = FaultInjector(config, self.stats)
        self.admin = AdminEndpoints(self.clock, self.tokens, self.stats, self.centre)
        details_api = DetailsEndpoints(config, self.clock, self.centre)
        jobs_api = JobEndpoints(self.jobs)
        lookups_api = LookupEndpoints(config, self.centre)
        details = "/api/v2/analytics/conversations/details"
        # Tried in order: the first route whose path matches with the request's method answers.
        self._api_routes: list[tuple[str, re.Pattern[str], Handler]] = [
            ("POST", re.compile(rf"{details}/query"), details_api.details_query),
            ("POST", re.compile(rf"{details}/jobs"), jobs_api.submit_job),
            ("GET", re.compile(rf"{details}/jobs/availability"), jobs_api.availability),
            ("GET", re.compile(rf"{details}/jobs/(?P<job>[^/]+)/results"), jobs_api.job_results),
            ("GET", re.compile(rf"{details}/jobs/(?P<job>[^/]+)"), jobs_api.job_status),
            ("DELETE", re.compile(rf"{details}/jobs/(?P<job>[^/]+)"), jobs_api.cancel_job),
            ("GET", re.compile(details), details_api.multi_get),
            ("GET", re.compile(r"/api/v2/analytics/conversations/(?P<id>[^/]+)/details"), details_api.single_get),
            ("GET", re.compile(r"/api/v2/routing/queues"), lookups_api.lookup("queues")),
            ("GET", re.compile(r"/api/v2/routing/queues/(?P<id>[^/]+)"), lookups_api.lookup_one("queues")),
            ("GET", re.compile(r"/api/v2/routing/wrapupcodes"), lookups_api.lookup("wrapup_codes")),
            ("GET", re.compile(r"/api/v2/routing/wrapupcodes/(?P<id>[^/]+)"), lookups_api.lookup_one("wrapup_codes")),
            ("GET", re.compile(r"/api/v2/users"), lookups_api.lookup("users")),
            ("GET", re.compile(r"/api/v2/users/(?P<id>[^/]+)"), lookups_api.lookup_one("users")),
            ("GET", re.compile(r"/api/v2/authorization/divisions"), lookups_api.lookup("divisions")),
            ("GET", re.compile(r"/api/v2/authorization/divisions/(?P<id>[^/]+)"), lookups_api.lookup_one("divisions")),
            ("GET", re.compile(r"/api/v2/flows/outcomes"), lookups_api.lookup("flow_outcomes")),
            ("GET", re.compile(r"/api/v2/flows/outcomes/(?P<id>[^/]+)"), lookups_api.lookup_one("flow_outcomes")),
            ("GET", re.compile(r"/api/v2/organizations/limits/namespaces/(?P<namespace>[^/]+)"), lookups_api.org_limits),
        ]  # fmt: skip

    # --- dispatch -------------------------------------------------------------------------------

    def handle(self, request: Request) -> Response:
        correlation_id = str(uuid.uuid4())
        if request.path == "/oauth/token":
            response = self.faults.spoil(self._token(request), self.config.token_bad_body_rate)
        elif request.path.startswith("/emulator/"):
            response = self.admin.handle(request)
        else:
            response = self.faults.spoil(self._api(request, correlation_id), self.config.bad_body_rate)
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
            fault = self.faults.draw_fault()
            if fault == "reset":
                self.stats.add("faults.reset")
                return Response(0, reset_connection=True)
            if fault is not None:
                self.stats.add(f"faults.{fault}")
                raise injected_error(fault, self.config.fault_retry_after_seconds)
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

    def conversations_started(self, day: date) -> list[str]:
        """In-process ground truth: ids of the conversations that started on a UTC day, by now."""
        now_ms = self.clock.now_ms()
        return [p.conversation_id for p in self.centre.day_plans(day) if p.start_ms <= now_ms]


def _require_json(request: Request) -> None:
    content_type = request.headers.get("content-type", "")
    if request.body and not content_type.lower().startswith("application/json"):
        raise ApiError(415, "unsupported.media.type", f"Unsupported Content-Type {content_type!r}; use application/json.")
