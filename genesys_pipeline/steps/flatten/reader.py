"""`read_raw_records`: the raw asset's gzip JSON-lines file, one record per line, read lazily."""

from __future__ import annotations

import gzip
import zlib
from typing import IO, Any, Iterator

import orjson

from genesys_pipeline.steps.flatten.diagnosis import FlattenError


def read_raw_records(handle: IO[bytes], source: str) -> Iterator[dict[str, Any]]:
    """The records of a gzip JSON-lines file (several gzip members allowed), one per line.

    Record n is line n: a blank or invalid line raises `FlattenError` naming `source` and the line.
    """
    number = 0
    loads = orjson.loads
    try:
        with gzip.GzipFile(fileobj=handle, mode="rb") as lines:
            for number, line in enumerate(lines, 1):  # noqa: B007 (number is used after the loop)
                try:
                    record = loads(line)
                except orjson.JSONDecodeError as error:
                    raise FlattenError(f"{source} line {number}: not a JSON record ({error})") from None
                if record.__class__ is not dict:
                    raise FlattenError(
                        f"{source} line {number}: expected a JSON object, got {type(record).__name__}"
                    )
                yield record
    except (EOFError, OSError, zlib.error) as error:
        raise FlattenError(f"{source}: unreadable gzip after line {number} ({error})") from None
