"""Shapes of conversation beyond the base mix of scenarios.py, each on by default (a real org has
them) and each with an off switch (`EmulatorConfig`):

- campaign calls (5% of a day): an agent-assisted outbound campaign dials a contact; the dialer's own
  leg (purpose `outbound`, named after the campaign) carries the call analysis (`dispositionName`) and
  the campaign ids; a person is handed to the campaign's queue and an agent, who wraps up. Attempts
  that reach no agent (no answer, busy, machine, SIT, or no agent free) are wrapped up by the dialer
  with an `ININ-OUTBOUND-*` code (genesys-api-more.md s3.2), and have no agent at all.
- agentless campaign calls (2%): no queue and no agent; a person who answers hears the campaign's
  flow, which may set one of the org's wrap-up codes; the dialer's leg carries the wrap-up.
- calls to a user, not a queue (3%): a customer dials a user's direct number, or an agent answers from
  a queue and transfers the customer to a user; the `user` participant wraps up (most of the time).
- email and message conversations open for days (one in 25 of them): the customer's side stays open
  2-20 days, and half the time the customer writes again days later and an agent handles it again.

The shape of a conversation is drawn from its seed apart from the base stream, so turning one shape off
leaves every other conversation as it was (a centre with every shape off is the base mix, byte for byte).
"""

from __future__ import annotations

import dataclasses
import random

from .directory import Directory
from .ids import mix64
from .restatements import draw_restatements
from .scenarios import (
    DAY_MS,
    HOUR_MS,
    AgentTurn,
    CampaignCall,
    Dial,
    Timeline,
    _customer_end,
    _seconds,
    _visit,
    _wrapup,
    draw_standard,
    finish,
)

CAMPAIGN, AGENTLESS, DIRECT = "campaign", "agentless", "direct"
# One uniform draw from the conversation's seed picks its shape: each shape owns a fixed range of it.
_SHAPE_RANGES = ((CAMPAIGN, 0.0, 0.05), (AGENTLESS, 0.05, 0.07), (DIRECT, 0.07, 0.10))
_SHAPE_SALT = 0x5AA9_E000_0000_0003
# One conversation in 25 (by its index in the day) may stay open for days, if it is an email or a
# message: an index, so that the server can find the long-lived ones of a day without planning it all.
LINGER_STRIDE = 25
DIGITAL_MEDIA = ("email", "message")
# Call analysis (share, dispositionName's last part); the dialer's wrap-up code when no agent took it.
_DISPOSITIONS = ("person", "machine", "noanswer", "busy", "sit")
_DISPOSITION_WEIGHTS = (0.55, 0.15, 0.18, 0.08, 0.04)
DIALER_CODES = {
    "machine": "ININ-OUTBOUND-MACHINE",
    "noanswer": "ININ-OUTBOUND-NO-ANSWER",
    "busy": "ININ-OUTBOUND-BUSY",
    "sit": "ININ-OUTBOUND-SIT-UNCALLABLE",
    "no agent": "ININ-OUTBOUND-FAILED-TO-REACH-AGENT",
    "flow": "ININ-OUTBOUND-TRANSFERRED-TO-FLOW",
}


@dataclasses.dataclass(frozen=True)
class Shapes:
    campaign_calls: bool = True
    agentless_calls: bool = True
    direct_user_calls: bool = True
    digital_open_for_days: bool = True

    def pick(self, seed: int) -> str:
        """The shape of the conversation with this seed ("" = the base mix)."""
        draw = (mix64(seed ^ _SHAPE_SALT) >> 11) / 2**53
        enabled = {CAMPAIGN: self.campaign_calls, AGENTLESS: self.agentless_calls, DIRECT: self.direct_user_calls}
        for shape, low, high in _SHAPE_RANGES:
            if low <= draw < high:
                return shape if enabled[shape] else ""
        return ""

    def may_linger(self, index: int) -> bool:
        """Whether the conversation at this index of its day stays open for days, if email or message."""
        return self.digital_open_for_days and index % LINGER_STRIDE == LINGER_STRIDE - 1


def draw_timeline(
    rng: random.Random, second: random.Random, directory: Directory, start: int, shape: str = "",
    may_linger: bool = False,
) -> Timeline:
    """The timeline, from the conversation's random stream `rng`, and its later restatements from its
    second stream (`restatements.second_stream`), which both go on to draw the record."""
    timeline = _draw(rng, directory, start, shape, may_linger)
    draw_restatements(second, timeline)
    return timeline


def _draw(rng: random.Random, directory: Directory, start: int, shape: str, may_linger: bool) -> Timeline:
    if shape in (CAMPAIGN, AGENTLESS):
        timeline = _campaign_call(rng, directory, start, agentless=shape == AGENTLESS)
        call = timeline.campaign
        assert call is not None
        return finish(rng, timeline, () if call.wrap_end is None else (call.wrap_end,))
    if shape == DIRECT:
        return finish(rng, _call_to_a_user(rng, directory, start))
    timeline = draw_standard(rng, directory, start)
    if may_linger and timeline.media in DIGITAL_MEDIA:
        _linger(rng, directory, timeline)
    return finish(rng, timeline)


