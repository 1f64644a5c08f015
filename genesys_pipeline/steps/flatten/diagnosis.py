"""Bad input: `FlattenError`, and the slow paths that find the value to blame.

The fast paths convert a whole column at once and learn only that some value in it is wrong. Only
then are the values tried one by one, so that the error names the field and where it is (`Located`,
in `build`): the source and line (= record) number, the conversation id, and the
participant/session/segment/metric index. `structure_problem` does the same for a record whose JSON
types are not the API's.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Mapping, Protocol

import pyarrow as pa

from genesys_pipeline.contracts.columns import TIMESTAMP
from genesys_pipeline.steps.flatten.pool import POOL


class Located(Protocol):
    """Something that says where row `row` of a column came from (build.py's RowLocator)."""

    def describe(self, row: int, column: str) -> str: ...


class FlattenError(ValueError):
    """A raw record cannot be flattened; the message names the field and where it is."""


_KIND = {pa.string(): "a string", pa.bool_(): "a boolean (true/false)", pa.int64(): "a 64-bit integer",
         pa.float64(): "a number"}


@dataclasses.dataclass
class Context:
    """Where the records of a chunk came from, to describe errors."""

    source: str
    first_number: int  # record (line) number of the chunk's first record
    conversation_ids: list[Any] = dataclasses.field(default_factory=list)

    def record(self, ordinal: int, conversation_id: Any = None) -> str:
        if conversation_id is None and ordinal < len(self.conversation_ids):
            conversation_id = self.conversation_ids[ordinal]
        where = f"{self.source} line {self.first_number + ordinal}"  # record n is line n of the file
        return where + (f" (conversation {conversation_id})" if conversation_id is not None else "")


def record_path(participant: int | None = None, session: int | None = None) -> str:
    if participant is None:
        return ""
    text = f"participants[{participant}]."
    return text if session is None else text + f"sessions[{session}]."


def structure_problem(record: Any) -> str | None:
    """The first place where a record's shape is not what the API documents (the slow path)."""
    if not isinstance(record, Mapping):
        return f"the record is a {type(record).__name__}, not an object"
    divisions = record.get("divisionIds")
    if divisions is not None and (
        not isinstance(divisions, list) or not all(isinstance(d, str) for d in divisions)
    ):
        return f"divisionIds is not a list of strings: {divisions!r}"
    participants = record.get("participants")
    if participants is None:
        return None
    if not isinstance(participants, list):
        return f"participants is a {type(participants).__name__}, not a list"
    for pi, participant in enumerate(participants):
        if not isinstance(participant, Mapping):
            return f"participants[{pi}] is a {type(participant).__name__}, not an object"
        for key in ("userId", "purpose"):
            if participant.get(key) is not None and not isinstance(participant[key], str):
                return f"participants[{pi}].{key} is not a string: {participant[key]!r}"
        attributes = participant.get("attributes")
        if attributes is not None and not isinstance(attributes, Mapping):
            return f"participants[{pi}].attributes is a {type(attributes).__name__}, not an object"
        sessions = participant.get("sessions")
        if sessions is None:
            continue
        if not isinstance(sessions, list):
            return f"participants[{pi}].sessions is a {type(sessions).__name__}, not a list"
        for si, session in enumerate(sessions):
            where = f"participants[{pi}].sessions[{si}]"
            if not isinstance(session, Mapping):
                return f"{where} is a {type(session).__name__}, not an object"
            if session.get("flow") is not None and not isinstance(session["flow"], Mapping):
                return f"{where}.flow is a {type(session['flow']).__name__}, not an object"
            for key in ("metrics", "segments"):
                items = session.get(key)
                if items is None:
                    continue
                if not isinstance(items, list):
                    return f"{where}.{key} is a {type(items).__name__}, not a list"
                for index, item in enumerate(items):
                    if not isinstance(item, Mapping):
                        return f"{where}.{key}[{index}] is a {type(item).__name__}, not an object"
                    value = item.get("value")
                    if key == "metrics" and value is not None and value.__class__ is not int:
                        return f"{where}.metrics[{index}].value is not an integer: {value!r}"
                    if key == "segments":
                        for field in ("queueId", "wrapUpCode", "segmentStart"):
                            if item.get(field) is not None and not isinstance(item[field], str):
                                return f"{where}.segments[{index}].{field} is not a string: {item[field]!r}"
    return None


def to_array(values: list[Any], arrow_type: pa.DataType, located: Located, column: str) -> pa.Array:
    try:
        return pa.array(values, arrow_type, memory_pool=POOL)
    except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError, TypeError, ValueError):
        pass
    for row, value in enumerate(values):  # the slow path: find and describe the offending value
        try:
            pa.array([value], arrow_type)
        except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError, TypeError, ValueError):
            kind = _KIND.get(arrow_type, str(arrow_type))
            raise FlattenError(f"{located.describe(row, column)} is not {kind}: {value!r}") from None
    raise FlattenError(f"{located.table.name}.{column}: values could not be converted to {arrow_type}")


def to_integers(values: list[Any], located: Located, column: str) -> pa.Array:
    """Python ints to int64; Arrow would silently truncate a float (1.5 -> 1), so that is refused."""
    if not set(map(type, values)) <= {int, type(None)}:
        for row, value in enumerate(values):
            if value is not None and value.__class__ is not int:
                raise FlattenError(f"{located.describe(row, column)} is not an integer: {value!r}")
    return to_array(values, pa.int64(), located, column)


def to_timestamps(values: list[Any], located: Located, column: str) -> pa.Array:
    """ISO-8601 strings with a zone (`2024-05-08T10:00:00.123Z`) to timestamp[ms, UTC], vectorised."""
    strings = to_array(values, pa.string(), located, column)
    try:
        return strings.cast(TIMESTAMP, memory_pool=POOL)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        pass
    try:  # finer than milliseconds: parse at ns, then truncate to ms
        return strings.cast(pa.timestamp("ns", tz="UTC"), memory_pool=POOL).cast(TIMESTAMP, safe=False, memory_pool=POOL)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        pass
    for row, value in enumerate(values):
        if value is None:
            continue
        try:
            pa.array([value], pa.string()).cast(pa.timestamp("ns", tz="UTC"))
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            raise FlattenError(
                f"{located.describe(row, column)} is not an ISO-8601 timestamp with a zone: {value!r}"
            ) from None
    raise FlattenError(f"{located.table.name}.{column}: timestamps could not be converted")
