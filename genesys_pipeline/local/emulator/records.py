"""A fully expanded conversation, and its JSON as the real API returns it at a given instant.

`builder.py` fills these classes with absolute epoch-ms times; `materialize(conversation, as_of)`
then shows only what exists at `as_of` (genesys-api.md s5.10, s5.7):
- participants and sessions appear once their first segment has started;
- a segment that started has no `segmentEnd`, `disconnectType` or wrap-up code while still open;
- a metric appears once its emitDate has passed; `conversationEnd` and `selfServed` once it ended;
- evaluations, surveys, resolutions and late wrap-up codes appear at their (later) event time, and an
  evaluation changes as it is completed (each version from its own time on).
Keys come out in the real API's order, which is the v269 SDK models' order: scalars alphabetical, then
nested objects and arrays (and an evaluation's or survey's o* scores last). Nulls are never emitted.
"""

from __future__ import annotations

import dataclasses
import operator
from typing import Any

from .ids import iso_ms

Restated = list[tuple[int, dict[str, Any]]]  # versions of one item: (shown from epoch ms, its JSON), in time order


@dataclasses.dataclass(slots=True)
class Segment:
    start: int
    end: int
    type: str
    queue_id: str | None = None
    _: dataclasses.KW_ONLY
    disconnect: str | None = None  # shown once the segment has ended
    q850: bool = False  # the segment ends the call: q850ResponseCodes [16] (normal clearing)
    subject: str | None = None
    # (from epoch ms, wrapUpCode, wrapUpNote): the latest entry at or before as_of applies, so a late
    # or changed wrap-up code is a second entry days after the segment ended.
    wrapups: tuple[tuple[int, str | None, str | None], ...] = ()


@dataclasses.dataclass(slots=True)
class MediaStat:
    at: int
    codec: str
    max_latency_ms: int
    min_mos: float
    min_r_factor: float
    received_packets: int  # every packet received, the invalid, duplicate and discarded ones included
    discarded_packets: int = 0  # too late or too early; includes the overruns and underruns
    duplicate_packets: int = 0
    invalid_packets: int = 0
    overrun_packets: int = 0
    underrun_packets: int = 0

    def to_json(self) -> dict[str, Any]:
        """AnalyticsMediaEndpointStat, in the model's (alphabetical) order."""
        return {
            "codecs": [self.codec], "discardedPackets": self.discarded_packets,
            "duplicatePackets": self.duplicate_packets, "eventTime": iso_ms(self.at),
            "invalidPackets": self.invalid_packets, "maxLatencyMs": self.max_latency_ms, "minMos": self.min_mos,
            "minRFactor": self.min_r_factor, "overrunPackets": self.overrun_packets,
            "receivedPackets": self.received_packets, "underrunPackets": self.underrun_packets,
        }  # fmt: skip


@dataclasses.dataclass(slots=True)
class Session:
    scalars: dict[str, Any]  # already in the API's (alphabetical) order
    segments: list[Segment]
    metrics: list[tuple[int, str, int]]  # (emit epoch ms, name, value)
    stats: list[MediaStat] = dataclasses.field(default_factory=list)
    flow: dict[str, Any] | None = None  # AnalyticsFlow while the flow runs
    flow_exited: tuple[int, dict[str, Any]] | None = None  # (exit time, AnalyticsFlow once exited)


@dataclasses.dataclass(slots=True)
class Participant:
    head: dict[str, Any]  # participantId, participantName, purpose, userId... in the API's order
    sessions: list[Session]
    attributes: dict[str, str] | None = None


@dataclasses.dataclass(slots=True)
class Conversation:
    conversation_id: str
    start: int
    end: int
    direction: str
    self_served: bool
    initiator: str | None  # messaging: who started it (then customerParticipation is true)
    # (from epoch ms, division id): a queue's division is listed once the conversation reaches the queue
    divisions: list[tuple[int, str]]
    home_division_id: str  # what divisionIds says before any queue is reached
    participants: list[Participant]
    # Each item as its versions over time [(shown from epoch ms, JSON)]: the latest shown at as_of applies.
    evaluations: list[Restated] = dataclasses.field(default_factory=list)
    surveys: list[Restated] = dataclasses.field(default_factory=list)
    resolutions: list[Restated] = dataclasses.field(default_factory=list)


