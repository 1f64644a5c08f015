"""The dimension tables: Genesys queues, wrap-up codes, users and divisions, one row per entity.

Each table is the listing as it is when loaded (a snapshot, replaced as a whole), with explicit
Snowflake types from contracts/columns.py (the load creates the tables from them),
and for every column the path of the API field it comes from. Names are kept exactly as the API
sends them (quotes, commas, line breaks, non-Latin scripts, emoji, leading '='): they are bound as
values, never written into SQL text. Users are read with `state=any`: deleted and inactive agents
still appear in historical conversations, so their names must stay resolvable.

Every table also has:
    loaded_at      when the snapshot was taken (the same instant on every row of one load)
    load_run_id    the Dagster run that loaded it

The wrap-up codes also have `listed`: FALSE on a row the load added because conversations carry the
code but the listing lacks it (the Default Wrap-up Code; steps/dimensions.py).
"""

from __future__ import annotations

import dataclasses
import json
from datetime import datetime, timezone
from typing import Any, Mapping, Optional

from genesys_pipeline.contracts.columns import (
    Column,
    Table,
    flag,
    number,
    text,
    timestamp,
)

LOADED_AT = "loaded_at"
LOAD_RUN_ID = "load_run_id"
LISTED = "listed"


class DimensionError(ValueError):
    """An entity that cannot become a row; the message names the table, the entity and the field."""


_LOAD_COLUMNS = (
    timestamp(LOADED_AT, "when this snapshot of the listing was taken", nullable=False),
    text(LOAD_RUN_ID, "Dagster run that loaded the snapshot", nullable=False),
)


@dataclasses.dataclass(frozen=True)
class Dimension:
    """One dimension table: its columns and where each comes from in an API entity."""

    table: Table
    listing: str  # the GenesysClient method that lists the entities
    listing_args: Mapping[str, Any]
    sources: Mapping[str, tuple[str, ...]]  # column -> path of keys in the entity

    @property
    def name(self) -> str:
        return self.table.name

    @property
    def id_column(self) -> str:
        (key,) = self.table.key
        return key

    @property
    def column_names(self) -> list[str]:
        return self.table.column_names

    def row(
        self, entity: Mapping[str, Any], loaded_at: datetime, run_id: str, listed: bool = True
    ) -> tuple[Any, ...]:
        """The entity's values in column order, converted to the columns' types. `listed`: whether the
        entity came from the listing (only tables with a `listed` column record it)."""
        values: list[Any] = []
        for column in self.table.columns:
            if column.name == LOADED_AT:
                values.append(loaded_at)
            elif column.name == LOAD_RUN_ID:
                values.append(run_id)
            elif column.name == LISTED:
                values.append(listed)
            else:
                raw = _field(entity, self.sources[column.name])
                values.append(_convert(raw, column, self.name, entity))
        return tuple(values)


def _dimension(
    name: str, description: str, listing: str, columns: tuple[tuple[Column, tuple[str, ...]], ...],
    listing_args: Optional[Mapping[str, Any]] = None, extra: tuple[Column, ...] = (),
) -> Dimension:  # fmt: skip
    """`extra`: columns the load fills itself (not from an entity field), before the load columns."""
    table = Table(
        name,
        key=(columns[0][0].name,),
        columns=tuple(column for column, _ in columns) + extra + _LOAD_COLUMNS,
        description=description,
    )
    return Dimension(table, listing, dict(listing_args or {}), {column.name: path for column, path in columns})


_DIVISION = (
    (text("division_id", "the entity's division"), ("division", "id")),
    (text("division_name"), ("division", "name")),
)
_AUDIT = (
    (timestamp("date_created"), ("dateCreated",)),
    (timestamp("date_modified"), ("dateModified",)),
    (text("created_by", "userId"), ("createdBy",)),
    (text("modified_by", "userId"), ("modifiedBy",)),
)

