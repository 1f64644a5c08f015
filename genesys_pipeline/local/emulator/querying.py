"""Interval rules, filters and ordering shared by the details query and the detail jobs.

Semantics follow genesys-api.md sections 2.1-2.3 and 3:
- the query matches conversations *started on a UTC day the interval touches* (daily indexes);
- jobs match conversations whose *lifetime overlaps* the interval, unless
  `startOfDayIntervalMatching` asks for the query's behaviour;
- filters select whole conversations; an `and` segment filter must hold on one segment;
- `totalHits` is approximate (Genesys blog 2022-04-21: it "reflects the approximate number"):
  `approximate_total_hits` moves it a few per cent off the true count, while the pages still hold
  every match, so a client must page to the data's end rather than trust the number.
"""

from __future__ import annotations

import collections
import hashlib
import json
import math
from datetime import date, datetime, timedelta
from typing import Any, Callable, Iterable, Iterator

from .clock import parse_iso, to_epoch_ms
from .errors import bad_request
from .ids import iso_ms
from .synthetic import ConversationPlan

DAY_MS = 86_400_000
# The synthetic centre bounds the lifetime of every conversation to 36 h (MAX_ORDINARY_LIFETIME_MS), but
# those open for days, to 21 days (MAX_LIFETIME_MS): a conversation overlapping a day started on that day
# or the two before it, or is one of the few long-lived ones of the 19 days before those.
LOOKBACK_DAYS_FOR_OVERLAP = 2
LOOKBACK_DAYS_FOR_LONG_LIVED = 21

FILTER_KEYS = (
    "conversationFilters",
    "segmentFilters",
    "evaluationFilters",
    "surveyFilters",
    "resolutionFilters",
)
ORDER_VALUES = ("asc", "desc", "unordered")
ORDER_BY_VALUES = ("conversationStart", "conversationEnd", "segmentStart", "segmentEnd")
# How far an approximate totalHits lies from the true count: between these shares, either way.
TOTAL_HITS_ERROR = (0.01, 0.03)

CONVERSATION_DIMENSIONS = {
    "accessAttribute", "conversationEnd", "conversationId", "conversationInitiator",
    "conversationStart", "customerParticipation", "divisionId", "externalTag",
    "mediaStatsMinConversationMos", "originatingDirection", "originatingSocialMediaPublic",
}  # fmt: skip
# Conversation dimensions a plan gives without building the record (see `decided_by_plan`).
PLAN_DIMENSIONS = frozenset({"conversationEnd", "conversationId", "conversationStart", "originatingDirection"})


class Interval:
    """A half-open ISO-8601 interval `start/end`, in epoch milliseconds."""

    def __init__(self, text: Any) -> None:
        if not isinstance(text, str) or text.count("/") != 1:
            raise bad_request(
                f"interval must be an ISO-8601 interval 'start/end', got {text!r}", "invalid.date"
            )
        start_text, end_text = text.split("/")
        try:
            self.start: datetime = parse_iso(start_text)
            self.end: datetime = parse_iso(end_text)
        except ValueError as error:
            raise bad_request(f"interval {text!r} is not valid ISO-8601: {error}", "invalid.date")
        if self.end <= self.start:
            raise bad_request(f"interval {text!r} ends before it starts", "invalid.date")
        self.start_ms = to_epoch_ms(self.start)
        self.end_ms = to_epoch_ms(self.end)

    @property
    def days(self) -> float:
        return (self.end_ms - self.start_ms) / DAY_MS

    def touched_utc_days(self) -> list[date]:
        first = self.start.date()
        last = (self.end - timedelta(milliseconds=1)).date()
        return [first + timedelta(days=n) for n in range((last - first).days + 1)]


def approximate_total_hits(exact: int, interval: Interval, body: dict[str, Any], seed: int) -> int:
    """`exact` moved 1-3 % up or down (rounded half up, so a small count may stay exact). The error
    is drawn from the seed, the interval and the filters only: every page of one query, past-the-end
    pages included, reports the same estimate, and asking again gives the same number."""
    if exact <= 0:
        return exact
    request = [seed, interval.start_ms, interval.end_ms, [body.get(key) for key in FILTER_KEYS]]
    digest = hashlib.sha256(json.dumps(request, sort_keys=True).encode()).digest()
    share = int.from_bytes(digest[:8], "big") / 2**64
    low, high = TOTAL_HITS_ERROR
    error = math.floor(exact * (low + (high - low) * share) + 0.5)
    return exact + error if digest[8] & 1 else max(exact - error, 0)


def has_filters(body: dict[str, Any]) -> bool:
    return any(body.get(key) for key in FILTER_KEYS)


