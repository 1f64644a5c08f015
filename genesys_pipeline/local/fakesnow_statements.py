"""The statements and routes of the fakesnow server that fakesnow_sessions.py adds (see its docstring):
which statements it answers itself, which take a table lock, and the Starlette handlers around
fakesnow's own (`session_handlers`, installed by stand_ins._fakesnow_app)."""

from __future__ import annotations

import gzip
import json
import re
import secrets
import time
from typing import Any, Optional

from genesys_pipeline.local.fakesnow_sessions import (
    DEFAULT_LOCK_TIMEOUT,
    DEFAULT_STATEMENT_TIMEOUT,
    Session,
    Sessions,
    StatementError,
    Transaction,
)

_SESSION_PARAMETERS = {"QUERY_TAG", "LOCK_TIMEOUT", "STATEMENT_TIMEOUT_IN_SECONDS"}
_BEGIN = re.compile(r"\s*(?:BEGIN|START)(?:\s+(?:WORK|TRANSACTION))?(?:\s+NAME\s+([A-Za-z_][A-Za-z0-9_$]*))?\s*;?\s*", re.I)
_COMMIT = re.compile(r"\s*COMMIT(?:\s+WORK)?\s*;?\s*", re.I)
_ROLLBACK = re.compile(r"\s*ROLLBACK(?:\s+WORK)?\s*;?\s*", re.I)
_SHOW_TRANSACTIONS = re.compile(r"\s*SHOW\s+TRANSACTIONS(\s+IN\s+ACCOUNT)?\s*;?\s*", re.I)
_ABORT = re.compile(r"\s*SELECT\s+SYSTEM\$ABORT_TRANSACTION\s*\(\s*(-?\d+)\s*\)\s*;?\s*", re.I)
_ALTER_SESSION = re.compile(r"\s*ALTER\s+SESSION\s+(SET|UNSET)\s+(.*?)\s*;?\s*", re.I | re.S)
_ASSIGNMENT = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)\s*=\s*('(?:[^'\\]|''|\\.)*'|[^\s,]+)\s*,?\s*", re.S)
_LOCKING_DML = re.compile(r"\s*(DELETE|UPDATE|MERGE|TRUNCATE)\b", re.I)


def locked_table(sql: str, database: Optional[str], schema: Optional[str]) -> Optional[str]:
    """The table a DELETE, UPDATE, MERGE or TRUNCATE writes, as DB.SCHEMA.TABLE; None for other statements."""
    if not _LOCKING_DML.match(sql):
        return None
    from fakesnow.dialect import parse_one
    from sqlglot import exp

    try:
        expression = parse_one(sql)
    except Exception:
        return None
    target = expression.find(exp.Table)
    if target is None:
        return None
    parts = [target.catalog or database or "", target.db or schema or "", target.name]
    return ".".join(part.upper() for part in parts)


def session_parameters(sql: str) -> Optional[dict[str, Optional[str]]]:
    """The parameters an ALTER SESSION SET/UNSET changes that the stand-in keeps, validated; None when
    the statement is something else (or changes only other parameters, which stay no-ops)."""
    match = _ALTER_SESSION.fullmatch(sql)
    if not match:
        return None
    verb, rest = match.group(1).upper(), match.group(2)
    if verb == "UNSET":
        names = [n.strip().upper() for n in rest.split(",") if n.strip()]
        changes: dict[str, Optional[str]] = {n: None for n in names if n in _SESSION_PARAMETERS}
        return changes or None
    changes = {}
    position = 0
    while position < len(rest):
        assignment = _ASSIGNMENT.match(rest, position)
        if not assignment:
            raise StatementError(f"SQL compilation error: cannot parse ALTER SESSION SET {rest!r}", 1003, "42000")
        name, value = assignment.group(1).upper(), assignment.group(2)
        position = assignment.end()
        if name == "QUERY_TAG":
            if not (value.startswith("'") and value.endswith("'")):
                raise StatementError(f"invalid value [{value}] for parameter 'QUERY_TAG'", 1008, "22023")
            changes[name] = value[1:-1].replace("''", "'").replace("\\'", "'")
        elif name in ("LOCK_TIMEOUT", "STATEMENT_TIMEOUT_IN_SECONDS"):
            if not value.isdigit():
                raise StatementError(f"invalid value [{value}] for parameter '{name}'", 1008, "22023")
            changes[name] = value
    return changes or None


