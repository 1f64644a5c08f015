"""The entry points: records -> batches of Arrow tables, one per table of tables.py (`flatten_batches`), into a `ParquetSink`
(`flatten`) or into memory (`flatten_to_tables`).

Records are consumed in chunks of `CHUNK_CONVERSATIONS`: a chunk is walked into flat Python lists
(`collect`), which then become Arrow record batches (`build`); whole chunks make a batch. So memory is
bounded by a batch, as compact Arrow arrays, plus one chunk as Python values, never by the day.
"""

from __future__ import annotations

import itertools
from datetime import date, datetime
from typing import Any, Iterable, Iterator, Mapping, Required, TypedDict, Unpack

import pyarrow as pa

from genesys_pipeline.contracts.tables import TABLES
from genesys_pipeline.steps.flatten.build import build
from genesys_pipeline.steps.flatten.collect import collect
from genesys_pipeline.steps.flatten.diagnosis import Context
from genesys_pipeline.steps.flatten.lookups import Lookups
from genesys_pipeline.steps.flatten.report import FlattenReport
from genesys_pipeline.steps.flatten.sink import ParquetSink
from genesys_pipeline.steps.flatten.state import Constants, State

DEFAULT_BATCH_CONVERSATIONS = 5_000  # conversations per Parquet row group
CHUNK_CONVERSATIONS = 500  # records held as Python values before they become Arrow arrays


def flatten_batches(
    records: Iterable[Mapping[str, Any]],
    lookups: Lookups,
    *,
    partition_date: date,
    run_id: str,
    extracted_at: datetime,
    batch_conversations: int = DEFAULT_BATCH_CONVERSATIONS,
    source: str = "records",
    report: FlattenReport | None = None,
) -> Iterator[dict[str, pa.Table]]:
    """Per batch of at most `batch_conversations` records, one Arrow table per table of `tables.py`
    (by name). A batch is a whole number of chunks of `CHUNK_CONVERSATIONS` records, so with the
    defaults every batch but the last has exactly 5,000 conversations.

    `run_id` and `extracted_at` describe the extraction (the raw manifest's) and go into every row;
    `source` names the input in error messages (record n is "line n"). Counts go into `report`.
    """
    if batch_conversations < 1:
        raise ValueError(f"batch_conversations must be at least 1, got {batch_conversations}")
    if extracted_at.tzinfo is None:
        raise ValueError("extracted_at must be timezone-aware")
    if not run_id:
        raise ValueError("run_id must not be empty")
    report = report if report is not None else FlattenReport()
    state = State(lookups, Constants(partition_date, run_id, extracted_at), report)
    chunk_size = min(CHUNK_CONVERSATIONS, batch_conversations)
    iterator = iter(records)
    first_number = 1
    pending: list[dict[str, pa.RecordBatch]] = []
    pending_conversations = 0
    while True:
        context = Context(source, first_number)
        # Records are consumed one at a time; a chunk holds column values, never its records.
        collected = collect(itertools.islice(iterator, chunk_size), state, context)
        if collected.conversations:
            pending.append(build(collected, state, context))
            pending_conversations += collected.conversations
            first_number += collected.conversations
        done = collected.conversations < chunk_size
        if pending and (done or pending_conversations + chunk_size > batch_conversations):
            tables = {
                table.name: pa.Table.from_batches([p[table.name] for p in pending], schema=table.arrow_schema)
                for table in TABLES
            }
            pending, pending_conversations = [], 0
            report.batches += 1
            for name, table in tables.items():
                report.rows[name] += table.num_rows
            yield tables
        if done:
            return


class FlattenOptions(TypedDict, total=False):
    """The keyword arguments that `flatten` and `flatten_to_tables` pass on to `flatten_batches`."""

    partition_date: Required[date]
    run_id: Required[str]
    extracted_at: Required[datetime]
    batch_conversations: int
    source: str


def flatten(
    records: Iterable[Mapping[str, Any]], lookups: Lookups, sink: ParquetSink, **options: Unpack[FlattenOptions]
) -> FlattenReport:
    """Flatten `records` into an open `ParquetSink` (one row group per table per batch)."""
    report = FlattenReport()
    for tables in flatten_batches(records, lookups, report=report, **options):
        sink.write(tables)
    return report


def flatten_to_tables(
    records: Iterable[Mapping[str, Any]],
    lookups: Lookups,
    *,
    report: FlattenReport | None = None,
    **options: Unpack[FlattenOptions],
) -> dict[str, pa.Table]:
    """All the tables in memory (tests, small inputs); empty tables keep their schema."""
    parts: dict[str, list[pa.Table]] = {table.name: [] for table in TABLES}
    for tables in flatten_batches(records, lookups, report=report, **options):
        for name, table in tables.items():
            parts[name].append(table)
    return {
        table.name: pa.concat_tables(parts[table.name]) if parts[table.name] else table.arrow_schema.empty_table()
        for table in TABLES
    }
