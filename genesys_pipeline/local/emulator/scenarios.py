"""The timeline of one synthetic conversation: who joins when, and when each part ends.

`shapes.draw_timeline` (which calls `draw_standard`, or a shape's maker, then `finish`) is the cheap
first half of generating a conversation. It draws, from the per-conversation random stream, the
scenario (media type, abandon, RONA, transfer, consult...) and every instant that decides when the
conversation ends or is restated later. `ContactCentre.day_plans` calls it for every conversation of a day (so it must stay small), and `render` calls it again with the
same seed, then keeps drawing from the same stream to flesh out the record (`builder.py`); anything
drawn there (holds, names, notes) stays within the spans fixed here.

Mix: voice inbound 55% (10% of them self-served in the IVR, 8% abandoned in queue, the rest answered,
some with RONA, a blind transfer to a second queue or a consult), voice outbound 10%, callback 5%,
chat 10%, message 10%, email 10% (long-lived). Restatements: an evaluation, a survey or a late
wrap-up code, hours to days after the end (restatements.py adds an evaluation's later versions and
the first-contact resolution, a week after the end). `shapes.py` replaces some of these with campaign, agentless
and direct-to-user calls, and keeps some email and message conversations open for days.
"""

from __future__ import annotations

import dataclasses
import math
import random

from .directory import Directory

HOUR_MS = 3_600_000
DAY_MS = 24 * HOUR_MS
# Every conversation but those `shapes.linger` keeps open ends within this; querying.py relies on it to
# look only two days back for the conversations a detail job's interval overlaps.
MAX_ORDINARY_LIFETIME_MS = 36 * HOUR_MS
# The email and message conversations that stay open for days end within this (up to ~20 days).
MAX_LIFETIME_MS = 21 * DAY_MS


@dataclasses.dataclass(slots=True)
class AgentTurn:
    """One agent's part: alerted (or dialling), answered or not, talking, wrapping up."""

    queue: int  # index into Directory.queue_specs
    alert: int  # alert starts (for a dialled call: dialing starts)
    answer: int  # alert ends: answered here, or given up (RONA)
    talk_end: int  # interact ends (== answer after a RONA); holds happen inside [answer, talk_end]
    wrap_end: int  # wrap-up ends (set by _wrapup once talk_end is final; == talk_end after a RONA)
    ended_by: str  # disconnectType of the interact segment
    timeout_wrap: bool = False  # the wrap-up timed out: ININ-WRAP-UP-TIMEOUT
    consult: Consult | None = None
    # False for a `user` participant reached without a queue (a direct call): no queueId on its
    # segments; `queue` then only says whose wrap-up codes the user picks from.
    via_queue: bool = True
    wraps_up: bool = True  # False: a user who was not asked for a wrap-up (no wrapup segment)


@dataclasses.dataclass(slots=True)
class Consult:
    """The agent holds the customer and calls a colleague, then hands over or comes back."""

    start: int
    end: int  # the first agent leaves (transferred) or resumes talking
    colleague: AgentTurn
    transferred: bool


@dataclasses.dataclass(slots=True)
class QueueVisit:
    queue: int
    start: int  # the acd participant's delay segment starts
    offer: int  # waiting (interact) starts: nOffered
    end: int  # answered, or abandoned when `agent` is None
    rona: AgentTurn | None
    agent: AgentTurn | None


@dataclasses.dataclass(slots=True)
class Dial:
    """An agent-placed voice call (voice outbound, or the call-back of a callback)."""

    start: int  # dialing starts
    contacting: int  # dialing ends, the far end rings
    connected: int  # far end answers, or ringing gives up when not `answered`
    answered: bool


@dataclasses.dataclass(slots=True)
class CampaignCall:
    """What the dialer did: call analysis of the dialled number, and the wrap-up of its own leg when no
    agent wrapped the call up (the call was not answered by a person, reached no agent, or the
    campaign is agentless)."""

    campaign: int  # index into Directory.campaigns
    disposition: str  # call analysis: person | machine | busy | noanswer | sit
    flow_end: int | None = None  # agentless, a person answered: the campaign's flow plays until here
    wrap_start: int | None = None  # the dialer leg's wrap-up (None: an agent wraps the call up)
    wrap_end: int | None = None
    system_code: str | None = None  # ININ-OUTBOUND-*; None: the flow set one of the org's codes


