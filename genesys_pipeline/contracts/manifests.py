"""The manifests each stage writes beside a day's data, and the next stage (and the check) reads.

    RawManifest        raw/conversations/<day>/manifest.json   what was extracted, and how
    FlatManifest       flat/<day>/manifest.json                the six tables' files and row counts
    PublishedManifest  <S3 prefix>/_manifests/<day>.json       the published objects the load copies

A manifest is written last, after its data, so a manifest that exists describes complete data. The
JSON is the dataclass's fields (datetimes as ISO 8601); reading one checks every field and fails with
the file and the field, so a stage never acts on a half-understood manifest.
"""

from __future__ import annotations

import dataclasses
from datetime import datetime
from typing import Any, Mapping, Optional, Protocol, TypeVar

from genesys_pipeline.contracts.paths import flat_manifest_path, raw_manifest_path

_MISSING = object()
T = TypeVar("T")


class ManifestError(ValueError):
    """A manifest that cannot be used; the message names the file and the field."""


class JsonStorage(Protocol):
    """What a manifest needs of the working location (WorkingStorage has it)."""

    def read_json(self, relative: str) -> Any: ...

    def write_json(self, relative: str, value: Any) -> None: ...

    def uri(self, relative: str) -> str: ...


def _get(data: Mapping[str, Any], name: str, kind: type[T], source: str, default: Any = _MISSING) -> T:
    value = data.get(name, default)
    if value is _MISSING:
        raise ManifestError(f"{source}: the manifest has no {name!r}")
    if value is None and default is None:
        return value  # type: ignore[return-value]
    if kind is datetime and isinstance(value, str):
        try:
            return datetime.fromisoformat(value)  # type: ignore[return-value]
        except ValueError:
            pass
    # bool is an int in Python; a count must not be true/false.
    elif isinstance(value, kind) and not (kind is int and isinstance(value, bool)):
        return value
    raise ManifestError(f"{source}: {name!r} must be {kind.__name__}, got {value!r}")


def _object(data: Any, source: str) -> Mapping[str, Any]:
    if not isinstance(data, Mapping):
        raise ManifestError(f"{source}: a manifest is a JSON object, got {type(data).__name__}")
    return data


def _read_json(storage: JsonStorage, path: str) -> Any:
    try:
        return storage.read_json(path)
    except FileNotFoundError:
        raise FileNotFoundError(f"{storage.uri(path)} does not exist") from None


def _check_day(manifest: Any, partition_key: str, source: str) -> None:
    if manifest.partition_key != partition_key:
        raise ManifestError(f"{source} describes partition {manifest.partition_key!r}, not {partition_key!r}")


