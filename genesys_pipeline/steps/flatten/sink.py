"""`ParquetSink`: the tables as Parquet files, one per table, written batch by batch (a row group each)."""

from __future__ import annotations

import contextlib
from typing import IO, Any, Callable, ContextManager, Mapping, Sequence

import pyarrow as pa
import pyarrow.parquet as pq

from genesys_pipeline.contracts.columns import TIMESTAMP, Table
from genesys_pipeline.contracts.tables import TABLES
from genesys_pipeline.steps.flatten.pool import POOL

PARQUET_COMPRESSION = "zstd"

# Dictionary encoding only where values repeat a lot: for ids it costs time and bytes.
_DICTIONARY_COLUMNS = {
    table.name: [
        c.name for c in table.columns
        if c.arrow_type != TIMESTAMP and not c.name.endswith(("_id", "_ids", "_key", "_value", "_ms", "_note"))
        and c.name not in ("ani", "dnis", "address_from", "address_to", "subject", "participant_name", "value",
                           "agent_names", "record")
    ] + ["extraction_run_id"]
    for table in TABLES
}  # fmt: skip


# Min/max statistics where a reader can prune by them (times, numbers); string statistics cost
# ~15% of the write time and no reader of these files filters on a string range.
_STATISTICS_COLUMNS = {
    table.name: [c.name for c in table.columns if c.arrow_type in (TIMESTAMP, pa.date32(), pa.int64())]
    for table in TABLES
}


class ParquetSink:
    """Six Parquet files, one per table, written batch by batch (one row group per batch).

    `open_output(table_name)` gives a context manager yielding a binary file, e.g.
    `lambda name: storage.writer(flat_table_path(pk, name))`. The files commit (rename/upload) only if
    the `with ParquetSink(...)` block exits without an error, so a failed flatten, or a check that
    raises inside the block, leaves the previous files in place. A table with no rows is still a
    valid Parquet file with the table's schema.
    """

    def __init__(
        self,
        open_output: Callable[[str], ContextManager[IO[bytes]]],
        *,
        compression: str = PARQUET_COMPRESSION,
        tables: Sequence[Table] = TABLES,
    ) -> None:
        self._open_output = open_output
        self._tables = tuple(tables)  # the tables written (GENESYS_TABLES); the others' rows are dropped
        self._compression = compression
        self._stack: contextlib.ExitStack | None = None
        self._writers: dict[str, pq.ParquetWriter] = {}
        self.rows: dict[str, int] = {table.name: 0 for table in self._tables}

    def __enter__(self) -> ParquetSink:
        with contextlib.ExitStack() as stack:
            for table in self._tables:
                handle = stack.enter_context(self._open_output(table.name))
                writer = pq.ParquetWriter(
                    handle, table.arrow_schema, compression=self._compression, memory_pool=POOL,
                    use_dictionary=_DICTIONARY_COLUMNS[table.name],
                    write_statistics=_STATISTICS_COLUMNS[table.name],
                )  # fmt: skip
                stack.callback(writer.close)  # LIFO: the footer is written before the file commits
                self._writers[table.name] = writer
            self._stack = stack.pop_all()
        return self

    def __exit__(self, *exc_info: Any) -> bool:
        assert self._stack is not None
        stack, self._stack = self._stack, None
        return stack.__exit__(*exc_info)

    def write(self, tables: Mapping[str, pa.Table | pa.RecordBatch]) -> None:
        for name, table in tables.items():
            if table.num_rows and name in self._writers:
                if isinstance(table, pa.RecordBatch):
                    table = pa.Table.from_batches([table])
                self._writers[name].write_table(table, row_group_size=table.num_rows)
                self.rows[name] += table.num_rows