@dataclasses.dataclass(slots=True)
class Timeline:
    media: str  # voice | callback | chat | message | email
    direction: str  # inbound | outbound
    start: int
    customer_connect: int  # the customer's system segment ends
    ivr_end: int  # voice inbound: the IVR exits (== customer_connect when there is no IVR)
    customer_end: int
    visits: list[QueueVisit]
    dial: Dial | None = None
    dial_turn: AgentTurn | None = None  # voice outbound: the dialling agent
    end: int = 0
    evaluation_at: int | None = None
    survey_at: int | None = None
    late_wrapup_at: int | None = None
    late_wrapup_changes_code: bool = False  # else the code is missing until late_wrapup_at
    campaign: CampaignCall | None = None  # an outbound campaign (dialer) call
    user_turn: AgentTurn | None = None  # a `user` reached without a queue, last to handle the customer
    ivr: bool = True  # voice inbound: an IVR answers first (a direct call to a user has none)
    lingers: bool = False  # an email or message conversation left open for days (shapes.linger)
    # Drawn from the conversation's second random stream (restatements.py), so that everything above
    # stays as it was: each evaluation's restatements [(epoch ms, status)], and when the first-contact
    # resolution (next contact avoided) is reported.
    evaluation_steps: list[list[tuple[int, str]]] = dataclasses.field(default_factory=list)
    resolution_at: int | None = None

    @property
    def self_served(self) -> bool:
        return (
            self.media == "voice" and self.direction == "inbound" and not self.visits and self.user_turn is None
        )

    @property
    def last_change(self) -> int:
        steps = [at for evaluation in self.evaluation_steps for at, _ in evaluation]
        later = (self.end, self.evaluation_at, self.survey_at, self.late_wrapup_at, self.resolution_at, *steps)
        return max(t for t in later if t is not None)

    def agent_turns(self) -> list[AgentTurn]:
        turns = [self.dial_turn] if self.dial_turn is not None else []
        for visit in self.visits:
            turns += [turn for turn in (visit.rona, visit.agent) if turn is not None]
            if visit.agent is not None and visit.agent.consult is not None:
                turns.append(visit.agent.consult.colleague)
        if self.user_turn is not None:
            turns.append(self.user_turn)
        return turns

    def final_turn(self) -> AgentTurn | None:
        """The agent (or user) who handled the customer last: evaluated, surveyed, late to wrap up."""
        if self.user_turn is not None:
            return self.user_turn
        if self.dial_turn is not None:
            return self.dial_turn
        for visit in reversed(self.visits):
            if visit.agent is not None:
                consult = visit.agent.consult
                return consult.colleague if consult is not None and consult.transferred else visit.agent
        return None


def _seconds(rng: random.Random, median_s: float, sigma: float, low_s: float, high_s: float) -> int:
    """A log-normal duration in ms: contact-centre durations are right-skewed."""
    return int(min(max(rng.lognormvariate(math.log(median_s), sigma), low_s), high_s) * 1000)


def _wrapup(rng: random.Random, directory: Directory, turn: AgentTurn) -> None:
    if rng.random() < 0.03:
        turn.timeout_wrap = True
        turn.wrap_end = turn.talk_end + directory.queue_specs[turn.queue].acw_timeout_ms
    else:
        turn.wrap_end = turn.talk_end + _seconds(rng, 40, 0.8, 3, 900)


# Per media type: (wait median s, sigma, max s), (talk median s, sigma, min s, max s), P(abandon), P(RONA)
_PROFILES = {
    "voice": ((40, 1.0, 1800), (300, 0.7, 20, 5400), 0.08, 0.06),
    "chat": ((45, 0.9, 1800), (540, 0.6, 60, 3600), 0.06, 0.04),
    "message": ((180, 1.1, 14_400), (1500, 0.9, 120, 28_800), 0.05, 0.03),
    "email": ((7200, 1.2, 93_600), (480, 0.7, 60, 5400), 0.0, 0.03),
    "callback": ((600, 1.0, 10_800), (20, 0.8, 3, 60), 0.0, 0.03),  # talk = preview before dialling
}


