"""Schema drift: the fields of a day's records against the ones the pipeline knows (contracts/record_paths.py).

Gathering (`PathGatherer`, fed by the flatten step with each record it has parsed anyway): per level
of the record (record, participant, session, segment, metric, flow, ...), the objects are counted by
their set of keys, with the first conversation that had each set, and only the levels the contract
names are walked into; a day's paths come from those key sets at the end. Each record is walked as it
passes, while it is in the CPU cache (holding records back to walk them in batches was slower). The
flatten step writes the paths beside its Parquet files (`flat/<day>/record_paths.json`). Cost, 5,000
emulator conversations: about 0.15-0.25 s of CPU on the flatten's 0.8-0.9 s.

Comparing (`evaluate_drift`), two kinds of drift:
    new field        a path in the day's records that is neither mapped to a column nor ignored (a field
                     Genesys added, or a metric name it added)
    no longer sent   a mapped path that is absent from the day although its rate at its last sighting
                     (at least MIN_EXPECTED occurrences, per object of its level) predicts at least
                     MIN_EXPECTED among the day's objects of that level (a renamed or removed field: its
                     columns go null; a rarer field's absence is no evidence, and is not reported)
The drift list is compared with the previous evaluation's, kept in the working location
(`checks/schema_drift.json`, with each mapped path's last sighting): the check warns when the list
changes, and passes while it stays as it was (it warned on the day the change came). A rerun of the
last day compares the list with itself and passes. Two runs evaluating at the same moment may both
warn about one change: the later write wins.
"""

from __future__ import annotations

import dataclasses
import itertools
import operator
from collections import Counter
from datetime import datetime, timezone
from typing import Any, Iterable, Iterator, Mapping, Optional

from genesys_pipeline.contracts.record_paths import (
    DRIFT_STATE_PATH,
    KNOWN_PATHS,
    MAPPED_BY_PATH,
    METRICS,
    record_paths_path,
)
from genesys_pipeline.resources.working_storage import WorkingStorage
from genesys_pipeline.steps.metadata import markdown_table

_NAME = operator.methodcaller("get", "name")
NEW_FIELD, NO_LONGER_SENT = "new field", "no longer sent"
# A mapped field is "no longer sent" only if its last sighting had this many occurrences (a rate from a
# few is noise) and that rate predicts this many among the day's objects of its level: absent by chance,
# it would be a Poisson zero at a mean of about 20, which does not happen (e**-20).
MIN_EXPECTED = 20


class _Level:
    """One level of the record: its children (the keys walked into) and the key sets seen there."""

    __slots__ = ("prefix", "children", "shapes", "samples", "metrics")

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self.children: dict[str, _Level] = {}
        self.shapes: Counter[tuple[str, ...]] = Counter()  # keys -> objects that had exactly these keys
        self.samples: dict[tuple[str, ...], Any] = {}  # keys -> the first conversation id that had them
        self.metrics = prefix == METRICS + "."


def _levels() -> _Level:
    """The record's levels, from the container parts of every known path (`participants[]`, `flow`...)."""
    root = _Level("")
    for path in KNOWN_PATHS:
        if "[name=" in path:
            continue
        level = root
        for part in path.split(".")[:-1]:
            key = part.removesuffix("[]")
            if key not in level.children:
                level.children[key] = _Level(level.prefix + part + ".")
            level = level.children[key]
    return root


@dataclasses.dataclass(frozen=True)
class PathCount:
    count: int  # occurrences: a participant field counts once per participant that has it
    sample: Optional[str]  # a conversation id that has it