def validate_order(body: dict[str, Any]) -> tuple[str, str]:
    order = body.get("order", "asc")
    order_by = body.get("orderBy", "conversationStart")
    if order not in ORDER_VALUES:
        raise bad_request(f"order must be one of {', '.join(ORDER_VALUES)}, got {order!r}", "invalid.value")
    if order_by not in ORDER_BY_VALUES:
        raise bad_request(
            f"orderBy must be one of {', '.join(ORDER_BY_VALUES)}, got {order_by!r}", "invalid.value"
        )
    return order, order_by


def day_matched_plans(
    plans_of_day: Callable[[date], list[ConversationPlan]], interval: Interval, as_of_ms: int
) -> Iterator[ConversationPlan]:
    """Conversations started on a UTC day the interval touches, that have started by `as_of_ms`."""
    for day in interval.touched_utc_days():
        for plan in plans_of_day(day):
            if plan.start_ms <= as_of_ms:
                yield plan


def overlapping_plans(
    plans_of_day: Callable[[date], list[ConversationPlan]],
    long_lived_of_day: Callable[[date], list[ConversationPlan]],
    interval: Interval,
    as_of_ms: int,
) -> Iterator[ConversationPlan]:
    """Conversations whose lifetime, as known at `as_of_ms`, overlaps the interval: every conversation
    of the interval's days and the two before, and the long-lived ones of the days before those."""
    first = interval.start.date() - timedelta(days=LOOKBACK_DAYS_FOR_OVERLAP)
    last = (interval.end - timedelta(milliseconds=1)).date()
    day = interval.start.date() - timedelta(days=LOOKBACK_DAYS_FOR_LONG_LIVED)
    while day <= last:
        for plan in (plans_of_day if day >= first else long_lived_of_day)(day):
            if plan.start_ms > as_of_ms or plan.start_ms >= interval.end_ms:
                continue
            known_end = min(plan.end_ms, as_of_ms)
            # An ongoing conversation is active at as_of_ms, so its lifetime so far ends there.
            if known_end > interval.start_ms or (plan.end_ms > as_of_ms and as_of_ms >= interval.start_ms):
                yield plan
        day += timedelta(days=1)


def sort_plans(plans: list[ConversationPlan], order: str, order_by: str, as_of_ms: int) -> None:
    if order == "unordered":
        return
    if order_by in ("conversationEnd", "segmentEnd"):
        # Ongoing conversations have no end yet; they sort after the ended ones.
        def key(plan: ConversationPlan) -> tuple[int, str]:
            end = plan.end_ms if plan.end_ms <= as_of_ms else 2**62
            return end, plan.conversation_id
    else:
        def key(plan: ConversationPlan) -> tuple[int, str]:
            return plan.start_ms, plan.conversation_id
    plans.sort(key=key, reverse=(order == "desc"))


# --- filters ---------------------------------------------------------------------------------


def decided_by_plan(body: dict[str, Any]) -> bool:
    """Whether the body's filters name only conversation dimensions a plan knows (PLAN_DIMENSIONS):
    then `record_matches(plan_fields(plan, as_of_ms), body)` is what it is on the rendered record, and
    a filtered query renders only the records it serves (the pipeline's "still open" query filters a
    whole day on conversationEnd, and rendering every record of the day cost more than the rest)."""
    if any(body.get(key) for key in FILTER_KEYS if key != "conversationFilters"):
        return False
    return all(
        "metric" not in predicate and predicate.get("dimension") in PLAN_DIMENSIONS
        for query_filter in body.get("conversationFilters") or []
        for predicate in _all_predicates(query_filter)
    )


def plan_fields(plan: ConversationPlan, as_of_ms: int) -> dict[str, Any]:
    """The PLAN_DIMENSIONS of the record at `as_of_ms`, as `records.materialize` shows them."""
    fields = {"conversationId": plan.conversation_id, "conversationStart": iso_ms(plan.start_ms),
              "originatingDirection": plan.originating_direction}  # fmt: skip
    if plan.end_ms <= as_of_ms:
        fields["conversationEnd"] = iso_ms(plan.end_ms)
    return fields


def record_matches(record: dict[str, Any], body: dict[str, Any]) -> bool:
    """All filter lists of the body hold for the record (top-level filters are ANDed)."""
    for key in FILTER_KEYS:
        for query_filter in body.get(key) or []:
            contexts = list(_contexts(key, record))
            if not any(_filter_holds(query_filter, ctx, key) for ctx in contexts):
                return False
    return True


def validate_filters(body: dict[str, Any]) -> None:
    for key in FILTER_KEYS:
        filters = body.get(key)
        if filters is None:
            continue
        if not isinstance(filters, list):
            raise bad_request(f"{key} must be a list of filters", "invalid.value")
        for index, query_filter in enumerate(filters):
            where = f"{key}[{index}]"
            if not isinstance(query_filter, dict) or query_filter.get("type") not in ("and", "or"):
                raise bad_request(f"{where}.type must be 'and' or 'or'", "invalid.value")
            for clause in query_filter.get("clauses") or []:
                if not isinstance(clause, dict) or clause.get("type") not in ("and", "or"):
                    raise bad_request(f"{where}.clauses[].type must be 'and' or 'or'", "invalid.value")
            for predicate in _all_predicates(query_filter):
                _validate_predicate(predicate, key, where)


