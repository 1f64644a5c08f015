"""The emulator's deterministic synthetic contact centre: the data the emulated API serves.

`ContactCentre(seed, daily_volume)` is a pure function of its arguments:
- `day_plans(day)`: the `daily_volume` conversations starting on that UTC day, as compact plans;
- `find_plan(conversation_id)`: the plan behind an id, decoded from the id itself (see ids.py);
- `render(plan, as_of_ms, with_attributes=...)`: the conversation-detail record at an instant, ongoing
  or complete, later restated by evaluations, surveys and late wrap-up codes;
- `served(plan, as_of_ms, ...)`: that record as a response carries it (its JSON), through the
  process's render cache (render_cache.py) when the centre has one;
- `divisions`, `queues`, `wrapup_codes`, `users`, `flow_outcomes`: the lookup entities (directory.py).

How a conversation is made: a per-conversation seed gives its start time (a diurnal curve in the
site's local time) and a timeline (scenarios.py: scenario, key instants, restatement times), cheap
enough to plan 100,000 conversations in about two seconds. `render` redraws the same timeline and
fleshes it out (builder.py), then shows what exists at `as_of_ms` (records.py).

Bounds the server relies on: a conversation lasts at most `MAX_ORDINARY_LIFETIME_MS` (36 h), except
the email and message conversations that stay open for days (shapes.py), which last at most
`MAX_LIFETIME_MS` (21 days) and are found without planning their whole day (`long_lived_plans`); a
record never changes after `last_change_ms` (<= end + 10 days: a first-contact resolution is reported
a week after the end, an evaluation may be rescored days after it was finished).
"""

from __future__ import annotations

import bisect
import collections
import dataclasses
import functools
import itertools
import random
import threading
from datetime import date, datetime, timezone
from typing import Any
from zoneinfo import ZoneInfo

import orjson

from .builder import WRAP_UP_TIMEOUT, build_conversation
from .directory import Directory
from .ids import MAX_DAILY_VOLUME, ConversationIdCodec, day_number, derive_key, mix64
from .probes import add_unknown_fields
from .records import materialize
from .render_cache import FINAL, RenderCache
from .restatements import second_stream
from .scenarios import MAX_LIFETIME_MS, MAX_ORDINARY_LIFETIME_MS, draws_digital
from .shapes import LINGER_STRIDE, Shapes, draw_timeline

__all__ = ["MAX_LIFETIME_MS", "MAX_ORDINARY_LIFETIME_MS", "WRAP_UP_TIMEOUT", "ContactCentre", "ConversationPlan",
           "Shapes"]  # fmt: skip

DAY_MS = 86_400_000
_BIN_MS = 15 * 60_000  # start times are drawn per quarter hour of the UTC day, then uniformly within it
# Relative contact volume by local hour: busy 8-18, quiet (never zero) at night.
_HOURLY_VOLUME = (
    0.15, 0.10, 0.08, 0.07, 0.08, 0.15, 0.35, 0.70, 1.00, 1.25, 1.35, 1.30,
    1.15, 1.20, 1.30, 1.25, 1.10, 0.95, 0.70, 0.50, 0.40, 0.32, 0.25, 0.20,
)  # fmt: skip
_START_SALT = 0x57A2_7000_0000_0001
_CACHED_DAYS = 16
_CACHED_LONG_LIVED_DAYS = 64  # a detail job looks up to 21 days back; these lists are small


@dataclasses.dataclass(frozen=True, slots=True)
class ConversationPlan:
    conversation_id: str  # UUID string
    start_ms: int  # conversationStart, epoch milliseconds UTC
    end_ms: int  # conversationEnd: when the last participant's last segment (incl. wrap-up) ends
    last_change_ms: int  # the last later restatement (>= end_ms); the record never changes after it
    media_type: str  # voice, callback, chat, email, message
    originating_direction: str  # inbound | outbound
    seed: int  # per-conversation seed used to expand the full record
    shape: str = ""  # shapes.py: "" (the base mix), campaign, agentless or direct
    may_linger: bool = False  # if an email or message, it stays open for days (shapes.py)