def _campaign_call(rng: random.Random, directory: Directory, start: int, *, agentless: bool) -> Timeline:
    campaigns = [n for n, c in enumerate(directory.campaigns) if c.agentless == agentless]
    disposition = rng.choices(_DISPOSITIONS, weights=_DISPOSITION_WEIGHTS)[0]
    contacting = start + rng.randint(300, 1500)  # the dialer dials at once
    if disposition == "noanswer":
        connected = contacting + rng.randint(20_000, 40_000)  # rings until the campaign's timeout
    elif disposition in ("busy", "sit"):
        connected = contacting + rng.randint(500, 4000)
    else:
        connected = contacting + rng.randint(2000, 15_000)
    dial = Dial(start, contacting, connected, disposition in ("person", "machine"))
    call = CampaignCall(rng.choice(campaigns), disposition)
    timeline = Timeline("voice", "outbound", start, connected, start, connected, [], dial=dial, campaign=call)
    timeline.ivr = False
    code = DIALER_CODES.get(disposition)
    if disposition == "person" and not agentless:  # handed to the campaign's queue
        queue = directory.route(rng, "outbound", "voice")
        visit = _visit(rng, directory, "voice", queue, connected + rng.randint(50, 400), may_consult=False)
        timeline.visits.append(visit)
        timeline.customer_end = _customer_end(visit)
        code = None if visit.agent is not None else DIALER_CODES["no agent"]
    elif disposition == "person":  # agentless: the campaign's flow plays its message, may set a code
        call.flow_end = connected + _seconds(rng, 30, 0.4, 8, 120)
        timeline.customer_end = call.flow_end
        code = DIALER_CODES["flow"] if rng.random() < 0.4 else None
    elif disposition == "machine":  # an agentless campaign leaves a message; the others hang up
        timeline.customer_end = connected + (_seconds(rng, 25, 0.3, 10, 60) if agentless else rng.randint(300, 1500))
    if code is not None or call.flow_end is not None:  # no agent: the dialer's leg wraps the call up
        call.system_code = code
        call.wrap_start = timeline.customer_end
        call.wrap_end = call.wrap_start + rng.randint(100, 1500)
    return timeline


def _user_turn(rng: random.Random, directory: Directory, queue: int, alert: int) -> AgentTurn:
    """A user answering without a queue; `queue` is their team's, whose wrap-up codes they pick from."""
    answer = alert + rng.randint(2000, 15_000)
    talk_end = answer + _seconds(rng, 240, 0.7, 15, 3600)
    turn = AgentTurn(queue, alert, answer, talk_end, talk_end, "peer" if rng.random() < 0.6 else "client")
    turn.via_queue = False
    if rng.random() < 0.75:  # wrap-up is the user's or the org's choice, not always required
        _wrapup(rng, directory, turn)
    else:
        turn.wraps_up = False
    return turn


def _call_to_a_user(rng: random.Random, directory: Directory, start: int) -> Timeline:
    connect = start + rng.randint(150, 400)
    if rng.random() < 0.6:  # the customer dials a user's direct number: no IVR, no queue
        queue = directory.route(rng, "inbound", "voice")
        turn = _user_turn(rng, directory, queue, connect + rng.randint(200, 1500))
        timeline = Timeline("voice", "inbound", start, connect, connect, turn.talk_end, [], user_turn=turn)
        timeline.ivr = False
        return timeline
    # IVR, a queue and an agent, who transfers the customer to a user (a colleague, not a queue)
    ivr_end = connect + _seconds(rng, 45, 0.6, 8, 360)
    queue = directory.route(rng, "inbound", "voice")
    visit = _visit(rng, directory, "voice", queue, ivr_end + rng.randint(10, 40), may_consult=False, wrap=False)
    timeline = Timeline("voice", "inbound", start, connect, ivr_end, visit.end, [visit])
    if visit.agent is None:  # abandoned in the queue before an agent answered
        return timeline
    visit.agent.ended_by = "transfer"
    _wrapup(rng, directory, visit.agent)
    timeline.user_turn = _user_turn(rng, directory, queue, visit.agent.talk_end + rng.randint(300, 3000))
    timeline.customer_end = timeline.user_turn.talk_end
    return timeline


def _linger(rng: random.Random, directory: Directory, timeline: Timeline) -> None:
    """The customer's side stays open 2-20 days after the start (log-uniform); half the time the
    customer writes again on the way and the conversation is routed to the same queue again."""
    timeline.lingers = True
    settled = max([timeline.customer_end] + [turn.wrap_end for turn in timeline.agent_turns()])
    closes = max(timeline.start + int(2 * DAY_MS * 10 ** rng.uniform(0, 1)), settled + HOUR_MS)
    first = timeline.visits[0]
    if first.agent is not None and rng.random() < 0.5:
        reply = settled + rng.randint(HOUR_MS, max(HOUR_MS, (closes - settled) // 2))
        visit = _visit(rng, directory, timeline.media, first.queue, reply, may_consult=False)
        timeline.visits.append(visit)
        closes = max(closes, _customer_end(visit) + HOUR_MS)
    timeline.customer_end = closes