def _visit(
    rng: random.Random,
    directory: Directory,
    media: str,
    queue: int,
    start: int,
    *,
    may_consult: bool,
    wrap: bool = True,
) -> QueueVisit:
    """Waiting in `queue`, then abandoned or answered (after a RONA sometimes), talked and wrapped up
    (unless `wrap` is False: the caller extends the talk first)."""
    (wait_median, wait_sigma, wait_max), talk, abandon_p, rona_p = _PROFILES[media]
    offer = start + rng.randint(8, 30)
    if rng.random() < abandon_p:
        return QueueVisit(queue, start, offer, offer + _seconds(rng, 50, 1.0, 3, 1200), None, None)
    rona = None
    if rng.random() < rona_p:
        rona_alert = offer + _seconds(rng, 10, 1.0, 1, 600)
        rona_end = rona_alert + directory.queue_specs[queue].alert_timeout_ms
        rona = AgentTurn(queue, rona_alert, rona_end, rona_end, rona_end, "noAnswerTransfer")
        alert = rona_end + rng.randint(500, 20_000)
    else:
        alert = offer + _seconds(rng, wait_median, wait_sigma, 1, wait_max)
    answer = alert + rng.randint(1500, 12_000)
    talk_ms = _seconds(rng, talk[0], talk[1], talk[2], talk[3])
    agent = AgentTurn(queue, alert, answer, answer + talk_ms, 0, "peer" if rng.random() < 0.7 else "client")
    if may_consult and rng.random() < 0.06:
        consult_start = answer + int(talk_ms * rng.uniform(0.2, 0.8))
        colleague_alert = consult_start + rng.randint(300, 1500)
        colleague_answer = colleague_alert + rng.randint(2000, 10_000)
        consult_end = colleague_answer + _seconds(rng, 60, 0.8, 10, 600)
        transferred = rng.random() < 0.5
        remaining = _seconds(rng, 180, 0.8, 10, 3600)
        colleague_end = consult_end + remaining if transferred else consult_end
        ended_by = "peer" if transferred else "client"
        colleague = AgentTurn(queue, colleague_alert, colleague_answer, colleague_end, 0, ended_by)
        _wrapup(rng, directory, colleague)
        agent.consult = Consult(consult_start, consult_end, colleague, transferred)
        agent.talk_end = consult_end if transferred else consult_end + remaining
        agent.ended_by = "consultTransfer" if transferred else agent.ended_by
    if wrap:
        _wrapup(rng, directory, agent)
    return QueueVisit(queue, start, offer, answer, rona, agent)


def _customer_end(visit: QueueVisit) -> int:
    if visit.agent is None:
        return visit.end
    consult = visit.agent.consult
    return consult.colleague.talk_end if consult is not None and consult.transferred else visit.agent.talk_end


def _voice_inbound(rng: random.Random, directory: Directory, start: int) -> Timeline:
    connect = start + rng.randint(150, 400)
    ivr_end = connect + _seconds(rng, 45, 0.6, 8, 360)
    timeline = Timeline("voice", "inbound", start, connect, ivr_end, ivr_end, [])
    if rng.random() < 0.10:
        return timeline  # self-served: the caller hangs up in the IVR
    queue = directory.route(rng, "inbound", "voice")
    visit = _visit(rng, directory, "voice", queue, ivr_end + rng.randint(10, 40), may_consult=True)
    timeline.visits.append(visit)
    if visit.agent is not None and visit.agent.consult is None and rng.random() < 0.08:
        # Blind transfer to a second queue: the first agent leaves and wraps up.
        visit.agent.ended_by = "transfer"
        second = directory.route(rng, "transfer", "voice", exclude=queue)
        timeline.visits.append(
            _visit(
                rng, directory, "voice", second, visit.agent.talk_end + rng.randint(20, 80), may_consult=False
            )
        )
    timeline.customer_end = _customer_end(timeline.visits[-1])
    return timeline