def apply_parameters(session: Session, changes: dict[str, Optional[str]]) -> None:
    for name, value in changes.items():
        if name == "QUERY_TAG":
            session.query_tag = value or ""
        elif name == "LOCK_TIMEOUT":
            session.lock_timeout = int(value) if value is not None else DEFAULT_LOCK_TIMEOUT
        else:
            session.statement_timeout = int(value) if value is not None else DEFAULT_STATEMENT_TIMEOUT


def _literal(value: Any) -> str:
    if value is None:
        return "NULL"
    if isinstance(value, int):
        return str(value)
    return "'" + str(value).replace("\\", "\\\\").replace("'", "''") + "'"


def show_transactions_sql(rows: list[tuple[Session, Transaction]]) -> str:
    """SHOW TRANSACTIONS' columns (lower case, as Snowflake's SHOW output), as a SELECT fakesnow can run."""

    def select(session: Any, transaction: Any) -> str:
        started = transaction.started_on.isoformat() if transaction else None
        return (
            f"SELECT {_literal(transaction.id if transaction else None)}::NUMBER(38,0) AS \"id\", "
            f"{_literal(session.user if session else None)}::VARCHAR AS \"user\", "
            f"{_literal(session.id if session else None)}::NUMBER(38,0) AS \"session\", "
            f"{_literal(transaction.name if transaction else None)}::VARCHAR AS \"name\", "
            f"{_literal(started)}::TIMESTAMP_LTZ AS \"started_on\", "
            f"{_literal('running' if transaction else None)}::VARCHAR AS \"state\", "
            f"0::NUMBER(38,0) AS \"scope\""
        )

    if not rows:
        return select(None, None) + " WHERE 1 = 0"
    return " UNION ALL ".join(select(s, t) for s, t in rows)


def text_result_sql(column: str, text: str) -> str:
    return f"SELECT {_literal(text)}::VARCHAR AS \"{column}\""


