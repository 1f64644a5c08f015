"""The emulator's own endpoints under `/emulator/` (not part of the Genesys API): its counters, its
clock (read, set, advance), revoking every token, and the ground truth a test compares an
extraction with.

Apart from the API's endpoints because they pass none of the API's gate (no token, no rate limit,
no injected fault) and answer errors in a simpler way.
"""

from __future__ import annotations

from typing import Any

from .auth import TokenIssuer
from .clock import EmulatorClock, iso_ms, parse_iso
from .errors import ApiError, bad_request, not_found
from .messages import Request, Response
from .querying import Interval
from .stats import Stats
from .synthetic import ContactCentre


class AdminEndpoints:
    """Answers every `/emulator/...` request."""

    def __init__(self, clock: EmulatorClock, tokens: TokenIssuer, stats: Stats, centre: ContactCentre) -> None:
        self.clock = clock
        self.tokens = tokens
        self.stats = stats
        self.centre = centre

    def handle(self, request: Request) -> Response:
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