class PathGatherer:
    """Counts the paths of the records `add`ed (`passing_through` wraps a record iterator)."""

    def __init__(self) -> None:
        self._root = _levels()
        self._metric_names: Counter[Any] = Counter()
        self._metric_samples: dict[Any, Any] = {}
        self.records = 0

    def passing_through(self, records: Iterable[Mapping[str, Any]]) -> Iterator[Mapping[str, Any]]:
        for record in records:
            self.add(record)
            yield record

    def add(self, record: Mapping[str, Any]) -> None:
        self.records += 1
        self._visit(self._root, record, record.get("conversationId"))

    def _visit(self, level: _Level, obj: Mapping[str, Any], conversation_id: Any) -> None:
        shape = tuple(obj)
        shapes = level.shapes
        seen = shapes.get(shape)
        if seen is None:
            shapes[shape] = 1
            level.samples[shape] = conversation_id
        else:
            shapes[shape] = seen + 1
        for key, child in level.children.items():
            value = obj.get(key)
            if value.__class__ is dict:
                self._visit(child, value, conversation_id)
            elif value.__class__ is not list:
                continue
            elif child.children:
                for item in value:
                    if item.__class__ is dict:
                        self._visit(child, item, conversation_id)
            else:
                self._count_leaves(child, value, conversation_id)

    def _count_leaves(self, level: _Level, objects: list[Any], conversation_id: Any) -> None:
        """The hot path (segments, metrics: most of a record's objects): Counter.update counts in C. An
        item that is not an object is skipped, never raised on: the flatten reports it, with its place."""
        if not all(map(isinstance, objects, itertools.repeat(dict))):
            objects = [item for item in objects if item.__class__ is dict]
        shapes, known = level.shapes, len(level.shapes)
        shapes.update(map(tuple, objects))
        if len(shapes) != known:  # a key set not seen before: remember where
            for shape in map(tuple, objects):
                level.samples.setdefault(shape, conversation_id)
        if level.metrics:
            names, known = self._metric_names, len(self._metric_names)
            named = list(map(_NAME, objects))
            if not all(map(isinstance, named, itertools.repeat(str))):  # the flatten reports it
                named = [name for name in named if name.__class__ is str]
            names.update(named)
            if len(names) != known:
                for name in named:
                    self._metric_samples.setdefault(name, conversation_id)

    def paths(self) -> dict[str, PathCount]:
        """Every path seen, with its occurrences and the first conversation that had it."""
        found: dict[str, list[Any]] = {}

        def add(path: str, count: int, sample: Any) -> None:
            entry = found.setdefault(path, [0, sample])
            entry[0] += count

        pending = [self._root]
        while pending:
            level = pending.pop()
            pending += level.children.values()
            for shape, count in level.shapes.items():
                for key in shape:
                    if key not in level.children:  # the walked-into keys are levels, not fields
                        add(level.prefix + key, count, level.samples[shape])
        for name, count in self._metric_names.items():
            add(f"{METRICS[:-2]}[name={name}]", count, self._metric_samples[name])
        return {path: PathCount(count, None if sample is None else str(sample))
                for path, (count, sample) in sorted(found.items())}  # fmt: skip

    def objects(self) -> dict[str, int]:
        """Objects seen per level (its prefix, "" for the record itself)."""
        counts, pending = {}, [self._root]
        while pending:
            level = pending.pop()
            pending += level.children.values()
            counts[level.prefix] = sum(level.shapes.values())
        return dict(sorted(counts.items()))

    def to_json(self) -> dict[str, Any]:
        return {"records": self.records, "objects": self.objects(),
                "paths": {p: {"count": c.count, "sample": c.sample} for p, c in self.paths().items()}}  # fmt: skip


def level_of(path: str) -> str:
    """The prefix of the level a path is a field of: `participants[].sessions[].metrics[]. ` for a metric."""
    if path.endswith("]") and "[name=" in path:
        return path[: path.index("[name=")] + "[]."
    return path.rsplit(".", 1)[0] + "." if "." in path else ""


@dataclasses.dataclass(frozen=True)
class DayPaths:
    partition_key: str
    records: int
    objects: Mapping[str, int]  # level prefix -> objects
    paths: Mapping[str, PathCount]

    @classmethod
    def read(cls, storage: WorkingStorage, partition_key: str) -> DayPaths:
        data = storage.read_json(record_paths_path(partition_key))
        return cls(partition_key, int(data["records"]), {k: int(v) for k, v in data["objects"].items()},
                   {p: PathCount(int(v["count"]), v.get("sample")) for p, v in data["paths"].items()})  # fmt: skip


@dataclasses.dataclass(frozen=True)
class DriftEntry:
    kind: str  # NEW_FIELD or NO_LONGER_SENT
    path: str
    count: int  # new field: occurrences in the day; no longer sent: at its last sighting
    sample: Optional[str]  # a conversation id that has (or last had) it
    seen_on: str  # the day of those numbers

    @property
    def key(self) -> str:
        return f"{self.kind}: {self.path}"

    def sentence(self) -> str:
        if self.kind == NEW_FIELD:
            return f"{self.path} ({self.count} times, e.g. conversation {self.sample})"
        return f"{self.path} (last seen {self.seen_on}, {self.count} times, e.g. conversation {self.sample})"


@dataclasses.dataclass(frozen=True)
class DriftReport:
    partition_key: str
    records: int
    entries: tuple[DriftEntry, ...]
    previous: tuple[str, ...]  # the previous evaluation's entry keys
    previous_day: Optional[str]  # the day it evaluated; None: the first evaluation
    missing: str = ""  # why the day has no paths to compare, if it has none

    @property
    def added(self) -> list[str]:
        return sorted({e.key for e in self.entries} - set(self.previous))

    @property
    def gone(self) -> list[str]:
        return sorted(set(self.previous) - {e.key for e in self.entries})

    @property
    def changed(self) -> bool:
        return bool(self.missing or self.added or self.gone)


