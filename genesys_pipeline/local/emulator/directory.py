"""The synthetic contact centre's configuration: divisions, queues, wrap-up codes, users and flows.

`Directory` builds the lookup entities exactly as the real API returns them (genesys-api.md s6; key
order and fields as in the v269 SDK models) plus compact routing tables (`QueueSpec`, `AgentSpec`)
that the conversation generator draws from. Everything derives from the seed alone.
"""

from __future__ import annotations

import dataclasses
import itertools
import random
import unicodedata
from typing import Any

from . import texts
from .campaigns import make_campaigns
from .ids import derive_key, iso_ms, uuid_from_bits

AGENT_COUNT = 50
SUPERVISOR_COUNT, QA_COUNT, ADMIN_COUNT = 4, 3, 3
DELETED_AGENTS, INACTIVE_AGENTS = 6, 6
# Relative chance of an agent taking a contact: leavers still appear in conversations, because
# history outlives staff (the pipeline must resolve them with state=any).
STATE_WEIGHT = {"active": 1.0, "inactive": 0.35, "deleted": 0.35}
# Service-level target per media type: contacts answered later get nOverSla.
SERVICE_LEVEL_MS = {
    "voice": 20_000,
    "callback": 600_000,
    "chat": 60_000,
    "message": 300_000,
    "email": 14_400_000,
}
_MEDIA_SETTINGS_KEYS = (
    ("call", "voice"),
    ("callback", "callback"),
    ("chat", "chat"),
    ("email", "email"),
    ("message", "message"),
)
# The routes the conversation generator asks for, and the weight column of texts.QUEUES for each.
_ROUTES = (
    ("inbound", "voice"),
    ("transfer", "voice"),
    ("outbound", "voice"),
    ("inbound", "callback"),
    ("inbound", "chat"),
    ("inbound", "message"),
    ("inbound", "email"),
)
_ROUTE_COLUMNS = {"inbound": 4, "transfer": 5, "outbound": 6}
# The Default Wrap-up Code: one id in every org, found on agents' wrap-up segments in real records, and
# (as far as public integrations show, UNCONFIRMED by Genesys) not returned by the wrap-up code listing.
# Integrations add it to their catalogues themselves; EmulatorConfig.list_default_wrapup_code lists it.
DEFAULT_WRAPUP_CODE_ID = "7fb334b0-0e9e-11e4-9191-0800200c9a66"
DEFAULT_WRAPUP_CODE_NAME = "Default Wrap-up Code"
_ENTITY_EPOCH_MS = 1_546_300_800_000  # 2019-01-01: entities were created between this and 2024-01-01
_ENTITY_SPAN_MS = 5 * 365 * 86_400_000


@dataclasses.dataclass(frozen=True, slots=True)
class AgentSpec:
    user_id: str
    name: str
    state: str  # active | inactive | deleted


@dataclasses.dataclass(frozen=True, slots=True)
class QueueSpec:
    id: str
    name: str
    division_id: str
    alert_timeout_ms: int  # how long an agent is alerted before the contact goes back to the queue (RONA)
    acw_timeout_ms: int  # wrap-up time after which ININ-WRAP-UP-TIMEOUT is applied
    members: tuple[int, ...]  # indices into Directory.agents
    member_cum_weights: tuple[float, ...]
    wrapup_code_ids: tuple[str, ...]