_EMISSION_ORDER = operator.itemgetter(0, 1)  # (emit epoch ms, name): ties keep their drawing order


def make_session(scalars: dict[str, Any], segments: list[Segment], metrics: list[tuple[int, str, int]],
                 **extra: Any) -> Session:
    """A session with its scalars in the API's (alphabetical) order and its metrics in emission order."""
    metrics.sort(key=_EMISSION_ORDER)
    return Session(dict(sorted(scalars.items())), segments, metrics, **extra)


def materialize(conversation: Conversation, as_of: int) -> dict[str, Any]:
    """The conversation-detail record as the API shows it at `as_of` (which is >= its start)."""
    ended = conversation.end <= as_of
    stats: list[MediaStat] = []
    participants = [p for p in (_participant(p, as_of, stats) for p in conversation.participants) if p]
    record: dict[str, Any] = {}
    if ended:
        record["conversationEnd"] = iso_ms(conversation.end)
    record["conversationId"] = conversation.conversation_id
    if conversation.initiator:
        record["conversationInitiator"] = conversation.initiator
    record["conversationStart"] = iso_ms(conversation.start)
    if conversation.initiator:
        record["customerParticipation"] = True
    divisions = list(dict.fromkeys(d for at, d in conversation.divisions if at <= as_of))
    record["divisionIds"] = divisions or [conversation.home_division_id]
    if stats:
        record["mediaStatsMinConversationMos"] = min(s.min_mos for s in stats)
        record["mediaStatsMinConversationRFactor"] = min(s.min_r_factor for s in stats)
    record["originatingDirection"] = conversation.direction
    if ended and conversation.self_served:
        record["selfServed"] = True
    for key in ("evaluations", "surveys", "resolutions"):
        shown = [item for item in (_latest(versions, as_of) for versions in getattr(conversation, key)) if item]
        if shown:
            record[key] = shown
    record["participants"] = participants
    return record


def _latest(versions: Restated, as_of: int) -> dict[str, Any] | None:
    shown = [item for at, item in versions if at <= as_of]
    return shown[-1] if shown else None


def _participant(participant: Participant, as_of: int, stats: list[MediaStat]) -> dict[str, Any] | None:
    sessions = [s for s in (_session(s, as_of, stats) for s in participant.sessions) if s]
    if not sessions:
        return None
    out = dict(participant.head)
    out["sessions"] = sessions
    if participant.attributes is not None:
        out["attributes"] = participant.attributes
    return out


def _session(session: Session, as_of: int, stats: list[MediaStat]) -> dict[str, Any] | None:
    if session.segments[0].start > as_of:
        return None
    out = dict(session.scalars)
    visible_stats = [s for s in session.stats if s.at <= as_of]
    if visible_stats:
        stats += visible_stats
        out["mediaEndpointStats"] = [stat.to_json() for stat in visible_stats]
    if session.flow_exited is not None and session.flow_exited[0] <= as_of:
        out["flow"] = session.flow_exited[1]
    elif session.flow is not None:
        out["flow"] = session.flow
    metrics = [
        {"emitDate": iso_ms(at), "name": name, "value": value}
        for at, name, value in session.metrics
        if at <= as_of
    ]
    if metrics:
        out["metrics"] = metrics
    out["segments"] = [_segment(s, as_of) for s in session.segments if s.start <= as_of]
    return out


def _segment(segment: Segment, as_of: int) -> dict[str, Any]:
    closed = segment.end <= as_of
    out: dict[str, Any] = {"conference": False}
    if closed and segment.disconnect:
        out["disconnectType"] = segment.disconnect
    if closed and segment.q850:
        out["q850ResponseCodes"] = [16]
    if segment.queue_id:
        out["queueId"] = segment.queue_id
    if closed:
        out["segmentEnd"] = iso_ms(segment.end)
    out["segmentStart"] = iso_ms(segment.start)
    out["segmentType"] = segment.type
    if segment.subject:
        out["subject"] = segment.subject
    if closed and segment.wrapups:
        code, note = next((c, n) for at, c, n in reversed(segment.wrapups) if at <= as_of)
        if code:
            out["wrapUpCode"] = code
        if note:
            out["wrapUpNote"] = note
    return out