def _all_predicates(query_filter: dict[str, Any]) -> Iterable[dict[str, Any]]:
    yield from query_filter.get("predicates") or []
    for clause in query_filter.get("clauses") or []:
        yield from clause.get("predicates") or []


def _validate_predicate(predicate: Any, key: str, where: str) -> None:
    if not isinstance(predicate, dict):
        raise bad_request(f"{where}: a predicate must be an object", "invalid.value")
    if not any(name in predicate for name in ("dimension", "metric", "property")):
        raise bad_request(f"{where}: a predicate needs a dimension, metric or property", "invalid.value")
    # The v269 enums: no `notMatches` and no negation, so a filter can never exclude a value.
    if predicate.get("type", "dimension") not in ("dimension", "property", "metric"):
        raise bad_request(f"{where}: unknown predicate type {predicate['type']!r}", "invalid.value")
    operator = predicate.get("operator", "matches")
    if operator not in ("matches", "exists", "notExists"):
        raise bad_request(f"{where}: unknown operator {operator!r}", "invalid.value")
    if key == "conversationFilters" and "dimension" in predicate:
        if predicate["dimension"] not in CONVERSATION_DIMENSIONS:
            raise bad_request(
                f"{where}: {predicate['dimension']!r} is not a conversation dimension", "invalid.value"
            )
    if operator == "matches" and "value" not in predicate and "range" not in predicate:
        raise bad_request(f"{where}: operator 'matches' needs a value or a range", "invalid.value")


def _contexts(key: str, record: dict[str, Any]) -> Iterator[collections.abc.Mapping[str, Any]]:
    if key == "conversationFilters":
        yield record
    elif key == "segmentFilters":
        for participant in record.get("participants", []):
            for session in participant.get("sessions", []):
                for segment in session.get("segments", []):
                    yield collections.ChainMap(segment, session, session.get("flow", {}), participant)
    else:
        kind = {"evaluationFilters": "evaluations", "surveyFilters": "surveys",
                "resolutionFilters": "resolutions"}[key]  # fmt: skip
        yield from record.get(kind, [])


def _filter_holds(query_filter: dict[str, Any], ctx: Any, key: str) -> bool:
    outcomes = [_predicate_holds(p, ctx, key) for p in query_filter.get("predicates") or []]
    for clause in query_filter.get("clauses") or []:
        clause_outcomes = [_predicate_holds(p, ctx, key) for p in clause.get("predicates") or []]
        combine = all if clause["type"] == "and" else any
        outcomes.append(combine(clause_outcomes))
    combine = all if query_filter["type"] == "and" else any
    return combine(outcomes) if outcomes else True


def _predicate_holds(predicate: dict[str, Any], ctx: Any, key: str) -> bool:
    operator = predicate.get("operator", "matches")
    if "metric" in predicate:
        values = _metric_values(predicate["metric"], ctx, key)
        present = bool(values)
        if operator == "exists":
            return present
        if operator == "notExists":
            return not present
        return any(_in_range(value, predicate) for value in values)
    name = predicate.get("dimension") or predicate.get("property")
    value = _dimension_value(name, ctx)
    if operator == "exists":
        return value is not None
    if operator == "notExists":
        return value is None
    if value is None:
        return False
    if "range" in predicate and "value" not in predicate:
        return isinstance(value, (int, float)) and _in_range(value, predicate)
    wanted = str(predicate.get("value"))
    candidates = value if isinstance(value, list) else [value]
    return any(_as_text(candidate) == wanted for candidate in candidates)


def _dimension_value(name: str, ctx: Any) -> Any:
    if name == "divisionId":
        return ctx.get("divisionIds")
    if name == "accessAttribute":
        return ctx.get("accessAttributes")
    return ctx.get(name)


def _metric_values(name: str, ctx: Any, key: str) -> list[int | float]:
    if key == "conversationFilters":
        return [
            metric["value"]
            for participant in ctx.get("participants", [])
            for session in participant.get("sessions", [])
            for metric in session.get("metrics", [])
            if metric["name"] == name
        ]
    if key == "segmentFilters" and name == "tSegmentDuration":
        if "segmentEnd" not in ctx:
            return []
        return [to_epoch_ms(parse_iso(ctx["segmentEnd"])) - to_epoch_ms(parse_iso(ctx["segmentStart"]))]
    value = ctx.get(name)
    return [value] if isinstance(value, (int, float)) else []


def _in_range(value: int | float, predicate: dict[str, Any]) -> bool:
    bounds = predicate.get("range") or {}
    checks = (("gt", value.__gt__), ("gte", value.__ge__), ("lt", value.__lt__), ("lte", value.__le__))
    return all(test(bounds[name]) for name, test in checks if name in bounds)


def _as_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)