class ContactCentre:
    def __init__(
        self,
        seed: int,
        daily_volume: int,
        site_timezone: str = "America/Chicago",
        *,
        shapes: Shapes = Shapes(),
        newer_media_type: str = "",
        unknown_fields: bool = False,
        render_cache: RenderCache | None = None,
    ) -> None:
        if not 0 <= daily_volume <= MAX_DAILY_VOLUME:
            raise ValueError(f"daily_volume must be within [0, {MAX_DAILY_VOLUME}], got {daily_volume}")
        self.daily_volume = daily_volume
        self.site_timezone = site_timezone
        self.shapes = shapes
        # A media type Genesys added after SDK v269 (not a real one: an option for tests), on every
        # session of one conversation in 20 (by id), in every response, as a new channel would be.
        self.newer_media_type = newer_media_type
        self.unknown_fields = unknown_fields  # made-up fields at every level (probes.py), for drift tests
        self._render_cache = render_cache
        # What a record depends on besides its plan: the directory (from the seed) and the two options.
        self._render_identity = (seed, newer_media_type, unknown_fields)
        ZoneInfo(site_timezone)  # fail now on an unknown zone, not on the first request
        self._directory = Directory(seed)
        # Full API entities, sorted by name. Shared: callers must not mutate them.
        self.divisions: list[dict[str, Any]] = self._directory.divisions
        self.queues: list[dict[str, Any]] = self._directory.queues
        self.wrapup_codes: list[dict[str, Any]] = self._directory.wrapup_codes
        self.users: list[dict[str, Any]] = self._directory.users
        self.flow_outcomes: list[dict[str, Any]] = self._directory.flow_outcomes
        self._codec = ConversationIdCodec(seed)
        self._plan_key = derive_key(seed, "plans")
        self._lock = threading.Lock()  # guards the LRU; held while a day is computed, so it is computed once
        self._days: collections.OrderedDict[date, list[ConversationPlan]] = collections.OrderedDict()
        self._long_lived: collections.OrderedDict[date, list[ConversationPlan]] = collections.OrderedDict()

    def day_plans(self, day: date) -> list[ConversationPlan]:
        """The conversations starting on UTC `day`, sorted by (start_ms, conversation_id)."""
        return self._cached(self._days, _CACHED_DAYS, day, range(self.daily_volume), 0)

    def long_lived_plans(self, day: date) -> list[ConversationPlan]:
        """The conversations starting on UTC `day` that last longer than `MAX_ORDINARY_LIFETIME_MS`
        (the email and message conversations open for days), without planning the whole day: only
        the indices that may linger are planned."""
        if not self.shapes.digital_open_for_days:
            return []
        number = day_number(day)
        candidates = [
            index for index in range(LINGER_STRIDE - 1, self.daily_volume, LINGER_STRIDE)
            if not self.shapes.pick(seed := self._seed(number, index)) and draws_digital(seed)
        ]  # fmt: skip
        return self._cached(self._long_lived, _CACHED_LONG_LIVED_DAYS, day, candidates, MAX_ORDINARY_LIFETIME_MS)

    def _cached(
        self,
        cache: collections.OrderedDict[date, list[ConversationPlan]],
        size: int,
        day: date,
        indices: range | list[int],
        longer_than_ms: int,
    ) -> list[ConversationPlan]:
        """The plans of `indices` of `day` lasting longer than `longer_than_ms`, sorted, through an LRU."""
        with self._lock:
            plans = cache.get(day)
            if plans is None:
                number = day_number(day)
                curve = _day_curve(self.site_timezone, number)
                planned = (self._plan(number, index, curve) for index in indices)
                plans = [p for p in planned if p.end_ms - p.start_ms > longer_than_ms]
                plans.sort(key=lambda plan: (plan.start_ms, plan.conversation_id))
                cache[day] = plans
                if len(cache) > size:
                    cache.popitem(last=False)
            else:
                cache.move_to_end(day)
        return list(plans)  # a copy: callers sort and filter it

    def find_plan(self, conversation_id: str) -> ConversationPlan | None:
        """The plan of a conversation of this centre, or None for any other id. O(1), no scan."""
        decoded = self._codec.decode(conversation_id)
        if decoded is None or decoded[1] >= self.daily_volume:
            return None
        number, index = decoded
        return self._plan(number, index, _day_curve(self.site_timezone, number))

    def render(
        self, plan: ConversationPlan, as_of_ms: int, *, with_attributes: bool
    ) -> dict[str, Any] | None:
        """The conversation-detail record as the API returns it at `as_of_ms`; None before it starts.

        `with_attributes` adds participant attributes, as job results (AnalyticsConversation) have and
        the query and single get (AnalyticsConversationWithoutAttributes) do not.
        """
        if plan.start_ms > as_of_ms:
            return None
        conversation = build_conversation(
            self._directory, plan.conversation_id, plan.seed, plan.start_ms, with_attributes=with_attributes,
            shape=plan.shape, may_linger=plan.may_linger,
        )  # fmt: skip
        record = materialize(conversation, as_of_ms)
        if self.newer_media_type and int(plan.conversation_id[-4:], 16) % 20 == 0:
            for participant in record["participants"]:
                for session in participant["sessions"]:
                    session["mediaType"] = self.newer_media_type
        if self.unknown_fields:
            add_unknown_fields(record)
        return record

    def served(self, plan: ConversationPlan, as_of_ms: int, *, with_attributes: bool) -> orjson.Fragment | None:
        """`render`'s record as it goes out in a response body (its JSON); None before it starts."""
        encoded = self.render_json(plan, as_of_ms, with_attributes=with_attributes)
        return None if encoded is None else orjson.Fragment(encoded)

    def record_as_served(self, plan: ConversationPlan, as_of_ms: int, *, with_attributes: bool) -> dict[str, Any] | None:
        """`render`'s record as a client reads it (the served JSON, parsed: a tenth of rendering's
        cost once cached), for a filter to decide on; None before it starts."""
        encoded = self.render_json(plan, as_of_ms, with_attributes=with_attributes)
        return None if encoded is None else orjson.loads(encoded)

    def render_json(self, plan: ConversationPlan, as_of_ms: int, *, with_attributes: bool) -> bytes | None:
        """`render`'s record as the bytes orjson makes of it, through the render cache when there is
        one; None before it starts."""
        if plan.start_ms > as_of_ms:
            return None
        if self._render_cache is None or "render" in vars(self):
            # No cache, or this centre's `render` was replaced (a test serving a broken record): the
            # cache holds only what ContactCentre.render makes.
            return orjson.dumps(self.render(plan, as_of_ms, with_attributes=with_attributes))
        shown_at = FINAL if as_of_ms >= plan.last_change_ms else as_of_ms  # the record is final from then on
        key = (self._render_identity, plan, with_attributes, shown_at)
        encoded = self._render_cache.get(key)
        if encoded is None:
            encoded = orjson.dumps(self.render(plan, as_of_ms, with_attributes=with_attributes))
            self._render_cache.put(key, encoded)
        return encoded

    def _seed(self, number: int, index: int) -> int:
        return mix64(self._plan_key ^ (number * (MAX_DAILY_VOLUME + 1) + index))  # distinct per (day, index)

    def _plan(self, number: int, index: int, curve: _DayCurve) -> ConversationPlan:
        seed = self._seed(number, index)
        start = curve.start_ms(mix64(seed ^ _START_SALT))
        shape, may_linger = self.shapes.pick(seed), self.shapes.may_linger(index)
        timeline = draw_timeline(random.Random(seed), second_stream(seed), self._directory, start, shape, may_linger)
        return ConversationPlan(
            self._codec.encode(number, index), start, timeline.end, timeline.last_change,
            timeline.media, timeline.direction, seed, shape, may_linger,
        )  # fmt: skip


@dataclasses.dataclass(frozen=True, slots=True)
class _DayCurve:
    """The diurnal volume curve over one UTC day, as cumulative weights of its quarter hours."""

    day_start_ms: int
    cumulative: tuple[float, ...]

    def start_ms(self, bits: int) -> int:
        """An instant from 64 random bits: the high half picks the quarter hour, the low half the instant."""
        quarter = bisect.bisect_right(self.cumulative, (bits >> 32) / 2**32 * self.cumulative[-1])
        return self.day_start_ms + quarter * _BIN_MS + ((bits & 0xFFFF_FFFF) * _BIN_MS >> 32)


@functools.lru_cache(maxsize=64)
def _day_curve(site_timezone: str, number: int) -> _DayCurve:
    zone, day_start_ms = ZoneInfo(site_timezone), number * DAY_MS
    local_hours = (
        datetime.fromtimestamp((day_start_ms + quarter * _BIN_MS) / 1000, timezone.utc).astimezone(zone).hour
        for quarter in range(DAY_MS // _BIN_MS)
    )
    weights = (_HOURLY_VOLUME[hour] for hour in local_hours)
    return _DayCurve(day_start_ms, tuple(itertools.accumulate(weights)))