def session_handlers(ns: dict[str, Any], sessions: Sessions) -> dict[str, Any]:
    """Route handlers that wrap fakesnow's (`ns`: its server module namespace, as stand_ins copies it)
    with `sessions`, keyed by the names of the handlers they replace. Also routes fakesnow's statement
    execution through the table locks (its handlers call `run_in_threadpool` from `ns`)."""
    import duckdb
    import snowflake.connector.errors as sf_errors
    from fakesnow.cursor import FakeSnowflakeCursor
    from starlette.requests import Request
    from starlette.responses import JSONResponse

    original_login, original_query, original_session = ns["login_request"], ns["query_request"], ns["session"]
    run_in_threadpool = ns["run_in_threadpool"]

    async def execute_in_thread(fn: Any, *args: Any, **kwargs: Any) -> Any:
        cursor = getattr(fn, "__self__", None)
        session = sessions.of_connection(cursor._conn) if isinstance(cursor, FakeSnowflakeCursor) else None
        if session is None or fn.__name__ != "execute":
            return await run_in_threadpool(fn, *args, **kwargs)

        def run() -> Any:
            table = locked_table(args[0], cursor._conn.database, cursor._conn.schema)
            try:
                if table:
                    sessions.acquire(session, table)
                return fn(*args, **kwargs)
            except StatementError as error:
                raise sf_errors.ProgrammingError(msg=error.message, errno=error.errno, sqlstate=error.sqlstate) from None
            except duckdb.TransactionException as error:  # e.g. a row conflict the table locks did not foresee
                raise sf_errors.ProgrammingError(msg=f"Transaction error: {error}", errno=625, sqlstate="57014") from None
            finally:
                if table:
                    sessions.release_if_autocommit(session)

        return await run_in_threadpool(run)

    def failed(error: StatementError) -> JSONResponse:
        code = f"{error.errno:06d}"
        return JSONResponse({"data": {"errorCode": code, "sqlState": error.sqlstate}, "code": code,
                             "message": error.message, "success": False})  # fmt: skip

    async def run_instead(request: Request, payload: dict[str, Any], sql: str) -> Any:
        """fakesnow's own handler, on `sql` instead of what the client sent."""
        encoded = request.headers.get("Content-Encoding") == "gzip"
        body = json.dumps({**payload, "sqlText": sql, "bindings": None}).encode()
        body = gzip.compress(body) if encoded else body

        async def receive() -> dict[str, Any]:
            return {"type": "http.request", "body": body, "more_body": False}

        return await original_query(Request(request.scope, receive))

    async def answer(request: Request, session: Session, payload: dict[str, Any]) -> Any:
        sql = str(payload.get("sqlText") or "")
        if _ROLLBACK.fullmatch(sql):
            response = await original_query(request)
            session.aborted = None
            sessions.end(session)
            return response
        if session.aborted is not None:
            raise StatementError(
                f"Transaction {session.aborted} was aborted; this session must send ROLLBACK before anything else.",
                3004, "25P02",
            )
        if begin := _BEGIN.fullmatch(sql):
            response = await run_instead(request, payload, "BEGIN")
            if json.loads(response.body).get("success"):
                sessions.begin(session, begin.group(1))
            return response
        if _COMMIT.fullmatch(sql):
            response = await original_query(request)
            sessions.end(session)
            return response
        if show := _SHOW_TRANSACTIONS.fullmatch(sql):
            listed = sessions.show_transactions(session, in_account=bool(show.group(1)))
            return await run_instead(request, payload, show_transactions_sql(listed))
        if abort := _ABORT.fullmatch(sql):
            status = await run_in_threadpool(sessions.abort_by_id, int(abort.group(1)), session)
            column = f"SYSTEM$ABORT_TRANSACTION({abort.group(1)})"
            return await run_instead(request, payload, text_result_sql(column, status))
        if (changes := session_parameters(sql)) is not None:
            apply_parameters(session, changes)
            return await run_instead(request, payload, text_result_sql("status", "Statement executed successfully."))
        return await original_query(request)

    async def query_request(request: Request) -> Any:
        session = sessions.get(_token(request))
        if session is None:
            return await original_query(request)
        body = await request.body()
        payload = json.loads(gzip.decompress(body) if request.headers.get("Content-Encoding") == "gzip" else body)
        session.busy += 1
        session.last_active = time.monotonic()
        try:
            return await answer(request, session, payload)
        except StatementError as error:
            return failed(error)
        finally:
            session.busy -= 1
            session.last_active = time.monotonic()

    async def login_request(request: Request) -> Any:
        response = await original_login(request)
        content = json.loads(response.body)
        data = content.get("data") or {}
        connection = ns["sessions"].get(data.get("token"))
        if connection is None:
            return response
        body = await request.body()
        login = json.loads(gzip.decompress(body) if request.headers.get("Content-Encoding") == "gzip" else body)
        user = str(login.get("data", {}).get("LOGIN_NAME") or "")
        session = sessions.add(data["token"], user.upper(), request.query_params.get("roleName") or "", connection)
        # A masterToken makes the connector's close() send /session?delete=true (it skips it without one).
        data.update(sessionId=session.id, masterToken=secrets.token_urlsafe(32), validityInSeconds=3600,
                    masterValidityInSeconds=14400)  # fmt: skip
        return JSONResponse(content)

    async def session_request(request: Request) -> Any:
        session = sessions.get(_token(request))
        if session is None or not request.query_params.get("delete"):
            return await original_session(request)
        await run_in_threadpool(sessions.close, session)
        ns["sessions"].pop(session.token, None)
        return JSONResponse({"data": None, "code": None, "message": None, "success": True})

    def _token(request: Request) -> str:
        header = request.headers.get("Authorization") or ""
        return header[17:-1]  # Snowflake Token="<token>", as fakesnow's to_token reads it

    ns["run_in_threadpool"] = execute_in_thread
    return {"login_request": login_request, "query_request": query_request, "session": session_request}
