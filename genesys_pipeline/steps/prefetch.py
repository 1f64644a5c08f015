"""Read an iterator one step ahead on a background thread.

Extraction alternates between waiting for the API (the next page) and working on what arrived
(serialising and compressing records). Fetching the next page while the current one is processed
overlaps the two, with at most `depth` items held in memory.
"""

from __future__ import annotations

import queue
import threading
from typing import Any, Iterator, TypeVar

T = TypeVar("T")
_DONE = object()


class _Failure:
    def __init__(self, error: BaseException) -> None:
        self.error = error


def prefetched(source: Iterator[T], depth: int = 1500) -> Iterator[T]:
    """Yield `source`'s items, produced ahead on a thread; closing this generator stops the
    producer and then closes `source` (so a detail job it was reading is cancelled)."""
    buffer: queue.Queue[Any] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def produce() -> None:
        try:
            for item in source:
                while not stop.is_set():
                    try:
                        buffer.put(item, timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            buffer.put(_DONE)
        except BaseException as error:  # handed to the consumer, which re-raises it
            buffer.put(_Failure(error))

    producer = threading.Thread(target=produce, name="prefetch", daemon=True)
    producer.start()
    try:
        while True:
            item = buffer.get()
            if item is _DONE:
                return
            if isinstance(item, _Failure):
                raise item.error
            yield item
    finally:
        stop.set()
        while producer.is_alive():
            try:
                buffer.get(timeout=0.1)
            except queue.Empty:
                pass
        close = getattr(source, "close", None)
        if close is not None:
            close()
