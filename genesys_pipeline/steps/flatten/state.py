"""What every chunk of one flatten shares: the columns every row carries, the lookups and the report."""

from __future__ import annotations

import dataclasses
from datetime import date, datetime

import pyarrow as pa

from genesys_pipeline.contracts.columns import TIMESTAMP
from genesys_pipeline.steps.flatten.lookups import ArrowLookup, Lookups
from genesys_pipeline.steps.flatten.pool import POOL
from genesys_pipeline.steps.flatten.report import FlattenReport


@dataclasses.dataclass
class Constants:
    """The columns every row of one flatten carries: its partition and the extraction it reads."""

    partition_date: date
    run_id: str
    extracted_at: datetime

    def columns(self, rows: int) -> dict[str, pa.Array]:
        return {
            "partition_date": pa.repeat(pa.scalar(self.partition_date, pa.date32()), rows, memory_pool=POOL),
            "extraction_run_id": pa.repeat(pa.scalar(self.run_id, pa.string()), rows, memory_pool=POOL),
            "extracted_at": pa.repeat(pa.scalar(self.extracted_at, TIMESTAMP), rows, memory_pool=POOL),
        }


class State:
    """What every chunk of one flatten shares."""

    def __init__(self, lookups: Lookups, constants: Constants, report: FlattenReport) -> None:
        self.lookups, self.constants, self.report = lookups, constants, report
        self.queue_names = ArrowLookup(lookups.queues)
        self.code_names = ArrowLookup(lookups.wrapup_codes)
        self.user_names = ArrowLookup(lookups.users)
