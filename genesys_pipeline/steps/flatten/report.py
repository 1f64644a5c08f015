"""`FlattenReport`: what one flatten wrote, and the ids its lookups could not resolve."""

from __future__ import annotations

import dataclasses
from datetime import datetime

from genesys_pipeline.contracts.tables import CONVERSATIONS, TABLES


@dataclasses.dataclass
class FlattenReport:
    """What one flatten wrote: rows per table, ongoing conversations, ids the lookups did not know."""

    rows: dict[str, int] = dataclasses.field(default_factory=lambda: {t.name: 0 for t in TABLES})
    batches: int = 0
    ongoing: int = 0
    first_start: datetime | None = None
    last_start: datetime | None = None
    # Distinct ids per kind (queues, users, wrapup_codes, divisions) that did not resolve.
    unresolved: dict[str, set[str]] = dataclasses.field(
        default_factory=lambda: {"queues": set(), "users": set(), "wrapup_codes": set(), "divisions": set()}
    )
    system_wrapup_codes: set[str] = dataclasses.field(default_factory=set)  # ININ-..., kept as codes

    @property
    def conversations(self) -> int:
        return self.rows[CONVERSATIONS.name]

    def unresolved_counts(self) -> dict[str, int]:
        return {kind: len(ids) for kind, ids in self.unresolved.items()}

    def merge(self, other: FlattenReport) -> None:
        for name, count in other.rows.items():
            self.rows[name] = self.rows.get(name, 0) + count
        self.batches += other.batches
        self.ongoing += other.ongoing
        for kind, ids in other.unresolved.items():
            self.unresolved.setdefault(kind, set()).update(ids)
        self.system_wrapup_codes |= other.system_wrapup_codes
        starts = [s for s in (self.first_start, other.first_start) if s is not None]
        self.first_start = min(starts) if starts else None
        ends = [s for s in (self.last_start, other.last_start) if s is not None]
        self.last_start = max(ends) if ends else None
