"""`Lookups`: the id -> name listings that names are resolved from; `ArrowLookup`: one of them as
Arrow arrays, to resolve a whole column at once.

The extraction reads the listings once per run and saves them next to each day's raw file
(`save_lookups`); flatten reads them from there (`load_lookups`) and so needs no API. The file holds
ids and display names only (no e-mail address or user name: the personal-data classes that cover
users apply to neither), and is written like the raw file, so it sits under the same access and
encryption.
"""

from __future__ import annotations

import dataclasses
import gzip
import io
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Iterable, Mapping

import orjson
import pyarrow as pa
import pyarrow.compute as pc

from genesys_pipeline.contracts.manifests import ManifestError
from genesys_pipeline.contracts.paths import raw_lookups_path, raw_manifest_path
from genesys_pipeline.steps.flatten.pool import POOL

if TYPE_CHECKING:  # only a type here: importing it would import Dagster into the flatten
    from genesys_pipeline.resources.working_storage import WorkingStorage

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

    def to_bytes(self) -> bytes:
        """gzip JSON, keys sorted and no name or time in the gzip header: the same names give the same bytes."""
        document = {field.name: dict(getattr(self, field.name)) for field in dataclasses.fields(self)}
        buffer = io.BytesIO()
        with gzip.GzipFile(filename="", fileobj=buffer, mode="wb", mtime=0) as compressed:
            compressed.write(orjson.dumps(document, option=orjson.OPT_SORT_KEYS))
        return buffer.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes, source: str) -> Lookups:
        try:
            document = orjson.loads(gzip.decompress(data))
            kinds = {field.name: document[field.name] for field in dataclasses.fields(cls)}
        except (OSError, EOFError, orjson.JSONDecodeError, KeyError, TypeError) as error:
            raise LookupsError(f"{source} is not a lookups file the extraction wrote ({error}): rematerialize "
                               "raw_conversations for this partition") from None  # fmt: skip
        return cls(**{kind: _checked(names, kind, source) for kind, names in kinds.items()})


class LookupsError(ManifestError):
    """A day's saved lookups are missing or unreadable; the message says what to rematerialize. A
    ManifestError: running flatten again cannot fix it, so the step fails without retries."""


def save_lookups(storage: WorkingStorage, partition_key: str, lookups: Lookups) -> None:
    with storage.writer(raw_lookups_path(partition_key)) as handle:
        handle.write(lookups.to_bytes())


def load_lookups(storage: WorkingStorage, partition_key: str) -> Lookups:
    """The names the day's extraction saved next to its raw file."""
    path = raw_lookups_path(partition_key)
    if not storage.exists(path):
        if not storage.exists(raw_manifest_path(partition_key)):
            raise FileNotFoundError(
                f"{storage.uri(raw_manifest_path(partition_key))} does not exist: materialize raw_conversations "
                f"for partition {partition_key} first"
            )
        raise LookupsError(
            f"{storage.uri(path)} does not exist: the raw files of partition {partition_key} were extracted "
            "without the names of queues, users, wrap-up codes and divisions (by an earlier version of the "
            f"pipeline). Rematerialize raw_conversations for partition {partition_key}, then this asset."
        )
    with storage.reader(path) as handle:
        return Lookups.from_bytes(handle.read(), storage.uri(path))


def _checked(names: Any, kind: str, source: str) -> dict[str, str]:
    if not isinstance(names, dict) or not all(isinstance(v, str) for v in names.values()):
        raise LookupsError(f"{source}: {kind} is not an id -> name object: rematerialize raw_conversations "
                           "for this partition")  # fmt: skip
    return names


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
