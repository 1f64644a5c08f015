"""The synthetic centre's outbound campaigns: who the dialer calls for, and through which queue.

Campaigns are not a lookup the pipeline reads (no listing is emulated); their ids appear on the
sessions of campaign calls (`outboundCampaignId`, `outboundContactListId`, `outboundContactId`), and
the participant the dialer places the call from carries the campaign's name (genesys-api.md s5.3).
"""

from __future__ import annotations

import dataclasses
from typing import Callable

# (name, agentless): agent-assisted campaigns hand answered calls to a queue; agentless ones play a
# message from a flow, and the dialer's own leg carries the wrap-up.
CAMPAIGNS: tuple[tuple[str, bool], ...] = (
    ('Renewals, "win-back" Q2', False),
    ("Überfällige Rechnungen – Erinnerung", False),
    ("Appointment reminders 📅", True),
    ("Rappels de rendez-vous\n(SMS opt-out)", True),
)


@dataclasses.dataclass(frozen=True, slots=True)
class CampaignSpec:
    id: str
    name: str
    contact_list_id: str
    agentless: bool
    flow_id: str  # agentless: the outbound call flow a person who answers is transferred to
    flow_name: str


def make_campaigns(new_id: Callable[[], str]) -> tuple[CampaignSpec, ...]:
    return tuple(
        CampaignSpec(new_id(), name, new_id(), agentless, new_id(), f"{name.splitlines()[0]} (message)")
        for name, agentless in CAMPAIGNS
    )
