"""`--unknown-fields`: fields no Genesys SDK or pipeline knows, at every level of a record.

Genesys adds fields to the analytics records several times a year; a pipeline learns of one only if
it looks. This option puts one made-up field on every conversation at each level a new field can
appear (the record, each participant, session and segment) and one made-up metric on each session,
so that a test can prove a drift check sees every level. Off by default: it is not real behaviour.

Each field is placed where the API would put a new scalar of its model (alphabetically among the
scalars, before the nested arrays); the metric is emitted when the session's first segment starts.
"""

from __future__ import annotations

from typing import Any

RECORD_FIELD = "emulatorProbeRecord"
PARTICIPANT_FIELD = "emulatorProbeParticipant"
SESSION_FIELD = "emulatorProbeSession"
SEGMENT_FIELD = "emulatorProbeSegment"
METRIC_NAME = "tEmulatorProbe"
# level -> the made-up field (or, for "metric", the made-up metric name) the option adds there
UNKNOWN_FIELDS = {
    "record": RECORD_FIELD,
    "participant": PARTICIPANT_FIELD,
    "session": SESSION_FIELD,
    "segment": SEGMENT_FIELD,
    "metric": METRIC_NAME,
}
# Values of different JSON types, so a reader that infers types meets more than strings.
RECORD_VALUE = "probe"
PARTICIPANT_VALUE = True
SESSION_VALUE = 1
SEGMENT_VALUE = "probe"
METRIC_VALUE = 1000


def add_unknown_fields(record: dict[str, Any]) -> None:
    """Adds the made-up fields and metric to `record` (a rendered conversation) in place."""
    _insert_scalar(record, RECORD_FIELD, RECORD_VALUE)
    for participant in record["participants"]:
        _insert_scalar(participant, PARTICIPANT_FIELD, PARTICIPANT_VALUE)
        for session in participant["sessions"]:
            _insert_scalar(session, SESSION_FIELD, SESSION_VALUE)
            for segment in session["segments"]:
                _insert_scalar(segment, SEGMENT_FIELD, SEGMENT_VALUE)
            _add_metric(session)


def _is_nested(value: Any) -> bool:
    """An object or an array of objects: the models list these after their scalars."""
    return isinstance(value, dict) or (isinstance(value, list) and any(isinstance(v, dict) for v in value))


def _insert_scalar(target: dict[str, Any], key: str, value: Any) -> None:
    items = list(target.items())
    position = next(
        (number for number, (name, existing) in enumerate(items) if _is_nested(existing) or name > key),
        len(items),
    )
    items.insert(position, (key, value))
    target.clear()
    target.update(items)


def _add_metric(session: dict[str, Any]) -> None:
    emit_date = session["segments"][0]["segmentStart"]  # ISO-8601 Z with milliseconds: sorts as text
    metric = {"emitDate": emit_date, "name": METRIC_NAME, "value": METRIC_VALUE}
    metrics = session.get("metrics")
    if metrics is None:  # "metrics" comes just before "segments" in the session model
        items = list(session.items())
        items.insert(len(items) - 1, ("metrics", [metric]))
        session.clear()
        session.update(items)
        return
    metrics.append(metric)
    metrics.sort(key=lambda m: (m["emitDate"], m["name"]))
