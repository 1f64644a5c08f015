"""The read-ahead wrapper: order kept, errors passed on, early close closes the source."""

from __future__ import annotations

import pytest

from genesys_pipeline.steps.prefetch import prefetched


def test_items_arrive_in_order():
    assert list(prefetched(iter(range(2000)), depth=3)) == list(range(2000))


def test_a_producer_error_reaches_the_consumer():
    def failing():
        yield 1
        raise RuntimeError("page 2 failed")

    consumer = prefetched(failing())
    assert next(consumer) == 1
    with pytest.raises(RuntimeError, match="page 2 failed"):
        next(consumer)


def test_closing_early_closes_the_source():
    closed = []

    def endless():
        try:
            n = 0
            while True:
                yield n
                n += 1
        finally:
            closed.append(True)

    consumer = prefetched(endless(), depth=2)
    assert [next(consumer) for _ in range(5)] == [0, 1, 2, 3, 4]
    consumer.close()
    assert closed == [True]