class Directory:
    def __init__(self, seed: int) -> None:
        self._seed = seed
        rng = random.Random(derive_key(seed, "directory"))
        self._ids = itertools.count()
        self.divisions = self._make_divisions()
        self.home_division_id: str = self.divisions[0]["id"]
        self.users, self.agents, self.evaluator_ids, admin_ids = self._make_users(rng)
        self.wrapup_codes = self._make_wrapup_codes(rng, admin_ids)
        self.ivr_flows = tuple((self._new_id(), name) for name in texts.IVR_FLOWS)
        self.in_queue_flow = (self._new_id(), texts.IN_QUEUE_FLOW)
        self.evaluation_forms = tuple((self._new_id(), name) for name in texts.EVALUATION_FORMS)
        self.survey_forms = tuple((self._new_id(), name, self._new_id()) for name in texts.SURVEY_FORMS)
        self.edge_ids = tuple(self._new_id() for _ in range(3))
        self.queue_specs, self.queues = self._make_queues(rng, admin_ids)
        self._routes = {(route, media): self._route_table(route, media) for route, media in _ROUTES}
        self.campaigns = make_campaigns(self._new_id)  # after every other id, which stay as they were
        # Ids added later still, so that the ids above stay as they were: the evaluation forms' context
        # ids (one per form, whatever its version) and the flow outcomes, by name.
        self.evaluation_context_ids = {form_id: self._new_id() for form_id, _ in self.evaluation_forms}
        outcome_names = dict.fromkeys(n for names in texts.IVR_FLOW_OUTCOMES for n in names)
        self.flow_outcome_ids = {name: self._new_id() for name in [*outcome_names, *texts.CAMPAIGN_FLOW_OUTCOMES]}
        self.flow_outcomes = self._make_flow_outcomes()
        for entities in (self.divisions, self.users, self.wrapup_codes, self.queues, self.flow_outcomes):
            entities.sort(key=lambda entity: (entity["name"], entity["id"]))

    # --- routing, used by the conversation generator ---

    def route(self, rng: random.Random, route: str, media: str, exclude: int = -1) -> int:
        """Index of the queue a contact goes to: `route` is inbound, transfer or outbound."""
        queues, cum_weights = self._routes[(route, media)]
        while True:
            queue = rng.choices(queues, cum_weights=cum_weights)[0]
            if queue != exclude or len(queues) == 1:
                return queue

    def pick_agent(self, rng: random.Random, queue: int, exclude: tuple[str, ...] = ()) -> AgentSpec:
        """A member of `queue` other than the agents already in the conversation (at most 4, while every
        queue has at least 6 members), more often an active one."""
        spec = self.queue_specs[queue]
        while True:
            agent = self.agents[rng.choices(spec.members, cum_weights=spec.member_cum_weights)[0]]
            if agent.user_id not in exclude:
                return agent

    @staticmethod
    def _route_table(route: str, media: str) -> tuple[tuple[int, ...], tuple[float, ...]]:
        column = _ROUTE_COLUMNS[route]
        chosen = [(i, q[column]) for i, q in enumerate(texts.QUEUES) if media in q[2] and q[column] > 0]
        return tuple(i for i, _ in chosen), tuple(itertools.accumulate(w for _, w in chosen))

    # --- entities ---

    def _new_id(self) -> str:
        return uuid_from_bits(derive_key(self._seed, f"entity-{next(self._ids)}", 128))

    @staticmethod
    def _ref(entity: dict[str, Any]) -> dict[str, str]:
        return {"id": entity["id"], "name": entity["name"], "selfUri": entity["selfUri"]}

    def _make_divisions(self) -> list[dict[str, Any]]:
        divisions = []
        for number, (name, description) in enumerate(texts.DIVISIONS):
            division_id = self._new_id()
            divisions.append(
                {
                    "id": division_id,
                    "name": name,
                    "description": description,
                    "homeDivision": number == 0,
                    "selfUri": f"/api/v2/authorization/divisions/{division_id}",
                }
            )
        return divisions

    def _make_flow_outcomes(self) -> list[dict[str, Any]]:
        """FlowOutcome entities (GET /api/v2/flows/outcomes): the records name outcomes by id only."""
        home = self._ref(next(d for d in self.divisions if d["id"] == self.home_division_id))
        flows_by_outcome: dict[str, list[str]] = {}
        for flow_name, names in zip(texts.IVR_FLOWS, texts.IVR_FLOW_OUTCOMES, strict=True):
            for name in names:
                flows_by_outcome.setdefault(name, []).append(flow_name)
        for name in texts.CAMPAIGN_FLOW_OUTCOMES:
            flows_by_outcome[name] = ["the agentless campaigns' message flows"]
        return [
            {"id": outcome_id, "name": name, "division": home,
             "description": "Set by " + ", ".join(flows_by_outcome[name]),
             "selfUri": f"/api/v2/flows/outcomes/{outcome_id}"}
            for name, outcome_id in self.flow_outcome_ids.items()
        ]  # fmt: skip

    def _make_users(
        self, rng: random.Random
    ) -> tuple[list[dict[str, Any]], tuple[AgentSpec, ...], tuple[str, ...], tuple[str, ...]]:
        roles = (
            [("Contact Centre Agent", 1)] * AGENT_COUNT
            + [("Team Lead", 0)] * SUPERVISOR_COUNT
            + [("Quality Analyst", 0)] * QA_COUNT
            + [("Administrator", 0)] * ADMIN_COUNT
        )
        all_names = [f"{first} {last}" for first in texts.FIRST_NAMES for last in texts.LAST_NAMES]
        generated = iter(rng.sample(all_names, len(roles)))
        hostile_positions = rng.sample(range(AGENT_COUNT), len(texts.HOSTILE_STAFF))
        hostile_slots = dict(zip(hostile_positions, texts.HOSTILE_STAFF, strict=True))
        leavers = rng.sample(range(AGENT_COUNT), DELETED_AGENTS + INACTIVE_AGENTS)
        states = {i: "deleted" for i in leavers[:DELETED_AGENTS]} | {
            i: "inactive" for i in leavers[DELETED_AGENTS:]
        }
        supervisors = range(AGENT_COUNT, AGENT_COUNT + SUPERVISOR_COUNT)
        ids = [self._new_id() for _ in roles]
        users, agents = [], []
        for number, (title, is_agent) in enumerate(roles):
            name = hostile_slots.get(number) or next(generated)
            state = states.get(number, "active")
            division = (
                self.divisions[rng.randrange(1, len(self.divisions))] if is_agent else self.divisions[0]
            )
            email = f"{_ascii_slug(name) or 'user'}.{number + 1}@example.com"
            user: dict[str, Any] = {
                "id": ids[number],
                "name": name,
                "division": self._ref(division),
                "chat": {"jabberId": f"{ids[number].replace('-', '')[:24]}@conference.example.orgspan.com"},
                "department": texts.DEPARTMENTS[rng.randrange(len(texts.DEPARTMENTS))]
                if is_agent
                else "Operations",
                "email": email,
                "primaryContactInfo": [{"address": email, "mediaType": "EMAIL", "type": "PRIMARY"}],
                "addresses": [],
                "state": state,
                "title": title,
                "username": email,
            }
            if rng.random() < 0.6:
                phone = f"+1312555{rng.randrange(10_000):04d}"
                user["addresses"] = [
                    {"address": phone, "display": phone, "mediaType": "PHONE", "type": "WORK"}
                ]
            if is_agent:
                manager = ids[rng.choice(supervisors)]
                user["manager"] = {"id": manager, "selfUri": f"/api/v2/users/{manager}"}
                agents.append(AgentSpec(ids[number], name, state))
            user["version"] = rng.randint(1, 14)
            user["acdAutoAnswer"] = False
            user["selfUri"] = f"/api/v2/users/{ids[number]}"
            users.append(user)
        qa_start = AGENT_COUNT + SUPERVISOR_COUNT
        return (
            users,
            tuple(agents),
            tuple(ids[qa_start : qa_start + QA_COUNT]),
            tuple(ids[qa_start + QA_COUNT :]),
        )

    def _entity_dates(self, rng: random.Random) -> tuple[str, str]:
        created = _ENTITY_EPOCH_MS + rng.randrange(_ENTITY_SPAN_MS)
        return iso_ms(created), iso_ms(created + rng.randrange(_ENTITY_EPOCH_MS + _ENTITY_SPAN_MS - created))

    def _make_wrapup_codes(self, rng: random.Random, admin_ids: tuple[str, ...]) -> list[dict[str, Any]]:
        codes = []
        for name in texts.WRAPUP_CODES:
            code_id = self._new_id()
            created, modified = self._entity_dates(rng)
            division = (
                self.divisions[0]
                if rng.random() < 0.7
                else self.divisions[rng.randrange(1, len(self.divisions))]
            )
            code: dict[str, Any] = {"id": code_id, "name": name, "division": self._ref(division)}
            if rng.random() < 0.4:
                code["description"] = f"Use when: {name}"
            code |= {
                "dateCreated": created,
                "dateModified": modified,
                "createdBy": rng.choice(admin_ids),
                "modifiedBy": rng.choice(admin_ids),
                "selfUri": f"/api/v2/routing/wrapupcodes/{code_id}",
            }
            codes.append(code)
        return codes

    def _make_queues(
        self, rng: random.Random, admin_ids: tuple[str, ...]
    ) -> tuple[tuple[QueueSpec, ...], list[dict[str, Any]]]:
        specs, queues = [], []
        always = [
            c["id"] for c in self.wrapup_codes if c["name"] in ("Resolved", "Transferred", "Customer hung up")
        ]
        optional = [c["id"] for c in self.wrapup_codes if c["id"] not in always]
        for name, division_number, _media, description, *_ in texts.QUEUES:
            queue_id, division = self._new_id(), self.divisions[division_number]
            members = tuple(sorted(rng.sample(range(len(self.agents)), rng.randint(6, 12))))
            alert_timeout_s = rng.choice((8, 12, 15, 20, 30))
            acw_timeout_ms = rng.choice((30, 60, 90, 120, 180)) * 1000
            specs.append(
                QueueSpec(
                    queue_id,
                    name,
                    division["id"],
                    alert_timeout_s * 1000,
                    acw_timeout_ms,
                    members,
                    tuple(itertools.accumulate(STATE_WEIGHT[self.agents[m].state] for m in members)),
                    tuple(always + rng.sample(optional, rng.randint(5, 9))),
                )
            )
            created, modified = self._entity_dates(rng)
            media_settings = {
                key: {
                    "enableAutoAnswer": False,
                    "alertingTimeoutSeconds": alert_timeout_s,
                    "serviceLevel": {"percentage": 0.8, "durationMs": SERVICE_LEVEL_MS[medium]},
                }
                | ({"mode": "AgentFirst"} if key == "callback" else {})
                for key, medium in _MEDIA_SETTINGS_KEYS
            }
            queue: dict[str, Any] = {
                "id": queue_id,
                "name": name,
                "division": self._ref(division),
                "description": description,
                "dateCreated": created,
                "dateModified": modified,
                "modifiedBy": rng.choice(admin_ids),
                "createdBy": rng.choice(admin_ids),
                "memberCount": len(members),
                "userMemberCount": len(members),
                "joinedMemberCount": sum(self.agents[m].state == "active" for m in members),
                "mediaSettings": media_settings,
                "scoringMethod": "TimestampAndPriority",
                "lastAgentRoutingMode": "Disabled",
                "acwSettings": {"wrapupPrompt": "MANDATORY_TIMEOUT", "timeoutMs": acw_timeout_ms},
                "skillEvaluationMethod": "ALL",
                "queueFlow": {
                    "id": self.in_queue_flow[0],
                    "name": self.in_queue_flow[1],
                    "selfUri": f"/api/v2/flows/{self.in_queue_flow[0]}",
                },
                "autoAnswerOnly": False,
                "enableTranscription": rng.random() < 0.5,
                "enableManualAssignment": False,
                "selfUri": f"/api/v2/routing/queues/{queue_id}",
            }
            queues.append(queue)
        return tuple(specs), queues


def default_wrapup_code(divisions: list[dict[str, Any]]) -> dict[str, Any]:
    """The Default Wrap-up Code as a listing that includes it would show it: in the home division."""
    home = next(division for division in divisions if division["homeDivision"])
    return {
        "id": DEFAULT_WRAPUP_CODE_ID,
        "name": DEFAULT_WRAPUP_CODE_NAME,
        "division": Directory._ref(home),
        "selfUri": f"/api/v2/routing/wrapupcodes/{DEFAULT_WRAPUP_CODE_ID}",
    }


def _ascii_slug(name: str) -> str:
    """`Zoë "Zee" Müller` -> `zoe.zee.muller`; empty for names without Latin letters."""
    folded = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode().lower()
    return ".".join(
        "".join(c for c in word if c.isalnum()) for word in folded.split() if any(c.isalnum() for c in word)
    )
