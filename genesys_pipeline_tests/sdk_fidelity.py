"""Does a JSON payload survive the official Genesys Python SDK (v269) without loss?

`sdk_lost_fields(raw, "AnalyticsConversation")` deserializes `raw` with the SDK's own ApiClient into
the named model, serializes it back with the SDK's `sanitize_for_serialization` and lists every
difference: keys the SDK dropped (unknown to the model), values it changed (e.g. "12" -> 12), enum
values it does not know (turned into "outdated_sdk_version") and explicit nulls. Timestamps compare
by instant, because the SDK re-formats them. An empty list means the SDK reads the payload losslessly.
`check_key_order` checks the other thing the SDK model fixes: the order of the keys.

Importing this module imports the SDK with $HOME pointed at an empty temporary folder whose SDK config
turns off live reload, so the SDK neither reads the developer's ~/.genesyscloudpython/config nor starts
its file-watcher thread. Import it before anything else imports the SDK.
"""

from __future__ import annotations

import importlib
import json
import os
import sys
import tempfile
from datetime import datetime
from pathlib import Path
from typing import Any

_OUTDATED = "outdated_sdk_version"


def _import_sdk_in_isolation() -> Any:
    if "PureCloudPlatformClientV2" not in sys.modules:
        home = Path(tempfile.mkdtemp(prefix="genesys-sdk-home-"))
        (home / ".genesyscloudpython").mkdir()
        (home / ".genesyscloudpython" / "config").write_text("[general]\nlive_reload_config = false\n")
        previous = os.environ.get("HOME")
        os.environ["HOME"] = str(home)
        try:
            import PureCloudPlatformClientV2  # noqa: F401  (its import creates the Configuration singleton)
        finally:
            if previous is None:
                del os.environ["HOME"]
            else:
                os.environ["HOME"] = previous
    from PureCloudPlatformClientV2.api_client import ApiClient

    return ApiClient()


_API_CLIENT = _import_sdk_in_isolation()


class _JsonResponse:
    """The two members of a urllib3 response that ApiClient.deserialize reads."""

    def __init__(self, payload: Any) -> None:
        self.data = json.dumps(payload).encode()

    @staticmethod
    def getheader(name: str, default: str | None = None) -> str | None:
        return "application/json" if name.lower() == "content-type" else default


def sdk_lost_fields(raw: Any, model_type: str) -> list[str]:
    """Human-readable differences between `raw` and its round trip through the SDK model `model_type`
    (any SDK model name, or "list[Model]"); an empty list means nothing was lost."""
    model = _API_CLIENT.deserialize(_JsonResponse(raw), model_type)
    round_trip = _API_CLIENT.sanitize_for_serialization(model)
    problems: list[str] = []
    _compare(raw, round_trip, "$", problems)
    return problems


def _compare(raw: Any, back: Any, path: str, problems: list[str]) -> None:
    if back == _OUTDATED and raw != _OUTDATED:
        problems.append(f"{path}: enum value {raw!r} unknown to the SDK (became {_OUTDATED!r})")
    elif raw is None:
        problems.append(f"{path}: explicit null (the real API omits null fields)")
    elif isinstance(raw, dict) and isinstance(back, dict):
        for key, value in raw.items():
            if key not in back:
                reason = "explicit null" if value is None else "dropped: the SDK model has no such field"
                problems.append(f"{path}.{key}: {reason}")
            else:
                _compare(value, back[key], f"{path}.{key}", problems)
        problems.extend(f"{path}.{key}: added by the SDK" for key in back if key not in raw)
    elif isinstance(raw, list) and isinstance(back, list):
        if len(raw) != len(back):
            problems.append(f"{path}: {len(raw)} items became {len(back)}")
        for number, (item, item_back) in enumerate(zip(raw, back, strict=False)):  # lengths reported above
            _compare(item, item_back, f"{path}[{number}]", problems)
    elif (type(raw) is not type(back) or raw != back) and not _same_instant(raw, back):
        problems.append(f"{path}: {raw!r} became {back!r}")


def check_key_order(value: dict[str, Any], model_name: str, path: str, problems: list[str]) -> None:
    """Appends to `problems` where `value`'s keys (and its nested models' keys) are not in the order of
    the SDK model `model_name`, which is the real API's order."""
    models = importlib.import_module("PureCloudPlatformClientV2.models")  # imported in isolation below
    model = getattr(models, model_name)()
    keys = [model.attribute_map[attribute] for attribute in model.swagger_types]
    types = {model.attribute_map[attribute]: kind for attribute, kind in model.swagger_types.items()}
    ranks = [keys.index(key) for key in value]
    if ranks != sorted(ranks):
        problems.append(f"{path}: keys {list(value)} are not in {model_name}'s order")
    for key, item in value.items():
        kind = types[key]
        inner = kind[5:-1] if kind.startswith("list[") else kind
        if isinstance(getattr(models, inner, None), type):
            for number, element in enumerate(item if kind.startswith("list[") else [item]):
                check_key_order(element, inner, f"{path}.{key}[{number}]", problems)


def _same_instant(raw: Any, back: Any) -> bool:
    """The SDK parses timestamps into datetimes and writes them back in isoformat()."""
    if not (isinstance(raw, str) and isinstance(back, str)):
        return False
    try:
        first, second = datetime.fromisoformat(raw), datetime.fromisoformat(back)
    except ValueError:
        return False
    if (first.tzinfo is None) != (second.tzinfo is None):
        return False
    return first == second
