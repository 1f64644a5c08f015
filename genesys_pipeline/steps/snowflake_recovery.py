"""What a load does about loads that died inside Snowflake (kill -9, a lost machine, a cut network).

A client that disappears with an open transaction leaves it *detached* in Snowflake, still holding
its table locks, and a later DELETE of the same table waits for them (up to LOCK_TIMEOUT, 12 hours
by default). Snowflake aborts such a transaction only after it has blocked another for 5 idle
minutes, or after 4 hours. A load does not wait for that:

1. Its session sets QUERY_TAG (pipeline, run id, the run's days, load token: visible in Snowflake's
   query history), LOCK_TIMEOUT and STATEMENT_TIMEOUT_IN_SECONDS (`SnowflakeTarget`), so no statement
   waits for hours.
2. Its one transaction (all the run's days) is named `GENESYS_LOAD_<target>_<first>_<last>_<token>`
   (BEGIN TRANSACTION NAME ...; the days as YYYYMMDD): the target (a hash of database, schema and table
   prefix), the run's first and last day and the load token. Loads of earlier versions named theirs
   `GENESYS_LOAD_<target>_<YYYYMMDD>_<token>`, one a day: they are recognised too.
3. Before anything else, and again before its transaction if that first look failed or did not cover
   the days, it aborts with SYSTEM$ABORT_TRANSACTION every transaction that SHOW TRANSACTIONS (the
   current user's) lists under a name of this pipeline, for the same target and days overlapping its
   own. Runs that touch the same day never overlap, so no live load owns one: it is a dead load's, and
   none can appear later in the run.
4. It drops the staging tables (`<TABLE>_LOADING_<token>`) of loads that are over: those of a
   transaction it has just aborted, and those older than the statement timeout whose token no running
   transaction carries (a live load is inside its transaction for all but a few statements before
   and after it; its staging tables live from just before its BEGIN to its end).

Transactions of other days are left alone: their own next load aborts them, or Snowflake does once
they block someone for 5 minutes (hence a lock timeout above that). Temporary staging tables are
private to their session and go with it.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
import uuid
from datetime import date, datetime, timedelta, timezone
from typing import Any, Callable, Collection, Optional, Sequence

from genesys_pipeline.contracts.tables import TABLES
from genesys_pipeline.resources.warehouse import SnowflakeTarget
from genesys_pipeline.steps.snowflake_session import SnowflakeSession
from genesys_pipeline.steps.snowflake_sql import (
    ABORT_TRANSACTION_SQL,
    QUERY_TAG_SQL,
    SHOW_TRANSACTIONS_SQL,
    STAGING_TABLES_SQL,
    drop_table_sql,
    session_timeouts_sql,
)

PIPELINE = "genesys_pipeline"
TRANSACTION_PREFIX = "GENESYS_LOAD_"
_TOKEN = r"\d{14}_[0-9A-F]{6}"  # the load's start, UTC, and a random part
_OLD_TOKEN = r"[0-9A-F]{8}"  # staging tables of versions before the start was part of the token
# GENESYS_LOAD_<target>_<first day>[_<last day>]_<token>: without a last day, one day (earlier versions)
_TRANSACTION_NAME = re.compile(rf"{TRANSACTION_PREFIX}([0-9A-F]{{8}})_(\d{{8}})(?:_(\d{{8}}))?_({_TOKEN})")


def new_load_token(now: Optional[datetime] = None) -> str:
    """`YYYYMMDDHHMMSS_XXXXXX`: when the load started (UTC), so any later load can tell its age."""
    return f"{(now or datetime.now(timezone.utc)):%Y%m%d%H%M%S}_{uuid.uuid4().hex[:6].upper()}"


def token_started(token: str) -> Optional[datetime]:
    if not re.fullmatch(_TOKEN, token):
        return None
    return datetime.strptime(token[:14], "%Y%m%d%H%M%S").replace(tzinfo=timezone.utc)


def target_id(database: Optional[str], schema: Optional[str], table_prefix: str) -> str:
    """Eight hex digits naming where a load writes, so that loads of other schemas are never touched."""
    where = f"{database}.{schema}.{table_prefix}".upper()
    return hashlib.sha256(where.encode()).hexdigest()[:8].upper()


def transaction_name(target: str, days: Sequence[date], token: str) -> str:
    """Names the run's days by the first and last (61 characters; Snowflake allows 255)."""
    return f"{TRANSACTION_PREFIX}{target}_{min(days):%Y%m%d}_{max(days):%Y%m%d}_{token}"


