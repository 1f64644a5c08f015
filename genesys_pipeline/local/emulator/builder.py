"""Fleshes a conversation's `Timeline` out into a full `Conversation` (participants, sessions,
segments, metrics, evaluations, surveys, late wrap-up codes, participant attributes).

The random stream continues where `draw_timeline` stopped, so the same seed gives the same record;
nothing drawn here moves an instant the timeline fixed. Participant attributes come from a separate
stream, so a record with attributes is otherwise identical to the one without.

Metrics follow genesys-api.md s5.7: each is emitted when what it measures completes (tTalk at the end
of each talk span, tHeld at the end of each hold, tAcw and tHandle when wrap-up ends, nOffered on
queue entry...). tHandle = talk + hold + wrap-up (+ preview and dialling for agent-placed calls).
"""

from __future__ import annotations

import random
from typing import Any

from . import texts
from .dialer import DialerParts
from .directory import DEFAULT_WRAPUP_CODE_ID, SERVICE_LEVEL_MS, Directory
from .enrichment import add_attributes
from .flows import in_queue_exit, ivr_exit
from .parties import Parties
from .records import Conversation, Participant, Segment, make_session
from .restatements import add_reports, second_stream
from .scenarios import AgentTurn, QueueVisit, Timeline
from .shapes import draw_timeline

WRAP_UP_TIMEOUT = "ININ-WRAP-UP-TIMEOUT"
# Share of wrap-ups (not timed out) that end with the Default Wrap-up Code instead of one of the
# queue's codes: real records carry it, and it is not in the wrap-up code listing (directory.py).
DEFAULT_WRAPUP_SHARE = 0.04
_ATTRIBUTE_SALT = 0x5A17_A77B
_HOLDS = (0,) * 14 + (1, 1, 1, 1, 2, 3)  # holds per talk span of a voice agent: 70% none, some 2+
_IN_QUEUE_FLOW_TYPES = {"voice": "INQUEUECALL", "email": "INQUEUEEMAIL", "message": "INQUEUESHORTMESSAGE"}

Metrics = list[tuple[int, str, int]]  # (emit epoch ms, name, value)


def build_conversation(
    directory: Directory, conversation_id: str, seed: int, start: int, *, with_attributes: bool,
    shape: str = "", may_linger: bool = False,
) -> Conversation:
    rng, second = random.Random(seed), second_stream(seed)
    timeline = draw_timeline(rng, second, directory, start, shape, may_linger)
    conversation = _Builder(rng, second, directory, timeline, conversation_id).build()
    if with_attributes:
        add_attributes(random.Random(seed ^ _ATTRIBUTE_SALT), conversation)
    return conversation


_session = make_session


