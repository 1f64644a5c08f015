"""Snowflake's sessions, transactions and table locks, for the fakesnow server of stand_ins.py.

fakesnow 0.12.1 keeps one DuckDB connection per login and nothing else: no session ids, no SHOW
TRANSACTIONS, no SYSTEM$ABORT_TRANSACTION, no LOCK_TIMEOUT, and `close()` never reaches it (no
masterToken). A client killed inside a transaction leaves that DuckDB transaction open for good, and
the next DELETE of the same rows fails at once with HTTP 500 ("Conflict on tuple deletion!").
Snowflake keeps such a detached transaction too, but lets its user find and abort it, and makes the
next writer wait for the table's lock. This module gives the server that, so that the load's recovery
(steps/snowflake_recovery.py) runs here exactly as it runs on Snowflake:

- login answers a session id and a masterToken, so the connector's `close()` sends
  `/session?delete=true`, which rolls the session's transaction back and ends the session;
- `ALTER SESSION SET QUERY_TAG | LOCK_TIMEOUT | STATEMENT_TIMEOUT_IN_SECONDS` (and UNSET) are
  validated and remembered (other parameters stay no-ops);
- `BEGIN [WORK | TRANSACTION] [NAME <name>]`, COMMIT and ROLLBACK track the session's transaction;
- `SHOW TRANSACTIONS` lists the current user's open transactions with Snowflake's columns;
- `SELECT SYSTEM$ABORT_TRANSACTION(<id>)` rolls that session's transaction back (its user only); the
  aborted session's next statements fail until it sends ROLLBACK, as a DuckDB aborted transaction does;
- DELETE, UPDATE, MERGE and TRUNCATE take their table's lock until the transaction ends (Snowflake
  locks tables, DuckDB rows); another session waits for it up to its LOCK_TIMEOUT (bounded by
  STATEMENT_TIMEOUT_IN_SECONDS) and then fails with error 000625 instead of an HTTP 500;
- a transaction that holds a lock somebody waits for, and whose session has sent nothing for
  `detached_abort_seconds` (Snowflake: 5 minutes), is aborted, as Snowflake does with detached ones.
The error texts are the stand-in's own; Snowflake's exact wording may differ.
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Optional

logger = logging.getLogger("genesys_pipeline.local.fakesnow")

# Snowflake's defaults: 12 hours for a lock, 2 days for a statement.
DEFAULT_LOCK_TIMEOUT, DEFAULT_STATEMENT_TIMEOUT = 43200, 172800



class StatementError(Exception):
    """A statement the stand-in refuses, answered as Snowflake answers a ProgrammingError."""

    def __init__(self, message: str, errno: int, sqlstate: str) -> None:
        super().__init__(message)
        self.message, self.errno, self.sqlstate = message, errno, sqlstate


@dataclass
class Transaction:
    id: int
    name: str
    started_on: datetime


@dataclass
class Session:
    id: int
    token: str
    user: str
    role: str
    connection: Any  # fakesnow's FakeSnowflakeConnection (its DuckDB connection: `_duck_conn`)
    query_tag: str = ""
    lock_timeout: int = DEFAULT_LOCK_TIMEOUT
    statement_timeout: int = DEFAULT_STATEMENT_TIMEOUT
    transaction: Optional[Transaction] = None
    aborted: Optional[int] = None  # a transaction aborted under this session, until it sends ROLLBACK
    locks: set[str] = field(default_factory=set)
    busy: int = 0  # statements in flight
    last_active: float = field(default_factory=time.monotonic)


class Sessions:
    """The server's sessions, their transactions and the table locks; thread-safe."""

    def __init__(self, detached_abort_seconds: float = 300) -> None:
        self.detached_abort_seconds = detached_abort_seconds
        self._changed = threading.Condition()
        self._by_token: dict[str, Session] = {}
        self._lock_holders: dict[str, Session] = {}  # DB.SCHEMA.TABLE -> session
        self._session_ids = itertools.count(1_000_001)
        self._transaction_ids = itertools.count(int(time.time() * 1000) * 1000)

    def add(self, token: str, user: str, role: str, connection: Any) -> Session:
        with self._changed:
            session = Session(next(self._session_ids), token, user, role, connection)
            self._by_token[token] = session
            return session

    def get(self, token: str) -> Optional[Session]:
        with self._changed:
            return self._by_token.get(token)

    def of_connection(self, connection: Any) -> Optional[Session]:
        with self._changed:
            return next((s for s in self._by_token.values() if s.connection is connection), None)

    def snapshot(self) -> list[Session]:
        """Every live session (for tests and for a person debugging the stand-in)."""
        with self._changed:
            return list(self._by_token.values())

    # ----- transactions

    def begin(self, session: Session, name: Optional[str]) -> None:
        with self._changed:
            if session.transaction is None:
                transaction_id = next(self._transaction_ids)
                session.transaction = Transaction(transaction_id, name or f"{transaction_id:x}", datetime.now(timezone.utc))

    def end(self, session: Session) -> None:
        """COMMIT or ROLLBACK went through (or the transaction is gone): free its locks."""
        with self._changed:
            session.transaction = None
            self._release(session)

    def abort(self, session: Session, why: str) -> Optional[int]:
        """Roll back the session's DuckDB transaction; its next statements fail until it sends ROLLBACK."""
        with self._changed:
            transaction = session.transaction
            if transaction is None:
                return None
            try:
                session.connection._duck_conn.rollback()
            except Exception as error:  # already rolled back by DuckDB after a failed statement
                logger.debug("rollback of session %s: %s", session.id, error)
            session.aborted, session.transaction = transaction.id, None
            self._release(session)
            logger.warning("aborted transaction %s (%s) of session %s: %s",
                           transaction.id, transaction.name, session.id, why)  # fmt: skip
            return transaction.id

    def abort_by_id(self, transaction_id: int, by: Session) -> str:
        """SYSTEM$ABORT_TRANSACTION: only the user who started the transaction may abort it."""
        with self._changed:
            owner = next((s for s in self._by_token.values() if s.transaction and s.transaction.id == transaction_id), None)
            if owner is None:  # Snowflake: a transaction already committed or rolled back stays as it is
                return f"Transaction {transaction_id} is not running."
            if owner.user != by.user and by.role.upper() != "ACCOUNTADMIN":
                raise StatementError(
                    f"Insufficient privileges to abort transaction {transaction_id}: it belongs to another user.",
                    3001, "42501",
                )
            self.abort(owner, f"SYSTEM$ABORT_TRANSACTION by session {by.id}")
            return f"Transaction {transaction_id} aborted."

    def close(self, session: Session) -> None:
        """The client logged out: roll back what it left open and forget the session."""
        with self._changed:
            if session.transaction is not None:
                self.abort(session, "its session was closed")
            self._by_token.pop(session.token, None)
            self._release(session)
        try:
            session.connection.close()
        except Exception as error:
            logger.debug("close of session %s: %s", session.id, error)

    def show_transactions(self, by: Session, in_account: bool) -> list[tuple[Session, Transaction]]:
        if in_account and by.role.upper() != "ACCOUNTADMIN":
            raise StatementError("SHOW TRANSACTIONS IN ACCOUNT can only be used by the ACCOUNTADMIN role.", 3001, "42501")
        with self._changed:
            return [(s, s.transaction) for s in self._by_token.values()
                    if s.transaction and (in_account or s.user == by.user)]  # fmt: skip

    # ----- table locks

    def acquire(self, session: Session, table: str) -> None:
        """Wait for the table's lock up to the session's LOCK_TIMEOUT (and STATEMENT_TIMEOUT_IN_SECONDS)."""
        wait = min(session.lock_timeout, session.statement_timeout)
        deadline = time.monotonic() + wait
        with self._changed:
            while True:
                holder = self._lock_holders.get(table)
                if holder is None or holder is session:
                    self._lock_holders[table] = session
                    session.locks.add(table)
                    return
                idle = time.monotonic() - holder.last_active
                if holder.busy == 0 and idle >= self.detached_abort_seconds:
                    why = f"idle {idle:.0f} s while holding the lock on {table} that session {session.id} waits for"
                    self.abort(holder, why)
                    continue
                left = deadline - time.monotonic()
                if left <= 0:
                    transaction = holder.transaction
                    raise StatementError(
                        f"Your statement waited {wait} second(s) (LOCK_TIMEOUT) for the lock on table '{table}', "
                        f"held by transaction {transaction.id if transaction else '?'} "
                        f"({transaction.name if transaction else '?'}) of session {holder.id}, and was aborted.",
                        625, "57014",
                    )
                self._changed.wait(min(left, 0.2))

    def release_if_autocommit(self, session: Session) -> None:
        with self._changed:
            if session.transaction is None:
                self._release(session)

    def _release(self, session: Session) -> None:
        for table in session.locks:
            if self._lock_holders.get(table) is session:
                del self._lock_holders[table]
        session.locks.clear()
        self._changed.notify_all()