def _json(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if dataclasses.is_dataclass(value):
        return {f.name: _json(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, Mapping):
        return {key: _json(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json(item) for item in value]
    return value


@dataclasses.dataclass(frozen=True)
class RawManifest:
    partition_key: str
    run_id: str  # the extraction run: every flattened row carries it
    extracted_at: datetime
    files: tuple[str, ...]  # gzip JSON-lines files under the working location
    records: int
    bytes: int
    extraction: Mapping[str, Any]  # how the window was read (steps/extract.py ExtractionReport)

    @property
    def api_reported(self) -> Optional[int]:
        """Conversations the API says started in the day; None when it cannot say (not whole UTC days)."""
        value = self.extraction.get("api_reported")
        return int(value) if value is not None else None

    def to_json(self) -> dict[str, Any]:
        return _json(self)

    @classmethod
    def from_json(cls, data: Any, source: str) -> RawManifest:
        data = _object(data, source)
        return cls(
            partition_key=_get(data, "partition_key", str, source),
            run_id=_get(data, "run_id", str, source),
            extracted_at=_get(data, "extracted_at", datetime, source),
            files=tuple(_get(data, "files", list, source)),
            records=_get(data, "records", int, source),
            bytes=_get(data, "bytes", int, source),
            extraction=_get(data, "extraction", dict, source),
        )

    @classmethod
    def read(cls, storage: JsonStorage, partition_key: str) -> RawManifest:
        path = raw_manifest_path(partition_key)
        manifest = cls.from_json(_read_json(storage, path), storage.uri(path))
        _check_day(manifest, partition_key, storage.uri(path))
        return manifest

    def write(self, storage: JsonStorage) -> None:
        storage.write_json(raw_manifest_path(self.partition_key), self.to_json())


@dataclasses.dataclass(frozen=True)
class FlatTable:
    path: str
    rows: int
    bytes: int


@dataclasses.dataclass(frozen=True)
class FlatManifest:
    partition_key: str
    run_id: str
    extraction_run_id: str
    raw_records: int
    api_reported: Optional[int]
    ongoing: int
    unresolved_ids: Mapping[str, int]  # kind -> ids that no lookup resolved
    lookup_sizes: Mapping[str, int]
    flattened_at: datetime
    tables: Mapping[str, FlatTable]

    def to_json(self) -> dict[str, Any]:
        return _json(self)

    @classmethod
    def from_json(cls, data: Any, source: str) -> FlatManifest:
        data = _object(data, source)
        tables = {}
        for name, entry in _get(data, "tables", dict, source).items():
            where = f"{source} table {name}"
            entry = _object(entry, where)
            tables[name] = FlatTable(_get(entry, "path", str, where), _get(entry, "rows", int, where),
                                     _get(entry, "bytes", int, where))  # fmt: skip
        return cls(
            partition_key=_get(data, "partition_key", str, source),
            run_id=_get(data, "run_id", str, source),
            extraction_run_id=_get(data, "extraction_run_id", str, source),
            raw_records=_get(data, "raw_records", int, source),
            api_reported=_get(data, "api_reported", int, source, default=None),
            ongoing=_get(data, "ongoing", int, source),
            unresolved_ids=_get(data, "unresolved_ids", dict, source),
            lookup_sizes=_get(data, "lookup_sizes", dict, source),
            flattened_at=_get(data, "flattened_at", datetime, source),
            tables=tables,
        )

    @classmethod
    def read(cls, storage: JsonStorage, partition_key: str) -> FlatManifest:
        path = flat_manifest_path(partition_key)
        manifest = cls.from_json(_read_json(storage, path), storage.uri(path))
        _check_day(manifest, partition_key, storage.uri(path))
        return manifest

    def write(self, storage: JsonStorage) -> None:
        storage.write_json(flat_manifest_path(self.partition_key), self.to_json())


@dataclasses.dataclass(frozen=True)
class PublishedObject:
    key: str  # under the bucket, inside the S3Publishing prefix
    uri: str
    rows: int
    bytes: int
    etag: str
    encryption: Optional[str]

    @property
    def file_name(self) -> str:
        return self.key.rsplit("/", 1)[-1]


@dataclasses.dataclass(frozen=True)
class PublishedManifest:
    partition_key: str
    run_id: str
    flat_run_id: str
    published_at: datetime
    format: str  # parquet or csv
    encryption: str
    stage_url: str
    tables: Mapping[str, PublishedObject]
    stale_deleted: tuple[str, ...]  # keys of earlier objects this publish removed from the day's folders

    def to_json(self) -> dict[str, Any]:
        return _json(self)

    @classmethod
    def from_json(cls, data: Any, source: str) -> PublishedManifest:
        data = _object(data, source)
        tables = {}
        for name, entry in _get(data, "tables", dict, source).items():
            where = f"{source} table {name}"
            entry = _object(entry, where)
            tables[name] = PublishedObject(
                key=_get(entry, "key", str, where), uri=_get(entry, "uri", str, where),
                rows=_get(entry, "rows", int, where), bytes=_get(entry, "bytes", int, where),
                etag=_get(entry, "etag", str, where), encryption=_get(entry, "encryption", str, where, default=None),
            )  # fmt: skip
        return cls(
            partition_key=_get(data, "partition_key", str, source),
            run_id=_get(data, "run_id", str, source),
            flat_run_id=_get(data, "flat_run_id", str, source),
            published_at=_get(data, "published_at", datetime, source),
            format=_get(data, "format", str, source),
            encryption=_get(data, "encryption", str, source),
            stage_url=_get(data, "stage_url", str, source),
            tables=tables,
            stale_deleted=tuple(_get(data, "stale_deleted", list, source)),
        )

    def check_day(self, partition_key: str, source: str) -> None:
        _check_day(self, partition_key, source)