class _Builder(DialerParts):
    def __init__(
        self, rng: random.Random, second: random.Random, directory: Directory, timeline: Timeline, conversation_id: str
    ):
        self.rng, self.directory, self.timeline, self.media = rng, directory, timeline, timeline.media
        self.second = second  # the second stream (restatements.py): flow outcomes, media stats' packets...
        campaign = None if timeline.campaign is None else directory.campaigns[timeline.campaign.campaign]
        self.parties = Parties(rng, timeline, conversation_id, directory.edge_ids, campaign, second=second)
        self.subject = self.parties.subject
        initiator = "customer" if self.media == "message" else None
        self.conversation = Conversation(
            conversation_id, timeline.start, timeline.end, timeline.direction, timeline.self_served,
            initiator, [], directory.home_division_id, [],
        )  # fmt: skip
        self.wrapped: dict[int, tuple[str, Segment | None]] = {}  # id(turn) -> (agent user id, wrap-up segment)

    def build(self) -> Conversation:
        add = self.conversation.participants.append
        if self.timeline.campaign is not None:
            self._campaign_call()
        elif self.timeline.direction == "outbound":
            self._voice_outbound()
        else:
            add(self._customer())
            if self.media == "voice" and self.timeline.ivr:
                add(self._ivr())
            for number, visit in enumerate(self.timeline.visits):
                self._visit(visit, first=number == 0)
            if self.timeline.user_turn is not None:
                add(self._agent(self.timeline.user_turn, None, purpose="user"))
        self.conversation.participants.sort(key=lambda p: p.sessions[0].segments[0].start)
        self._restatements()
        return self.conversation

    def _queue_id(self, queue: int) -> str:
        return self.directory.queue_specs[queue].id

    def _customer_hangs_up(self) -> bool:
        """Who ends the call: the customer (their segment ends `endpoint`) or the other side (`peer`)."""
        final = self.timeline.final_turn()
        if final is not None:
            return final.ended_by == "peer"
        return bool(self.timeline.visits) or self.rng.random() < 0.6  # abandoned, or hung up in the IVR

    # --- inbound: customer, IVR, queues, agents ---

    def _customer(self) -> Participant:
        timeline, parties = self.timeline, self.parties
        scalars = parties.scalars("inbound", peer=False, routed=bool(timeline.visits))
        scalars["sessionId"] = parties.origin_session_id
        if self.media == "voice":
            scalars["recording"] = True
            if self.rng.random() < 0.5:
                scalars["remoteNameDisplayable"] = parties.customer_name
        head = parties.head("customer", parties.phone if self.media == "voice" else parties.customer_name)
        segments = [Segment(timeline.start, timeline.customer_connect, "system")]
        ends = [visit.start for visit in timeline.visits[1:]] + [timeline.customer_end]
        for number, visit in enumerate(timeline.visits):  # one interact per queue
            start = timeline.customer_connect if number == 0 else visit.start
            queue_id = self._queue_id(visit.queue)
            segments.append(Segment(start, ends[number], "interact", queue_id, subject=self.subject))
        if not timeline.visits:
            segments.append(Segment(timeline.customer_connect, timeline.customer_end, "interact"))
        if self.media == "callback":  # the request lasts until the agent calls back (a second session)
            dial = timeline.dial
            assert dial is not None
            segments[-1].end, segments[-1].disconnect = dial.contacting, "transfer"
            sessions = [_session(scalars, segments, [])]
            if dial.answered:
                sessions.append(self._dialled_party())
            return Participant(head, sessions)
        segments[-1].disconnect = "endpoint" if self._customer_hangs_up() else "peer"
        segments[-1].q850 = self.media == "voice"
        connected = timeline.customer_end - timeline.customer_connect
        metrics = [
            (timeline.customer_connect, "nConnected", 1),
            (timeline.customer_end, "tConnected", connected),
        ]
        stats = [parties.media_stat(timeline.customer_end + 40, trunk=True)] if self.media == "voice" else []
        return Participant(head, [_session(scalars, segments, metrics, stats=stats)])

    def _ivr(self) -> Participant:
        timeline, rng, parties = self.timeline, self.rng, self.parties
        flow_id, flow_name = rng.choice(self.directory.ivr_flows)
        start = timeline.start + rng.randint(5, 60)
        flow = {
            "entryReason": parties.dnis, "entryType": "dnis", "flowId": flow_id, "flowName": flow_name,
            "flowType": "INBOUNDCALL", "flowVersion": f"{rng.randint(2, 40)}.0", "startingLanguage": "en-us",
        }  # fmt: skip
        exited: dict[str, Any] = {"endingLanguage": "en-us"} | flow
        segments = [Segment(start, start + rng.randint(30, 60), "system")]
        if timeline.visits:
            target = self.directory.queue_specs[timeline.visits[0].queue]
            exited |= {"exitReason": "TRANSFER", "transferTargetAddress": target.id}
            exited |= {"transferTargetName": target.name, "transferType": "ACD"}
            segments.append(Segment(segments[0].end, timeline.ivr_end, "ivr", disconnect="transfer"))
            exit_metric = "tFlowExit"
        else:  # self-served: the caller hangs up, or the flow ends the call
            caller_left = self.conversation.participants[0].sessions[0].segments[-1].disconnect == "endpoint"
            exited["exitReason"] = "CUSTOMER_DISCONNECT" if caller_left else "FLOW_DISCONNECT"
            disconnect = "peer" if caller_left else "endpoint"
            segments.append(
                Segment(segments[0].end, timeline.ivr_end, "ivr", disconnect=disconnect, q850=True)
            )
            exit_metric = "tFlowDisconnect"
        flow_ms, end = timeline.ivr_end - start, timeline.ivr_end
        metrics = [
            (start, "nFlow", 1),
            (end, "tIvr", flow_ms),
            (end, "tFlow", flow_ms),
            (end, exit_metric, flow_ms),
        ]
        exited, outcome_metrics = ivr_exit(
            self.second, self.directory, flow, exited, start, end, self_served=not timeline.visits
        )
        session = _session(
            parties.scalars("inbound", peer=True), segments, metrics + outcome_metrics,
            stats=[parties.media_stat(end, trunk=True)], flow=flow, flow_exited=(end, exited),
        )  # fmt: skip
        return Participant(parties.head("ivr", flow_name), [session])

    def _visit(self, visit: QueueVisit, first: bool) -> None:
        add = self.conversation.participants.append
        self.conversation.divisions.append((visit.start, self.directory.queue_specs[visit.queue].division_id))
        add(self._acd(visit, from_ivr=first and self.media == "voice"))
        if visit.rona is not None:
            add(self._rona(visit.rona))
        if visit.agent is None:
            return
        if self.media == "callback":
            add(self._callback_agent(visit.agent, visit.offer))
            return
        add(self._agent(visit.agent, visit.offer))
        if visit.agent.consult is not None:
            add(self._agent(visit.agent.consult.colleague, None))

    def _acd(self, visit: QueueVisit, from_ivr: bool) -> Participant:
        spec = self.directory.queue_specs[visit.queue]
        scalars = self.parties.scalars("inbound", peer=True, routed=True)
        if from_ivr:
            scalars["flowInType"] = "ivr"
        flow = None
        if self.media in _IN_QUEUE_FLOW_TYPES:
            flow_id, flow_name = self.directory.in_queue_flow
            flow = {"flowId": flow_id, "flowName": flow_name, "flowType": _IN_QUEUE_FLOW_TYPES[self.media]}
            flow["flowVersion"] = "15.0"
        waited, outcome = visit.end - visit.offer, "transfer" if visit.agent else "peer"
        segments = [
            Segment(visit.start, visit.offer, "delay", spec.id, subject=self.subject),
            Segment(visit.offer, visit.end, "interact", spec.id, disconnect=outcome, subject=self.subject),
        ]
        metrics = [(visit.offer, "nOffered", 1), (visit.end, "tAcd" if visit.agent else "tAbandon", waited)]
        if waited > SERVICE_LEVEL_MS[self.media]:
            metrics.append((visit.end, "nOverSla", 1))
        exited = flow and in_queue_exit(self.second, flow, visit.agent is None, self.media == "voice")
        session = _session(scalars, segments, metrics, flow=flow, flow_exited=exited and (visit.end, exited))
        return Participant(self.parties.head("acd", spec.name), [session])

    def _agent_head(self, turn: AgentTurn, purpose: str = "agent") -> tuple[dict[str, Any], str]:
        taken = tuple(p.head["userId"] for p in self.conversation.participants if "userId" in p.head)
        agent = self.directory.pick_agent(self.rng, turn.queue, exclude=taken)
        name = agent.name if self.parties.show_agent_names else None
        return self.parties.head(purpose, name, agent.user_id), agent.user_id

    def _queue_of(self, turn: AgentTurn) -> str | None:
        """The queueId on a turn's segments: none for a user reached without a queue."""
        return self._queue_id(turn.queue) if turn.via_queue else None

    def _rona(self, turn: AgentTurn) -> Participant:
        """Redirect on no answer: alerted until the queue's alerting timeout, then back to the queue. The
        alert segment ends with `noAnswerTransfer`, the RONA signal (genesys-api-more.md s4.1)."""
        head, _ = self._agent_head(turn)
        queue_id, alerted = self._queue_id(turn.queue), turn.answer - turn.alert
        segments = [
            Segment(turn.alert, turn.answer, "alert", queue_id, disconnect=turn.ended_by, subject=self.subject)
        ]
        metrics = [(turn.answer, "tAlert", alerted), (turn.answer, "tNotResponding", alerted)]
        if self.rng.random() < 0.3:
            metrics.append((turn.answer, "nError", 1))
        return Participant(
            head, [_session(self.parties.scalars("inbound", peer=True, routed=True), segments, metrics)]
        )

    def _agent(self, turn: AgentTurn, offered_at: int | None, purpose: str = "agent") -> Participant:
        """An agent answering from a queue (`offered_at` = queue entry), a consulted colleague (None), or
        a `user` reached without a queue (None)."""
        head, user_id = self._agent_head(turn, purpose)
        queue_id = self._queue_of(turn)
        segments = [Segment(turn.alert, turn.answer, "alert", queue_id, subject=self.subject)]
        metrics = [(turn.answer, "tAlert", turn.answer - turn.alert)]
        if offered_at is not None:
            metrics.append((turn.answer, "tAnswered", turn.answer - offered_at))
        consult = turn.consult
        if consult is None:
            self._talk(segments, metrics, turn.answer, turn.talk_end, queue_id)
        else:  # the customer waits on hold while the agent talks to a colleague
            self._talk(segments, metrics, turn.answer, consult.start, queue_id, holds=False)
            segments.append(Segment(consult.start, consult.end, "hold", queue_id))
            held = consult.end - consult.start
            metrics += [
                (consult.start, "nConsult", 1),
                (consult.end, "tHeld", held),
                (consult.end, "tHeldComplete", held),
            ]
            if consult.transferred:
                metrics += [(consult.end, "nConsultTransferred", 1), (consult.end, "nTransferred", 1)]
            else:
                self._talk(segments, metrics, consult.end, turn.talk_end, queue_id, holds=False)
        if turn.ended_by == "transfer":
            metrics += [(turn.talk_end, "nBlindTransferred", 1), (turn.talk_end, "nTransferred", 1)]
        self._wrapup(segments, metrics, turn, user_id, handle_from=turn.answer)
        stats = [self.parties.media_stat(turn.talk_end + 30)] if self.media == "voice" else []
        scalars = self.parties.scalars("inbound", peer=True, routed=turn.via_queue)
        return Participant(head, [_session(scalars, segments, metrics, stats=stats)])

    def _talk(
        self,
        segments: list[Segment],
        metrics: Metrics,
        start: int,
        end: int,
        queue_id: str,
        holds: bool = True,
    ) -> None:
        """Interact segments tiling [start, end], with holds in between for some voice calls."""
        span, rng = end - start, self.rng
        count = rng.choice(_HOLDS) if holds and self.media in ("voice", "callback") and span > 60_000 else 0
        held = [rng.randint(10_000, 120_000) for _ in range(count)]
        if sum(held) > span * 0.4:  # keep at least 60% of the span as talk
            held = [h * int(span * 0.4) // sum(held) for h in held]
        free = span - sum(held)
        cuts = sorted(rng.sample(range(2000, free - 2000, 1000), count))
        talks = [b - a for a, b in zip([0, *cuts], [*cuts, free], strict=True)]
        at = start
        for talk_ms, hold_ms in zip(talks, [*held, 0], strict=True):
            segments.append(Segment(at, at + talk_ms, "interact", queue_id, subject=self.subject))
            metrics += [(at + talk_ms, "tTalk", talk_ms), (at + talk_ms, "tTalkComplete", talk_ms)]
            at += talk_ms
            if hold_ms:
                segments.append(Segment(at, at + hold_ms, "hold", queue_id))
                metrics += [(at + hold_ms, "tHeld", hold_ms), (at + hold_ms, "tHeldComplete", hold_ms)]
                at += hold_ms

    def _wrapup(
        self, segments: list[Segment], metrics: Metrics, turn: AgentTurn, user_id: str, handle_from: int
    ) -> None:
        segments[-1].disconnect = turn.ended_by
        ended = self.timeline.dial is not None or (
            self.media == "voice" and turn.ended_by in ("peer", "client")
        )
        if not turn.wraps_up:  # no wrap-up asked of this user: the handle time is the talk
            segments[-1].q850 = ended
            self.wrapped[id(turn)] = (user_id, None)
            metrics.append((turn.talk_end, "tHandle", turn.talk_end - handle_from))
            return
        wrapup = Segment(turn.talk_end, turn.wrap_end, "wrapup", self._queue_of(turn))
        wrapup.disconnect, wrapup.q850, wrapup.subject = turn.ended_by, ended, self.subject
        wrapup.wrapups = ((turn.wrap_end, *self._wrapup_code(turn)),)
        segments.append(wrapup)
        self.wrapped[id(turn)] = (user_id, wrapup)
        metrics.append((turn.wrap_end, "tAcw", turn.wrap_end - turn.talk_end))
        metrics.append((turn.wrap_end, "tHandle", turn.wrap_end - handle_from))

    def _wrapup_code(self, turn: AgentTurn, instead_of: str | None = None) -> tuple[str, str | None]:
        if turn.timeout_wrap and instead_of is None:
            return WRAP_UP_TIMEOUT, None
        if instead_of is None and self.rng.random() < DEFAULT_WRAPUP_SHARE:
            return DEFAULT_WRAPUP_CODE_ID, None
        codes = [
            code for code in self.directory.queue_specs[turn.queue].wrapup_code_ids if code != instead_of
        ]
        return self.rng.choice(codes), self.rng.choice(
            texts.WRAPUP_NOTES
        ) if self.rng.random() < 0.3 else None

    # --- later restatements: late or changed wrap-up code; evaluations, surveys, resolution ---

    def _restatements(self) -> None:
        timeline, rng, final = self.timeline, self.rng, self.timeline.final_turn()
        if final is None:
            return
        user_id, wrapup = self.wrapped[id(final)]
        queue_id = self._queue_id(final.queue)
        if timeline.late_wrapup_at is not None and wrapup is not None:
            (at, code, note), late = wrapup.wrapups[0], timeline.late_wrapup_at
            if timeline.late_wrapup_changes_code:
                wrapup.wrapups = ((at, code, note), (late, *self._wrapup_code(final, instead_of=code)))
            else:  # the agent left wrap-up without a code; it is filled in later
                wrapup.wrapups = ((at, None, None), (late, code, note))
        add_reports(self.conversation, (rng, self.second), self.directory, timeline, queue_id, user_id)