QUEUES = _dimension(
    "dim_queues",
    "One row per routing queue (GET /api/v2/routing/queues).",
    "iter_queues",
    (
        (text("queue_id", nullable=False), ("id",)),
        (text("name"), ("name",)),
        (text("description"), ("description",)),
        *_DIVISION,
        (number("member_count"), ("memberCount",)),
        (number("user_member_count"), ("userMemberCount",)),
        (number("joined_member_count"), ("joinedMemberCount",)),
        (text("acw_wrapup_prompt", "MANDATORY, MANDATORY_TIMEOUT, OPTIONAL, ..."), ("acwSettings", "wrapupPrompt")),
        (number("acw_timeout_ms"), ("acwSettings", "timeoutMs")),
        (text("skill_evaluation_method"), ("skillEvaluationMethod",)),
        (flag("enable_transcription"), ("enableTranscription",)),
        *_AUDIT,
    ),
)

WRAPUP_CODES = _dimension(
    "dim_wrapup_codes",
    "One row per wrap-up code (GET /api/v2/routing/wrapupcodes), plus the Default Wrap-up Code, which "
    "conversations carry but the listing lacks (listed = FALSE, id and name only). Other system codes "
    "such as ININ-WRAP-UP-TIMEOUT are not listed by the API; the conversation tables keep them as they are.",
    "iter_wrapup_codes",
    (
        (text("wrapup_code_id", nullable=False), ("id",)),
        (text("name"), ("name",)),
        (text("description"), ("description",)),
        *_DIVISION,
        *_AUDIT,
    ),
    extra=(flag(LISTED, "FALSE: not in the listing, added by the load (a code the API uses unlisted)",
                nullable=False),),
)

USERS = _dimension(
    "dim_users",
    "One row per user in every state: active, inactive and deleted (GET /api/v2/users?state=any).",
    "iter_users",
    (
        (text("user_id", nullable=False), ("id",)),
        (text("name"), ("name",)),
        (text("state", "active, inactive or deleted"), ("state",)),
        (text("email"), ("email",)),
        (text("username"), ("username",)),
        (text("title"), ("title",)),
        (text("department"), ("department",)),
        *_DIVISION,
        (text("manager_id", "userId of the manager"), ("manager", "id")),
        (number("version"), ("version",)),
    ),
    listing_args={"state": "any"},
)

DIVISIONS = _dimension(
    "dim_divisions",
    "One row per division (GET /api/v2/authorization/divisions).",
    "iter_divisions",
    (
        (text("division_id", nullable=False), ("id",)),
        (text("name"), ("name",)),
        (text("description"), ("description",)),
        (flag("home_division", "the organisation's default division"), ("homeDivision",)),
    ),
)

DIMENSIONS: tuple[Dimension, ...] = (QUEUES, WRAPUP_CODES, USERS, DIVISIONS)


# ##### VALUES


def _field(entity: Mapping[str, Any], path: tuple[str, ...]) -> Any:
    value: Any = entity
    for key in path:
        if not isinstance(value, Mapping):
            return None
        value = value.get(key)
    return value


def _convert(value: Any, column: Column, table: str, entity: Mapping[str, Any]) -> Any:
    if value is None:
        if not column.nullable:
            raise DimensionError(f"{table}: an entity has no {column.name}: {_describe(entity)}")
        return None
    kind = column.snowflake_type
    try:
        if kind == "VARCHAR":
            if isinstance(value, str):
                return value  # exactly as sent
            if isinstance(value, (bool, int, float)):
                return json.dumps(value)
        elif kind.startswith("NUMBER"):
            if isinstance(value, int) and not isinstance(value, bool):
                return value
        elif kind == "BOOLEAN":
            if isinstance(value, bool):
                return value
        elif kind == "TIMESTAMP_TZ":
            if isinstance(value, str):
                parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
                if parsed.tzinfo is not None:
                    return parsed.astimezone(timezone.utc)
    except ValueError:
        pass
    raise DimensionError(
        f"{table}.{column.name}: {value!r} is not a {kind} value (entity {_describe(entity)})"
    )


def _describe(entity: Mapping[str, Any]) -> str:
    return repr(entity.get("id")) if isinstance(entity, Mapping) and entity.get("id") else repr(entity)[:200]
