"""The API's text for instants and intervals, written and read in one place so that every call
sends the same `...T00:00:00.000Z` form and reads the `Z` the API answers with."""

from __future__ import annotations

from datetime import datetime, timezone


def format_interval(start: datetime, end: datetime) -> str:
    """`2024-05-09T00:00:00.000Z/2024-05-10T00:00:00.000Z`; both ends must be timezone-aware."""
    if start.tzinfo is None or end.tzinfo is None:
        raise ValueError("interval start and end must be timezone-aware datetimes (use UTC)")
    if end <= start:
        raise ValueError(f"interval end {end.isoformat()} is not after its start {start.isoformat()}")
    return f"{_iso_ms(start)}/{_iso_ms(end)}"


def _iso_ms(instant: datetime) -> str:
    utc = instant.astimezone(timezone.utc)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"


def parse_datetime(text: str) -> datetime:
    """Parse the API's ISO-8601 UTC timestamps (`2024-05-01T06:00:00.000Z`)."""
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(timezone.utc)
