"""The JSON of records already rendered, so that a record served again costs no rendering.

Rendering a conversation (builder.py, records.py) is most of what serving costs; serialising it is a
few per cent. The same record is served many times over: a rerun extracts the same day again, a
detail job's overlap serves yesterday's late conversations again, and in the test suite many
emulators of the same seed serve the same days (11,000 renders of 2,000 distinct records in one test
file). A record is a pure function of its centre's parameters, its id, `with_attributes` and the
instant it is shown at, and it no longer changes once that instant is past its `last_change_ms`: so
the key is the instant itself, or "final" from `last_change_ms` on (one entry serves every later
clock). Nothing here can change a byte a client sees: the bytes are orjson's of the rendered record.

One cache per process, shared by its emulators (the key names the centre), least recently used out
first past `capacity_bytes`.
"""

from __future__ import annotations

import collections
import threading
from typing import Hashable

DEFAULT_CAPACITY_BYTES = 32 * 2**20  # ~5,000 records of a job (~6 KB each): a test file's days, a day's overlap
FINAL = "final"


class RenderCache:
    def __init__(self, capacity_bytes: int = DEFAULT_CAPACITY_BYTES) -> None:
        self.capacity_bytes = capacity_bytes
        self._lock = threading.Lock()
        self._entries: collections.OrderedDict[Hashable, bytes] = collections.OrderedDict()
        self._size = 0
        self.hits = 0
        self.misses = 0

    def get(self, key: Hashable) -> bytes | None:
        with self._lock:
            encoded = self._entries.get(key)
            if encoded is None:
                self.misses += 1
                return None
            self._entries.move_to_end(key)
            self.hits += 1
            return encoded

    def put(self, key: Hashable, encoded: bytes) -> None:
        if len(encoded) > self.capacity_bytes:
            return
        with self._lock:
            previous = self._entries.pop(key, None)
            if previous is not None:
                self._size -= len(previous)
            self._entries[key] = encoded
            self._size += len(encoded)
            while self._size > self.capacity_bytes:
                _, evicted = self._entries.popitem(last=False)
                self._size -= len(evicted)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self._size = 0

    @property
    def size_bytes(self) -> int:
        return self._size


# The process's cache: emulators of one process (a test session's) share it.
SHARED = RenderCache()