def _digital(
    rng: random.Random, directory: Directory, start: int, media: str, *, wrap: bool = True
) -> Timeline:
    connect = start + rng.randint(20, 200)
    queue = directory.route(rng, "inbound", media)
    visit = _visit(rng, directory, media, queue, connect + rng.randint(20, 400), may_consult=False, wrap=wrap)
    return Timeline(media, "inbound", start, connect, connect, _customer_end(visit), [visit])


def _dial(rng: random.Random, start: int, answered_p: float) -> Dial:
    contacting = start + rng.randint(1000, 4000)
    if rng.random() < answered_p:
        return Dial(start, contacting, contacting + rng.randint(4000, 30_000), True)
    return Dial(start, contacting, contacting + rng.randint(20_000, 45_000), False)


def _voice_outbound(rng: random.Random, directory: Directory, start: int) -> Timeline:
    dial = _dial(rng, start, 0.8)
    talk_end = dial.connected + (_seconds(rng, 210, 0.8, 10, 3600) if dial.answered else 0)
    # An unanswered call ends with the agent giving up; an answered one with either side hanging up.
    ended_by = "client" if not dial.answered or rng.random() < 0.6 else "peer"
    turn = AgentTurn(directory.route(rng, "outbound", "voice"), start, start, talk_end, 0, ended_by)
    _wrapup(rng, directory, turn)
    return Timeline("voice", "outbound", start, start, start, talk_end, [], dial=dial, dial_turn=turn)


def _callback(rng: random.Random, directory: Directory, start: int) -> Timeline:
    timeline = _digital(rng, directory, start, "callback", wrap=False)
    agent = timeline.visits[0].agent
    assert agent is not None  # callbacks are never abandoned (_PROFILES)
    # The agent previews the callback (its "talk"), then dials the customer.
    timeline.dial = _dial(rng, agent.talk_end, 0.9)
    agent.talk_end = timeline.dial.connected + (
        _seconds(rng, 240, 0.7, 20, 2400) if timeline.dial.answered else 0
    )
    if not timeline.dial.answered:
        agent.ended_by = "client"
    _wrapup(rng, directory, agent)
    timeline.customer_end = agent.talk_end
    return timeline


_DIGITAL_FROM = 0.80  # the first draw of the base mix at or above this: a message or an email


def draws_digital(seed: int) -> bool:
    """Whether the base mix makes the conversation of this seed a message or an email, from its first
    draw alone (what `draw_standard` draws first): cheap, for finding the few that may stay open."""
    return random.Random(seed).random() >= _DIGITAL_FROM


def draw_standard(rng: random.Random, directory: Directory, start: int) -> Timeline:
    """The base mix of the module docstring, before `finish`."""
    kind = rng.random()
    if kind < 0.55:
        return _voice_inbound(rng, directory, start)
    if kind < 0.65:
        return _voice_outbound(rng, directory, start)
    if kind < 0.70:
        return _callback(rng, directory, start)
    media = "chat" if kind < _DIGITAL_FROM else "message" if kind < 0.90 else "email"
    return _digital(rng, directory, start, media)


def finish(rng: random.Random, timeline: Timeline, extra_ends: tuple[int, ...] = ()) -> Timeline:
    """The conversation's end (its last participant's last segment), then the later restatements."""
    timeline.end = max(
        [timeline.customer_end, timeline.ivr_end, *extra_ends]
        + [turn.wrap_end for turn in timeline.agent_turns()]
    )
    bound = MAX_LIFETIME_MS if timeline.lingers else MAX_ORDINARY_LIFETIME_MS
    if timeline.end - timeline.start > bound:
        raise AssertionError(f"conversation lasts {timeline.end - timeline.start} ms, over the {bound} ms bound")
    if timeline.final_turn() is not None:
        if rng.random() < 0.06:
            timeline.evaluation_at = timeline.end + rng.randint(HOUR_MS, 72 * HOUR_MS)
        if rng.random() < 0.035:
            timeline.survey_at = timeline.end + rng.randint(HOUR_MS // 6, 48 * HOUR_MS)
        if rng.random() < 0.025:
            timeline.late_wrapup_at = timeline.end + rng.randint(2 * HOUR_MS, 60 * HOUR_MS)
            timeline.late_wrapup_changes_code = rng.random() < 0.5
    return timeline
