"""Flat row lists -> Arrow arrays, shared by `build` and `details_build`."""

from __future__ import annotations

from typing import Any, Mapping

import pyarrow as pa
import pyarrow.compute as pc

from genesys_pipeline.contracts.columns import TIMESTAMP
from genesys_pipeline.steps.flatten.diagnosis import (
    Located,
    to_array,
    to_integers,
    to_timestamps,
)
from genesys_pipeline.steps.flatten.pool import POOL


def strided_columns(
    rows: list[Any], names: tuple[str, ...], types: Mapping[str, pa.DataType], located: Located
) -> dict[str, pa.Array]:
    """A flat row list (`len(names)` values per row) as one Arrow array per column (strided slices)."""
    arrays, width = {}, len(names)
    for offset, name in enumerate(names):
        values = rows[offset::width]
        arrow_type = types[name]
        if arrow_type == TIMESTAMP:
            arrays[name] = to_timestamps(values, located, name)
        elif arrow_type == pa.int64():
            arrays[name] = to_integers(values, located, name)
        else:
            arrays[name] = to_array(values, arrow_type, located, name)
    return arrays


def take(values: pa.Array, rows: pa.Array) -> pa.Array:
    return pc.take(values, rows, memory_pool=POOL)


def int32(values: list[int]) -> pa.Array:
    return pa.array(values, pa.int32(), memory_pool=POOL)