def _state(storage: WorkingStorage) -> dict[str, Any]:
    try:
        return dict(storage.read_json(DRIFT_STATE_PATH))
    except FileNotFoundError:
        return {}


def evaluate_drift(storage: WorkingStorage, partition_key: str) -> DriftReport:
    """The day's drift against the contract and the previous evaluation; records this evaluation as the
    previous one for the next (and each mapped path's sighting)."""
    state = _state(storage)
    previous = state.get("previous") or {}
    previous_keys, previous_day = tuple(previous.get("entries", ())), previous.get("partition_key")
    try:
        day = DayPaths.read(storage, partition_key)
    except FileNotFoundError:
        return DriftReport(partition_key, 0, (), previous_keys, previous_day,
                           missing=f"{storage.uri(record_paths_path(partition_key))} does not exist: materialize "
                                   "flattened_conversations for the day again")  # fmt: skip
    sightings: dict[str, Any] = dict(state.get("mapped_seen") or {})
    entries = [DriftEntry(NEW_FIELD, path, seen.count, seen.sample, partition_key)
               for path, seen in day.paths.items() if path not in KNOWN_PATHS]  # fmt: skip
    for path, last in sorted(sightings.items()):
        # Against the objects of its level: a day without evaluations yet (they come days later) is no
        # sign that a field of evaluations[] was renamed.
        expected = last.get("count", 0) / max(last.get("objects", 0), 1) * day.objects.get(level_of(path), 0)
        if (path in MAPPED_BY_PATH and path not in day.paths and expected >= MIN_EXPECTED
                and last.get("count", 0) >= MIN_EXPECTED):  # fmt: skip
            entries.append(DriftEntry(NO_LONGER_SENT, path, last["count"], last["sample"], last["partition_key"]))
    for path, seen in day.paths.items():
        if path in MAPPED_BY_PATH:
            sightings[path] = {"partition_key": partition_key, "count": seen.count, "sample": seen.sample,
                               "objects": day.objects.get(level_of(path), 0)}  # fmt: skip
    report = DriftReport(partition_key, day.records, tuple(entries), previous_keys, previous_day)
    storage.write_json(DRIFT_STATE_PATH, {
        "previous": {"partition_key": partition_key, "evaluated_at": datetime.now(timezone.utc).isoformat(),
                     "entries": [e.key for e in entries]},
        "mapped_seen": sightings,
    })  # fmt: skip
    return report


def describe(report: DriftReport) -> str:
    """One paragraph: the verdict, the change since the previous evaluation, every drifted path."""
    day = report.partition_key
    if report.missing:
        return f"No record paths for {day}: {report.missing}."
    new = [e.sentence() for e in report.entries if e.kind == NEW_FIELD]
    stopped = [e.sentence() for e in report.entries if e.kind == NO_LONGER_SENT]
    since = f"the previous evaluation ({report.previous_day})" if report.previous_day else "the first evaluation"
    if not report.entries and not report.changed:
        return (f"No drift in {day}: every field of its {report.records} records is a mapped column or on the "
                "ignore list (contracts/record_paths.py).")  # fmt: skip
    parts = []
    if report.changed:
        gone = f", {len(report.gone)} gone ({'; '.join(report.gone)})" if report.gone else ""
        parts.append(f"The drift list of {day} changed since {since}: {len(report.added)} added{gone}.")
    else:
        parts.append(f"The drift list of {day} is as at {since} (it warned when the list changed).")
    parts.append(f"{len(new)} field(s) in its {report.records} records that no column maps and the ignore list "
                 f"does not name" + (": " + "; ".join(new) if new else "") + ".")
    parts.append(f"{len(stopped)} mapped field(s) no longer sent" + (": " + "; ".join(stopped) if stopped else "")
                 + ".")  # fmt: skip
    return " ".join(parts)


def drift_table(reports: Iterable[DriftReport]) -> str:
    """Every drifted path of the days as a markdown table ("No drift." when there is none)."""
    rows = [(r.partition_key, e.kind, f"`{e.path}`", e.count, e.sample or "", e.seen_on)
            for r in reports for e in r.entries]  # fmt: skip
    if not rows:
        return "No drift."
    return markdown_table(("day", "drift", "path", "times", "conversation", "seen on"), rows)
