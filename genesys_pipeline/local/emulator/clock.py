"""The emulator's clock: what "now" is for the synthetic contact centre.

It starts at the configured instant and runs at `rate` emulated seconds per real second. Tests freeze
it (rate 0) for byte-for-byte repeatable responses and move it explicitly to watch ongoing
conversations complete and past days get restated. Token lifetimes, job delays and the rate-limit
window use real time instead: they are about the client's behaviour, not about the data.
"""

from __future__ import annotations

import threading
import time
from datetime import datetime, timedelta, timezone


class EmulatorClock:
    def __init__(self, start: datetime, rate: float) -> None:
        self._lock = threading.Lock()
        self._anchor = start.astimezone(timezone.utc)
        self._anchor_monotonic = time.monotonic()
        self._rate = rate

    def now(self) -> datetime:
        with self._lock:
            elapsed = (time.monotonic() - self._anchor_monotonic) * self._rate
            return self._anchor + timedelta(seconds=elapsed)

    def now_ms(self) -> int:
        return to_epoch_ms(self.now())

    def set(self, instant: datetime) -> None:
        with self._lock:
            self._anchor = instant.astimezone(timezone.utc)
            self._anchor_monotonic = time.monotonic()

    def advance(self, seconds: float) -> None:
        self.set(self.now() + timedelta(seconds=seconds))


def to_epoch_ms(instant: datetime) -> int:
    return int(instant.timestamp() * 1000)


def iso_ms(epoch_ms: int) -> str:
    """`2024-04-29T17:31:47.956Z`: the real API's timestamp format."""
    instant = datetime.fromtimestamp(epoch_ms / 1000, tz=timezone.utc)
    return instant.strftime("%Y-%m-%dT%H:%M:%S.") + f"{epoch_ms % 1000:03d}Z"


def parse_iso(text: str) -> datetime:
    """Parse an ISO-8601 instant; a value without a zone is rejected (the API works in UTC)."""
    value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if value.tzinfo is None:
        raise ValueError(f"timestamp {text!r} has no time zone")
    return value.astimezone(timezone.utc)
