"""Who takes part in one conversation, and the fields their sessions share.

`Parties` draws the conversation's identities once (the customer's number and name, the dialled
number, the edge, the email subject...) and then makes participant heads and session scalars that
agree with each other: every session's `peerId` points at the session that started the conversation,
`ani`/`dnis` are swapped on agent-placed calls, message and email sessions carry their addresses.
"""

from __future__ import annotations

import random
from typing import Any

from . import texts
from .campaigns import CampaignSpec
from .ids import uuid_from_bits
from .records import MediaStat
from .scenarios import Timeline

_MESSAGE_TYPES = (
    ("sms", "SMS"),
    ("whatsapp", "WhatsApp"),
    ("facebook", "FacebookMessenger"),
    ("webmessaging", None),  # no engagementSource for web messaging
)
_DNIS = ("tel:+13125550100", "tel:+18005550199", "tel:+13125550142")
_BUSINESS_SMS_NUMBER = "+13125550150"


class Parties:
    def __init__(
        self,
        rng: random.Random,
        timeline: Timeline,
        conversation_id: str,
        edge_ids: tuple[str, ...],
        campaign: CampaignSpec | None = None,
        *,
        second: random.Random,
    ):
        self.rng, self.timeline, self.media = rng, timeline, timeline.media
        self.second = second  # the conversation's second stream (restatements.py)
        self.phone = f"1{rng.randrange(201_000_0000, 989_999_9999)}"
        self.customer_name = rng.choice(texts.CUSTOMER_NAMES)
        self.dnis = rng.choice(_DNIS)
        self.edge_id = rng.choice(edge_ids)
        self.show_agent_names = rng.random() < 0.4  # agents' participantName is often absent [OBS]
        self.message_type, self.engagement_source = rng.choice(_MESSAGE_TYPES)
        self.subject = rng.choice(texts.EMAIL_SUBJECTS) if self.media == "email" else None
        self.room_id = f"{conversation_id}@conference.example.orgspan.com"
        self.origin_session_id = self.uuid()  # the session that starts the conversation: everyone's peerId
        # A campaign call: every session is outbound and names the campaign, its contact list and the
        # contact dialled (drawn last, so that other conversations draw exactly as before).
        self.campaign_fields: dict[str, str] = {}
        if campaign is not None:
            self.campaign_fields = {
                "outboundCampaignId": campaign.id,
                "outboundContactId": f"{rng.getrandbits(128):032x}",
                "outboundContactListId": campaign.contact_list_id,
            }

    def uuid(self) -> str:
        return uuid_from_bits(self.rng.getrandbits(128))

    def head(self, purpose: str, name: str | None = None, user_id: str | None = None) -> dict[str, Any]:
        """A participant's scalar fields, in the API's order."""
        head: dict[str, Any] = {}
        if purpose in ("customer", "external") and self.rng.random() < 0.3:
            head["externalContactId"] = self.uuid()
        head["participantId"] = self.uuid()
        if name is not None:
            head["participantName"] = name
        head["purpose"] = purpose
        if user_id is not None:
            head["userId"] = user_id
        return head

    def scalars(
        self, direction: str, *, peer: bool, routed: bool = False, media: str | None = None
    ) -> dict[str, Any]:
        """A session's scalar fields; `direction` outbound is an agent-placed call, `peer` is every
        session but the one that started the conversation, `routed` a session that went through ACD."""
        media = media or self.media
        if self.campaign_fields:
            direction = "outbound"
        scalars: dict[str, Any] = {"direction": direction, "mediaType": media, "sessionId": self.uuid()}
        scalars |= self.campaign_fields
        if peer:
            scalars["peerId"] = self.origin_session_id
        if routed:
            scalars |= {"requestedRoutings": ["Standard"], "usedRouting": "Standard"}
        if media == "voice":
            tel = f"tel:+{self.phone}"
            ani, dnis = (tel, self.dnis) if direction == "inbound" else (self.dnis, tel)
            scalars |= {"ani": ani, "dnis": dnis, "edgeId": self.edge_id, "protocolCallId": self.uuid()}
            scalars |= {"provider": "Edge", "sessionDnis": dnis}
            if peer:
                scalars["remote"] = self.phone
        elif media == "message":
            scalars |= {"addressFrom": f"+{self.phone}", "addressTo": _BUSINESS_SMS_NUMBER}
            scalars["messageType"] = self.message_type
            if self.engagement_source and self.rng.random() < 0.5:
                scalars["engagementSource"] = self.engagement_source
        elif media == "email":
            scalars |= {
                "addressFrom": f"customer{self.phone[-4:]}@example.net",
                "addressTo": "support@example.com",
            }
        elif media == "chat":
            scalars["roomId"] = self.room_id
        elif media == "callback":
            scalars |= {"callbackNumbers": [f"tel:+{self.phone}"], "callbackUserName": self.customer_name}
        return scalars

    def media_stat(self, at: int, trunk: bool = False) -> MediaStat:
        """Voice quality measured on a leg at `at` (never after the conversation's end): G.711 on the
        carrier's trunk (the customer's and the IVR's legs), Opus on the agents' WebRTC phones. Most
        legs lose a few packets in a thousand, one in twenty a few per cent."""
        mos = round(self.rng.uniform(3.6, 4.9), 6)
        received = self.rng.randint(200, 60_000)
        stat = MediaStat(
            min(at, self.timeline.end),
            "audio/PCMU" if trunk else "audio/opus",
            self.rng.randint(20, 90),
            mos,
            round(mos * 18.9, 4),
            received,
        )
        second = self.second
        lost_share = second.uniform(0.01, 0.05) if second.random() < 0.05 else second.uniform(0, 0.004)
        stat.discarded_packets = int(received * lost_share)
        stat.underrun_packets = int(stat.discarded_packets * second.uniform(0.3, 0.7))
        stat.overrun_packets = int(stat.discarded_packets * second.uniform(0, 0.2))
        stat.duplicate_packets = second.choice((0, 0, 0, 1, 2, 5))
        stat.invalid_packets = second.choice((0,) * 9 + (second.randint(1, 12),))
        return stat
