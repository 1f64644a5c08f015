"""The past days whose conversations Snowflake still holds as ongoing: what the daily schedule reloads
beyond its lookback days.

A conversation belongs to the day it started, and a load writes it as Genesys had it at extraction:
an email or a messaging conversation can stay open for days or weeks, and its day is loaded as
`ongoing` (no `conversation_end`) by every run that reads it before it ends. Once the day has left the
lookback, nothing would read it again, and the conversation would stay ongoing in Snowflake for ever.
So every tick asks Snowflake which older days (within a bounded window) still hold ongoing
conversations, and reloads just those: a day without ongoing conversations is never read again, and a
day with some is read once a day until they have all ended, or until it leaves the window.

The lookup must never cost the tick its normal runs: `within_deadline` bounds it in time, and the
caller falls back to the normal days on any error (`describe_error` says what went wrong without
echoing configuration values).
"""

from __future__ import annotations

import dataclasses
import threading
from datetime import date
from typing import Any, Callable, Optional, TypeVar

from genesys_pipeline.steps.snowflake_session import SnowflakeSession

T = TypeVar("T")

# Whether the conversations table exists, in the session's database and schema: on a first tick (no
# load has run yet) there is nothing ongoing, which is not an error.
TABLE_EXISTS_SQL = (
    "SELECT COUNT(*) AS N FROM INFORMATION_SCHEMA.TABLES WHERE TABLE_SCHEMA = %s AND TABLE_NAME = %s"
)


class OngoingLookupError(Exception):
    """The ongoing days could not be looked up (the caller keeps the normal days)."""


def ongoing_by_day_sql(table: str) -> str:
    """Ongoing conversations per day between two days (inclusive); only days that have some."""
    return (
        f"SELECT PARTITION_DATE, COUNT(*) AS N FROM {table} "
        "WHERE CONVERSATION_END IS NULL AND PARTITION_DATE BETWEEN %s AND %s "
        "GROUP BY PARTITION_DATE ORDER BY PARTITION_DATE DESC"
    )


@dataclasses.dataclass(frozen=True)
class OngoingDays:
    """What Snowflake holds as ongoing in a window of days."""

    first_day: date
    last_day: date
    table: str
    table_exists: bool
    by_day: dict[date, int]  # day -> ongoing conversations, only days with at least one; newest first

    def summary(self) -> str:
        window = f"between {self.first_day} and {self.last_day}"
        if not self.table_exists:
            return f"no {self.table} table in Snowflake yet, so no ongoing conversations {window}"
        if not self.by_day:
            return f"no day {window} holds ongoing conversations in {self.table}"
        days = ", ".join(f"{day} ({count})" for day, count in self.by_day.items())
        return f"days {window} holding ongoing conversations in {self.table}: {days}"


def find_ongoing_days(connection: Any, table: str, first_day: date, last_day: date) -> OngoingDays:
    """The days from `first_day` to `last_day` whose rows in `table` (the conversations table, in the
    connection's database and schema) include ongoing conversations, with how many."""
    if first_day > last_day:
        raise ValueError(f"the window's first day {first_day} is after its last day {last_day}")
    session = SnowflakeSession(connection)
    session.resolve_target(OngoingLookupError)
    (exists,) = session.execute(TABLE_EXISTS_SQL, (session.schema, table))
    if not int(exists["n"]):
        return OngoingDays(first_day, last_day, table, table_exists=False, by_day={})
    rows = session.execute(ongoing_by_day_sql(table), (first_day, last_day))
    by_day = {_as_date(row["partition_date"]): int(row["n"]) for row in rows}
    return OngoingDays(first_day, last_day, table, table_exists=True, by_day=dict(sorted(by_day.items(), reverse=True)))


def _as_date(value: Any) -> date:
    return value if isinstance(value, date) else date.fromisoformat(str(value)[:10])


def within_deadline(function: Callable[[], T], seconds: float, what: str) -> T:
    """`function()`'s result, or OngoingLookupError if it takes longer than `seconds` (then it is left to
    finish in a daemon thread: a connection that hangs cannot be interrupted, only abandoned). Errors of
    `function` are raised here."""
    outcome: dict[str, Any] = {}

    def call() -> None:
        try:
            outcome["result"] = function()
        except BaseException as error:  # handed to the caller's thread
            outcome["error"] = error

    worker = threading.Thread(target=call, name=f"deadline: {what}", daemon=True)
    worker.start()
    worker.join(seconds)
    if worker.is_alive():
        raise OngoingLookupError(f"{what} took longer than {seconds:g} s and was abandoned")
    if "error" in outcome:
        raise outcome["error"]
    return outcome["result"]


def describe_error(error: BaseException, limit: int = 300) -> str:
    """The error's type and message, first line, cut at `limit` characters. A pydantic validation error
    is described by its locations and messages only: its text would echo the values it rejected."""
    errors: Optional[Callable[..., Any]] = getattr(error, "errors", None)
    if type(error).__name__ == "ValidationError" and callable(errors):
        details = errors(include_input=False, include_url=False, include_context=False)
        message = "; ".join(f"{'.'.join(str(part) for part in e['loc'])}: {e['msg']}" for e in details)
    else:
        message = str(error).strip().splitlines()[0] if str(error).strip() else ""
    text = f"{type(error).__name__}: {message}" if message else type(error).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."