def query_tag(run_id: Optional[str], partition_keys: Sequence[str], token: str) -> str:
    keys = sorted(partition_keys)
    partition = (keys[0] if len(keys) == 1 else f"{keys[0]}...{keys[-1]}") if keys else None
    tag = {"pipeline": PIPELINE, "run_id": run_id, "partition": partition, "load": token}
    return json.dumps({key: value for key, value in tag.items() if value is not None})


@dataclasses.dataclass(frozen=True)
class Recovered:
    """What a load cleaned up before its day's transaction."""

    aborted: list[str]  # "<id> (<name>, started <when>)"
    dropped: list[str]  # staging tables


def configure_session(
    session: SnowflakeSession, target: SnowflakeTarget, token: str, run_id: Optional[str], partition_keys: Sequence[str]
) -> None:
    """The session's timeouts and QUERY_TAG (the run and its days); before anything else runs."""
    session.execute(session_timeouts_sql(target.lock_timeout_seconds, target.statement_timeout_seconds))
    tag_run(session, run_id, partition_keys, token)


def tag_run(session: SnowflakeSession, run_id: Optional[str], partition_keys: Sequence[str], token: str) -> None:
    session.execute(QUERY_TAG_SQL, (query_tag(run_id, partition_keys, token),))


def recover(
    session: SnowflakeSession,
    target: SnowflakeTarget,
    days: Collection[date],
    own_token: str,
    warn: Callable[[str], None],
    now: Optional[datetime] = None,
) -> Recovered:
    """Abort this target's detached transactions of days overlapping `days`, and drop dead loads' staging
    tables (docstring)."""
    ours = target_id(session.database, session.schema, target.table_prefix)
    aborted, aborted_tokens, running_tokens = [], set(), set()
    for row in session.execute(SHOW_TRANSACTIONS_SQL):
        match = _TRANSACTION_NAME.fullmatch(str(row.get("name") or ""))
        if not match or match.group(1) != ours or match.group(4) == own_token:
            continue
        first = _day(match.group(2))
        last = _day(match.group(3)) if match.group(3) else first
        shared = sorted(day for day in days if first <= day <= last)
        if not shared:
            running_tokens.add(match.group(4))
            continue
        described = f"{row.get('id')} ({row.get('name')}, started {row.get('started_on')})"
        of_days = ", ".join(str(day) for day in shared)
        try:
            session.execute(ABORT_TRANSACTION_SQL, (int(row["id"]),))
        except Exception as error:  # e.g. started by another user: the DELETE then waits, bounded by LOCK_TIMEOUT
            warn(f"could not abort the transaction {described} of an earlier load of {of_days}: {error}")
            running_tokens.add(match.group(4))
            continue
        warn(f"aborted the transaction {described}: an earlier load of {of_days} that never finished")
        aborted.append(described)
        aborted_tokens.add(match.group(4))
    dropped = _drop_abandoned_staging(session, target, own_token, aborted_tokens, running_tokens, now, warn)
    return Recovered(aborted, dropped)


def _drop_abandoned_staging(
    session: SnowflakeSession,
    target: SnowflakeTarget,
    own_token: str,
    aborted_tokens: set[str],
    running_tokens: set[str],
    now: Optional[datetime],
    warn: Callable[[str], None],
) -> list[str]:
    now = now or datetime.now(timezone.utc)
    oldest_live = now - timedelta(seconds=target.statement_timeout_seconds)
    names = "|".join(re.escape(target.table_name(table.name)) for table in TABLES)
    staging = re.compile(rf"({names})_LOADING_({_TOKEN}|{_OLD_TOKEN})")
    pattern = f"{target.table_prefix}%_LOADING_%".upper()
    dropped = []
    for row in session.execute(STAGING_TABLES_SQL, (session.schema, pattern)):
        name = str(row.get("table_name") or "").upper()
        match = staging.fullmatch(name)
        if not match or match.group(2) == own_token or match.group(2) in running_tokens:
            continue
        started = token_started(match.group(2)) or _as_utc(row.get("created"))
        if match.group(2) in aborted_tokens or (started is not None and started < oldest_live):
            session.execute(drop_table_sql(name))
            dropped.append(name)
    if dropped:
        warn(f"dropped the staging tables of loads that never finished: {', '.join(dropped)}")
    return dropped


def _day(yyyymmdd: str) -> date:
    return date(int(yyyymmdd[:4]), int(yyyymmdd[4:6]), int(yyyymmdd[6:]))


def _as_utc(value: Any) -> Optional[datetime]:
    if not isinstance(value, datetime):
        return None
    return value if value.tzinfo else value.replace(tzinfo=timezone.utc)
