"""Identifiers and timestamps for the synthetic contact centre.

- `ConversationIdCodec` turns (day number, index within the day) into a random-looking UUID v4 and
  back, so the server can find a conversation from its id in O(1) without scanning or an index.
- `uuid_from_bits` formats 128 random bits as a UUID v4 (participant, session and entity ids).
- `iso_ms` formats epoch milliseconds the way the real API does, like `clock.iso_ms` but without
  `datetime.strftime`: it runs ~60 times per rendered record, the hot path of rendering.
"""

from __future__ import annotations

import functools
import hashlib
from datetime import date, timedelta

_M61 = (1 << 61) - 1
_M64 = (1 << 64) - 1
_DAY_BITS = 20  # days since 1970-01-01: enough until the year 4840
_INDEX_BITS = 24  # conversations per day: up to 16,777,215
_CHECK_BITS = 122 - _DAY_BITS - _INDEX_BITS  # 78 bits: a random UUID decodes by chance with p = 2^-78
_ROUNDS = 4
MAX_DAILY_VOLUME = (1 << _INDEX_BITS) - 1
_EPOCH = date(1970, 1, 1)


def derive_key(seed: int, purpose: str, bits: int = 64) -> int:
    """A `bits`-bit key for one purpose, from the centre's seed (stable across processes, unlike hash())."""
    digest = hashlib.blake2b(f"{seed}/{purpose}".encode(), digest_size=(bits + 7) // 8).digest()
    return int.from_bytes(digest, "big") & ((1 << bits) - 1)


def mix64(value: int) -> int:
    """splitmix64's finaliser: a cheap, well-spread 64-bit bijection."""
    value = (value + 0x9E3779B97F4A7C15) & _M64
    value = ((value ^ (value >> 30)) * 0xBF58476D1CE4E5B9) & _M64
    value = ((value ^ (value >> 27)) * 0x94D049BB133111EB) & _M64
    return value ^ (value >> 31)


_UUID_FREE_BITS = ((1 << 128) - 1) & ~(0xF << 76) & ~(0x3 << 62)  # all but the version and variant bits
_UUID_V4_BITS = (0x4 << 76) | (0x2 << 62)


def uuid_from_bits(bits: int) -> str:
    """128 random bits as a UUID v4 string (version nibble 4, variant 10)."""
    text = "%032x" % ((bits & _UUID_FREE_BITS) | _UUID_V4_BITS)  # ~60 per record: the cheapest form measured
    return "-".join((text[:8], text[8:12], text[12:16], text[16:20], text[20:]))


def day_number(day: date) -> int:
    return (day - _EPOCH).days


def day_from_number(number: int) -> date:
    return _EPOCH + timedelta(days=number)


class ConversationIdCodec:
    """A keyed permutation of the 122 free bits of a UUID v4 (a 4-round Feistel network).

    The plaintext is `check | day | index`; the check value is secret-ish (derived from the seed), so
    ids of another seed or random uuid4s decode to a wrong check and are rejected.
    """

    def __init__(self, seed: int) -> None:
        self._round_keys = tuple(derive_key(seed, f"feistel-{i}") for i in range(_ROUNDS))
        self._check = derive_key(seed, "check", _CHECK_BITS)

    def encode(self, day: int, index: int) -> str:
        if not 0 <= day < (1 << _DAY_BITS) or not 0 <= index < (1 << _INDEX_BITS):
            raise ValueError(f"day {day} or index {index} out of the id space")
        plain = (self._check << (_DAY_BITS + _INDEX_BITS)) | (day << _INDEX_BITS) | index
        left, right = plain >> 61, plain & _M61
        for key in self._round_keys:
            left, right = right, left ^ (mix64(right ^ key) & _M61)
        cipher = (left << 61) | right
        # Spread the 122 bits around the fixed version (bits 76-79) and variant (bits 62-63) bits.
        bits = ((cipher >> 74) << 80) | (((cipher >> 62) & 0xFFF) << 64) | (cipher & ((1 << 62) - 1))
        return uuid_from_bits(bits)

    def decode(self, conversation_id: str) -> tuple[int, int] | None:
        """(day, index) of an id this codec made, else None."""
        text = conversation_id.replace("-", "")
        if len(text) != 32 or len(conversation_id) != 36:
            return None
        try:
            bits = int(text, 16)
        except ValueError:
            return None
        if (bits >> 76) & 0xF != 4 or (bits >> 62) & 0x3 != 2:
            return None
        cipher = ((bits >> 80) << 74) | (((bits >> 64) & 0xFFF) << 62) | (bits & ((1 << 62) - 1))
        left, right = cipher >> 61, cipher & _M61
        for key in reversed(self._round_keys):
            left, right = right ^ (mix64(left ^ key) & _M61), left
        plain = (left << 61) | right
        if plain >> (_DAY_BITS + _INDEX_BITS) != self._check:
            return None
        return (plain >> _INDEX_BITS) & ((1 << _DAY_BITS) - 1), plain & ((1 << _INDEX_BITS) - 1)


@functools.lru_cache(maxsize=4096)
def _date_prefix(day: int) -> str:
    return day_from_number(day).isoformat()


# The time of day and the milliseconds as ready-made pieces, "T17:31:47." and "956Z": joining three
# strings is several times cheaper than formatting four numbers, on the hot path of rendering.
_TIME_OF_DAY = [f"T{second // 3600:02d}:{second // 60 % 60:02d}:{second % 60:02d}." for second in range(86_400)]
_MILLIS = [f"{millis:03d}Z" for millis in range(1000)]


def iso_ms(epoch_ms: int) -> str:
    """`2024-04-29T17:31:47.956Z`: the real API's timestamp format (UTC, milliseconds, Z)."""
    day, rest = divmod(epoch_ms, 86_400_000)
    second, millis = divmod(rest, 1000)
    return _date_prefix(day) + _TIME_OF_DAY[second] + _MILLIS[millis]
