"""Page-number entity listings for queues, wrap-up codes, users, divisions and flow outcomes (genesys-api.md s6)."""

from __future__ import annotations

import math
from typing import Any
from urllib.parse import urlencode

from .directory import default_wrapup_code
from .errors import bad_request


def lookup_entities(centre: Any, kind: str, list_default_wrapup_code: bool) -> list[dict[str, Any]]:
    """What the API lists (and gets by id) of `kind`: the centre's entities, and with
    `list_default_wrapup_code` the Default Wrap-up Code among the wrap-up codes, in name order."""
    entities: list[dict[str, Any]] = getattr(centre, kind)
    if kind == "wrapup_codes" and list_default_wrapup_code:
        entities = sorted([*entities, default_wrapup_code(centre.divisions)], key=lambda e: (e["name"], e["id"]))
    return entities


def multi_values(params: dict[str, list[str]], name: str) -> list[str]:
    """A multi-value query parameter, sent repeated (`id=a&id=b`) or comma-joined (`id=a,b`)."""
    return [value for raw in params.get(name, []) for value in raw.split(",") if value]


def filter_entities(kind: str, entities: list[dict[str, Any]], params: dict[str, list[str]]) -> list[dict[str, Any]]:
    ids = set(multi_values(params, "id"))
    if ids:
        entities = [entity for entity in entities if entity["id"] in ids]
    division_ids = set(multi_values(params, "divisionId"))
    if division_ids:
        entities = [e for e in entities if e.get("division", {}).get("id") in division_ids]
    name = (params.get("name") or [None])[0]
    if name:
        entities = [entity for entity in entities if _name_matches(entity.get("name", ""), name)]
    if kind == "users":
        # The real default is `active`: deleted agents only appear with state=deleted or state=any.
        state = (params.get("state") or ["active"])[0]
        if state not in ("active", "inactive", "deleted", "any"):
            raise bad_request(f"state must be active, inactive, deleted or any, got {state!r}", "invalid.value")
        if state != "any":
            entities = [entity for entity in entities if entity.get("state") == state]
    sort_order = (params.get("sortOrder") or ["asc"])[0].lower()
    if sort_order in ("desc", "descending"):
        entities = list(reversed(entities))
    return entities


def listing(
    path: str,
    entities: list[dict[str, Any]],
    params: dict[str, list[str]],
    max_page_size: int,
    *,
    omit_next_uri: bool = False,
) -> dict[str, Any]:
    """One page of the `...EntityListing` envelope. `nextUri` is always absent on the last page; with
    `omit_next_uri` it is absent on every page (that the real service may do so is UNCONFIRMED), and
    only `pageNumber`/`pageCount` say whether more pages follow."""
    page_size = _positive_int(params, "pageSize", 25)
    page_number = _positive_int(params, "pageNumber", 1)
    if page_size > max_page_size:
        raise bad_request(f"pageSize must be between 1 and {max_page_size}, got {page_size}", "invalid.value")
    total = len(entities)
    page_count = math.ceil(total / page_size)
    start = (page_number - 1) * page_size
    kept = {k: v for k, v in params.items() if k not in ("pageSize", "pageNumber")}

    def uri(number: int) -> str:
        query = urlencode([("pageSize", page_size), ("pageNumber", number)] + [
            (key, value) for key, values in kept.items() for value in values
        ])
        return f"{path}?{query}"

    body: dict[str, Any] = {
        "entities": entities[start : start + page_size],
        "pageSize": page_size,
        "pageNumber": page_number,
        "total": total,
        "firstUri": uri(1),
        "selfUri": uri(page_number),
    }
    if page_number < page_count and not omit_next_uri:
        body["nextUri"] = uri(page_number + 1)
    if 1 < page_number <= page_count + 1:
        body["previousUri"] = uri(page_number - 1)
    body["lastUri"] = uri(max(page_count, 1))
    body["pageCount"] = page_count
    return body


def _positive_int(params: dict[str, list[str]], name: str, default: int) -> int:
    raw = (params.get(name) or [None])[0]
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise bad_request(f"{name} must be an integer, got {raw!r}", "invalid.value")
    if value < 1:
        raise bad_request(f"{name} must be at least 1, got {value}", "invalid.value")
    return value


def _name_matches(name: str, pattern: str) -> bool:
    """Names support leading and trailing `*` wildcards; matching ignores case."""
    name, core = name.lower(), pattern.lower().strip("*")
    if pattern.startswith("*") and pattern.endswith("*"):
        return core in name
    if pattern.endswith("*"):
        return name.startswith(core)
    if pattern.startswith("*"):
        return name.endswith(core)
    return name == core
