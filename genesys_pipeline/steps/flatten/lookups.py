"""`Lookups`: the id -> name listings that names are resolved from; `ArrowLookup`: one of them as
Arrow arrays, to resolve a whole column at once."""

from __future__ import annotations

import dataclasses
from types import MappingProxyType
from typing import Any, Iterable, Mapping

import pyarrow as pa
import pyarrow.compute as pc

from genesys_pipeline.steps.flatten.pool import POOL

# Wrap-up codes that conversations carry but GET /api/v2/routing/wrapupcodes does not list, with their
# documented names. The Default Wrap-up Code has one id in every org; public integrations add it to
# their catalogues by hand because the listing lacks it. The other system codes (ININ-WRAP-UP-TIMEOUT,
# ININ-WRAP-UP-SKIPPED, ININ-OUTBOUND-..., an open-ended set) have no documented names: they are
# recognised by their ININ- prefix and kept as they are (fields.SYSTEM_WRAPUP_PREFIX), not listed here.
# An org whose listing does return one of these ids keeps the listed name.
UNLISTED_WRAPUP_CODES: Mapping[str, str] = MappingProxyType({
    "7fb334b0-0e9e-11e4-9191-0800200c9a66": "Default Wrap-up Code",
})  # fmt: skip


@dataclasses.dataclass(frozen=True)
class Lookups:
    """Id -> name for queues, wrap-up codes, users (every state, deleted included) and divisions."""

    queues: Mapping[str, str] = dataclasses.field(default_factory=dict)
    wrapup_codes: Mapping[str, str] = dataclasses.field(default_factory=dict)
    users: Mapping[str, str] = dataclasses.field(default_factory=dict)
    divisions: Mapping[str, str] = dataclasses.field(default_factory=dict)

    @classmethod
    def from_listings(
        cls,
        *,
        queues: Iterable[Mapping[str, Any]] = (),
        wrapup_codes: Iterable[Mapping[str, Any]] = (),
        users: Iterable[Mapping[str, Any]] = (),
        divisions: Iterable[Mapping[str, Any]] = (),
    ) -> Lookups:
        """From API entities (`{"id": ..., "name": ..., ...}`); entities without both are skipped. The
        wrap-up codes also resolve `UNLISTED_WRAPUP_CODES`, unless the listing names them itself."""
        codes = {**UNLISTED_WRAPUP_CODES, **_names(wrapup_codes)}
        return cls(_names(queues), codes, _names(users), _names(divisions))

    @classmethod
    def from_client(cls, client: Any) -> Lookups:
        """Read the four listings through a `GenesysClient` (users with `state=any`: deleted agents
        still appear in historical conversations)."""
        return cls.from_listings(
            queues=client.iter_queues(),
            wrapup_codes=client.iter_wrapup_codes(),
            users=client.iter_users(state="any"),
            divisions=client.iter_divisions(),
        )

    def sizes(self) -> dict[str, int]:
        return {"queues": len(self.queues), "wrapup_codes": len(self.wrapup_codes),
                "users": len(self.users), "divisions": len(self.divisions)}  # fmt: skip


def _names(entities: Iterable[Mapping[str, Any]]) -> dict[str, str]:
    names = {}
    for entity in entities:
        entity_id, name = entity.get("id"), entity.get("name")
        if isinstance(entity_id, str) and isinstance(name, str):
            names[entity_id] = name
    return names


class ArrowLookup:
    """One id -> name mapping as two Arrow arrays, for vectorised lookups (null when unknown)."""

    def __init__(self, names: Mapping[str, str]) -> None:
        self.ids = pa.array(list(names), pa.string(), memory_pool=POOL)
        self.names = pa.array(list(names.values()), pa.string(), memory_pool=POOL)

    def __call__(self, ids: pa.Array) -> pa.Array:
        return pc.take(self.names, pc.index_in(ids, value_set=self.ids, memory_pool=POOL), memory_pool=POOL)
