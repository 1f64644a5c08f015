"""The participants of calls that a dialler or an agent places, a part of `builder._Builder`: agent-dialled
voice calls, the call-back of a callback, and outbound campaign calls (shapes.py).

For campaign calls, genesys-api.md s5.3 and genesys-api-more.md s3.2: the dialer places the call from a participant of
purpose `outbound` named after the campaign; every session of the call carries `outboundCampaignId`,
`outboundContactListId` and `outboundContactId` (`parties.Parties.scalars`); the dialer's session has
the call analysis (`dispositionAnalyzer`, `dispositionName`) and the outbound metrics. The contacted
party is the `customer`. A person is handed to the campaign's queue (`acd`, then the `agent`, who
wraps up) or, in an agentless campaign, to the campaign's flow (`ivr`, flowType OUTBOUNDCALL); when
no agent wraps the call up, the dialer's leg ends with a `wrapup` segment of its own.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .flows import campaign_flow_exit
from .records import Participant, Segment, Session, make_session

if TYPE_CHECKING:
    from .builder import Metrics, _Builder
    from .scenarios import AgentTurn

# Call analysis -> how the dialer's contacting segment ends.
_CONTACTING_ENDS = {"person": "transfer", "machine": "endpoint", "noanswer": "timeout", "busy": "peer",
                    "sit": "uncallable"}  # fmt: skip


class DialerParts:
    def _campaign_call(self: _Builder) -> None:
        call = self.timeline.campaign
        assert call is not None
        spec = self.directory.campaigns[call.campaign]
        add = self.conversation.participants.append
        add(self._dialer_leg())
        add(Participant(self.parties.head("customer", self.parties.phone), [self._dialled_party()]))
        if call.flow_end is not None:
            add(self._campaign_flow(spec.flow_id, spec.flow_name))
        for visit in self.timeline.visits:
            self._visit(visit, first=False)

    def _dialer_leg(self: _Builder) -> Participant:
        timeline, parties = self.timeline, self.parties
        call, dial = timeline.campaign, timeline.dial
        assert call is not None and dial is not None
        spec = self.directory.campaigns[call.campaign]
        scalars = parties.scalars("outbound", peer=False)
        scalars["sessionId"] = parties.origin_session_id  # the dialer's call starts the conversation
        callable_ = "uncallable" if call.disposition == "sit" else "callable"
        scalars["dispositionName"] = f"disposition.classification.{callable_}.{call.disposition}"
        if dial.answered:
            scalars["dispositionAnalyzer"] = f"speech.{call.disposition}"
        segments = [
            Segment(dial.start, dial.contacting, "dialing"),
            Segment(dial.contacting, dial.connected, "contacting", disconnect=_CONTACTING_ENDS[call.disposition]),
        ]
        metrics = [
            (dial.start, "nOutbound", 1),
            (dial.start, "nOutboundAttempted", 1),
            (dial.contacting, "tDialing", dial.contacting - dial.start),
            (dial.connected, "tContacting", dial.connected - dial.contacting),
        ]
        if dial.answered:
            metrics.append((dial.connected, "nOutboundConnected", 1))
        if timeline.visits and timeline.visits[0].agent is None:  # a person answered, no agent was free
            metrics.append((timeline.visits[0].end, "nOutboundAbandoned", 1))
        if call.wrap_start is not None and call.wrap_end is not None:
            wrapup = Segment(call.wrap_start, call.wrap_end, "wrapup", disconnect="system")
            code = call.system_code
            if code is None:  # an agentless campaign's flow set one of the org's codes
                queue = self.directory.route(self.rng, "outbound", "voice")
                code = self.rng.choice(self.directory.queue_specs[queue].wrapup_code_ids)
            wrapup.wrapups = ((call.wrap_end, code, None),)
            segments.append(wrapup)
        return Participant(parties.head("outbound", spec.name), [make_session(scalars, segments, metrics)])

    def _campaign_flow(self: _Builder, flow_id: str, flow_name: str) -> Participant:
        timeline, parties = self.timeline, self.parties
        call, dial = timeline.campaign, timeline.dial
        assert call is not None and dial is not None and call.flow_end is not None
        flow: dict[str, Any] = {"entryType": "outbound", "flowId": flow_id, "flowName": flow_name,
                                "flowType": "OUTBOUNDCALL", "flowVersion": "3.0"}  # fmt: skip
        exited = flow | {"exitReason": "FLOW_DISCONNECT"}
        start, end = dial.connected + self.rng.randint(50, 300), call.flow_end
        segments = [Segment(start, end, "ivr", disconnect="endpoint", q850=True)]
        metrics = [(start, "nFlow", 1), (end, "tIvr", end - start), (end, "tFlow", end - start),
                   (end, "tFlowDisconnect", end - start)]  # fmt: skip
        exited, outcome_metrics = campaign_flow_exit(self.second, self.directory, flow, exited, start, end)
        session: Session = make_session(
            parties.scalars("outbound", peer=True), segments, metrics + outcome_metrics,
            flow=flow, flow_exited=(end, exited),
        )  # fmt: skip
        return Participant(parties.head("ivr", flow_name), [session])

    # --- agent-placed calls: voice outbound, and the call-back of a callback ---

    def _dial_segments(self: _Builder, turn: AgentTurn, queue_id: str) -> tuple[list[Segment], Metrics]:
        dial = self.timeline.dial
        assert dial is not None
        segments = [
            Segment(dial.start, dial.contacting, "dialing", queue_id),
            Segment(dial.contacting, dial.connected, "contacting", queue_id),
        ]
        metrics = [
            (dial.contacting, "tDialing", dial.contacting - dial.start),
            (dial.connected, "tContacting", dial.connected - dial.contacting),
        ]
        if dial.answered:
            self._talk(segments, metrics, dial.connected, turn.talk_end, queue_id)
        return segments, metrics

    def _dialled_party(self: _Builder) -> Session:
        """The customer's side of an agent-placed call: ringing, then talking if answered."""
        dial, end = self.timeline.dial, self.timeline.customer_end
        assert dial is not None
        scalars = self.parties.scalars("outbound", peer=False, media="voice")
        scalars |= {"peerId": self.parties.origin_session_id, "recording": True}
        segments = [
            Segment(dial.contacting, dial.connected, "alert", disconnect=None if dial.answered else "peer")
        ]
        metrics: Metrics = []
        if dial.answered:
            disconnect = "endpoint" if self._customer_hangs_up() else "peer"
            segments.append(Segment(dial.connected, end, "interact", disconnect=disconnect, q850=True))
            metrics = [(dial.connected, "nConnected", 1), (end, "tConnected", end - dial.connected)]
        return make_session(scalars, segments, metrics)

    def _voice_outbound(self: _Builder) -> None:
        timeline, turn, parties = self.timeline, self.timeline.dial_turn, self.parties
        assert turn is not None
        spec = self.directory.queue_specs[turn.queue]
        self.conversation.divisions.append((timeline.start, spec.division_id))
        head, user_id = self._agent_head(turn)
        scalars = parties.scalars("outbound", peer=False)
        scalars["sessionId"] = parties.origin_session_id  # the agent's call starts the conversation
        segments, metrics = self._dial_segments(turn, spec.id)
        metrics.append((timeline.start, "nOutbound", 1))
        self._wrapup(segments, metrics, turn, user_id, handle_from=timeline.start)
        stats = [parties.media_stat(turn.talk_end)]
        purpose = "external" if self.rng.random() < 0.6 else "customer"
        self.conversation.participants += [
            Participant(head, [make_session(scalars, segments, metrics, stats=stats)]),
            Participant(parties.head(purpose, parties.phone), [self._dialled_party()]),
        ]

    def _callback_agent(self: _Builder, turn: AgentTurn, offered_at: int) -> Participant:
        """Alerted with the callback, previews it, then calls the customer on a second (voice) session."""
        dial = self.timeline.dial
        assert dial is not None
        head, user_id = self._agent_head(turn)
        queue_id = self._queue_id(turn.queue)
        callback_segments = [
            Segment(turn.alert, turn.answer, "alert", queue_id),
            Segment(turn.answer, dial.start, "callback", queue_id),
        ]
        callback_metrics = [
            (turn.answer, "tAlert", turn.answer - turn.alert),
            (turn.answer, "tAnswered", turn.answer - offered_at),
        ]
        segments, metrics = self._dial_segments(turn, queue_id)
        self._wrapup(segments, metrics, turn, user_id, handle_from=turn.answer)
        callback_scalars = self.parties.scalars("inbound", peer=True, routed=True)
        voice_scalars = self.parties.scalars("outbound", peer=True, media="voice")
        stats = [self.parties.media_stat(turn.talk_end)]
        return Participant(head, [
            make_session(callback_scalars, callback_segments, callback_metrics),
            make_session(voice_scalars, segments, metrics, stats=stats),
        ])  # fmt: skip
