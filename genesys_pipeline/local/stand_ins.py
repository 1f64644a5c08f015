"""Local stand-ins for S3 and Snowflake that speak the real wire protocols.

- S3: moto's server, HTTP on loopback. dagster-aws `S3Resource(endpoint_url=...)` talks to it with
  boto3 as it would to AWS (moto checks no credentials or signatures).
- Snowflake: fakesnow (Snowflake SQL on DuckDB) in server mode. dagster-snowflake `SnowflakeResource`
  talks to it with the real `snowflake.connector` over HTTP, via `additional_snowflake_connection_args`.

Both are servers, so other processes reach them too (Dagster runs each run, and in a deployment each
step, in a process of its own): `python -m genesys_pipeline.local.stand_ins [--db-path DIR]` runs both in the foreground and
prints their endpoints as one JSON line; `spawn_local_stack()` does that from Python.

fakesnow 0.12.1 is patched here, and only here (hence its exact pin in setup.py):
1. DuckDB cannot read `s3://` here (its httpfs extension cannot be downloaded), so COPY INTO from an
   S3 stage fails: `install_fakesnow_s3_shim` registers an fsspec S3 filesystem instead.
Patches 1-3 live in fakesnow_patches.py; 4 and 5 here and in fakesnow_sessions.py.
2. DuckDB adds a column per `key=value/` path segment (our `year=/month=/day=` layout); Snowflake
   never does. Turned off by `fix_fakesnow`.
3. The server sends a NULL TIMESTAMP_TZ/NTZ/LTZ as 1970-01-01. Fixed by `fix_fakesnow`.
4. The server keeps ONE module-level in-memory database, and its `FAKESNOW_DB_PATH` session parameter
   fails on the 2nd login: `start_fakesnow_server` serves its own shared, optionally persistent one.
5. The server has no session ids, transaction bookkeeping or table locks, so a client killed inside a
   transaction blocked the next DELETE with HTTP 500 until a restart: `fakesnow_sessions.py` adds what
   Snowflake has (SHOW TRANSACTIONS, SYSTEM$ABORT_TRANSACTION, LOCK_TIMEOUT, close() that rolls back).
The measurements behind these choices: ../shared/reference/test-infra.md.
"""

from __future__ import annotations

import importlib
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import types
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from genesys_pipeline.local import fakesnow_patches
from genesys_pipeline.local.fakesnow_patches import fix_fakesnow, register_database
from genesys_pipeline.local.fakesnow_sessions import Sessions
from genesys_pipeline.local.fakesnow_statements import session_handlers

if TYPE_CHECKING:
    from dagster_aws.s3 import S3Resource
    from dagster_snowflake import SnowflakeResource

# Neither stand-in checks credentials, but boto3 and pyarrow want some.
DUMMY_AWS_KEY, DUMMY_AWS_SECRET, REGION = "testing", "testing", "us-east-1"

# Statements that only matter on real Snowflake (fakesnow cannot parse them), answered "Statement
# executed successfully." without running. A no-op ALTER SESSION ignores a TIMEZONE change too:
# fakesnow sessions are always UTC.
DEFAULT_NOP_REGEXES = (r"^\s*ALTER\s+SESSION\b", r"^\s*CREATE\s+(OR\s+REPLACE\s+)?STORAGE\s+INTEGRATION\b")


@dataclass
class MotoS3:
    """A running moto S3 server; `endpoint_url` goes to `S3Resource(endpoint_url=...)`."""

    endpoint_url: str
    _server: Any = field(repr=False)

    def stop(self) -> None:
        self._server.stop()


def install_fakesnow_s3_shim(endpoint_url: str) -> None:
    """fakesnow's DuckDB reads `s3://` from the moto server at `endpoint_url` (fakesnow_patches.py)."""
    fakesnow_patches.install_fakesnow_s3_shim(endpoint_url, REGION, DUMMY_AWS_KEY, DUMMY_AWS_SECRET)


def start_moto_s3(host: str = "127.0.0.1", port: int = 0) -> MotoS3:
    """Start moto's S3 server in a daemon thread (port 0: a free one). Its state is in memory, and in
    module globals: all moto servers of one process serve the SAME buckets."""
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # else one INFO line per request
    server = ThreadedMotoServer(ip_address=host, port=port, verbose=False)
    server.start()
    bound_host, bound_port = server.get_host_and_port()
    return MotoS3(endpoint_url=f"http://{bound_host}:{bound_port}", _server=server)


def _fakesnow_app(fs: Any, sessions: Sessions) -> Any:
    """fakesnow's Starlette app, bound to the database `fs` and to a session table of its own, with
    Snowflake's sessions, transactions and table locks (`fakesnow_sessions`) around its handlers.

    `fakesnow.server`'s handlers read the module globals `shared_fs` and `sessions`; rebinding them to
    a copy of the module namespace gives each server started here its own database.
    """
    from starlette.applications import Starlette
    from starlette.routing import Route

    # NB `import fakesnow.server` would rebind `fakesnow.server` (a function) to the submodule.
    fss = importlib.import_module("fakesnow.server")
    ns = dict(vars(fss), shared_fs=fs, sessions={})
    for name in ("login_request", "query_request", "session", "monitoring_query", "to_conn"):
        fn = getattr(fss, name)
        ns[name] = types.FunctionType(fn.__code__, ns, fn.__name__, fn.__defaults__, fn.__closure__)
    ns.update(session_handlers(ns, sessions))
    routes = [Route(r.path, ns.get(r.endpoint.__name__, r.endpoint), methods=r.methods) for r in fss.routes]
    return Starlette(routes=routes)


@dataclass
class FakesnowServer:
    """A running fakesnow server; `connection_args` goes to
    `SnowflakeResource(additional_snowflake_connection_args=...)` or `snowflake.connector.connect`."""

    connection_args: dict[str, Any]
    sessions: Sessions = field(repr=False)  # its sessions and their transactions, for tests and debugging
    _server: Any = field(repr=False)
    _thread: threading.Thread = field(repr=False)
    _fs: Any = field(repr=False)

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join()
        self._fs.duck_conn.close()  # checkpoints, and frees db_path for the next server


def start_fakesnow_server(
    db_path: str | None = None,
    host: str = "127.0.0.1",
    port: int = 0,
    nop_regexes: tuple[str, ...] = DEFAULT_NOP_REGEXES,
    detached_abort_seconds: float = 300,
) -> FakesnowServer:
    """Start a fakesnow server in a daemon thread (port 0: a free one).

    All its connections share one database, as an asset and its check need; each server has its own.
    With `db_path` it persists as `db_path/<DATABASE>.db` across restarts (tables and load history;
    stages and file formats live in memory: create them on every run). One process at a time may
    open `db_path`. COPY INTO from S3 stages needs `install_fakesnow_s3_shim` (before or after).
    A transaction that blocks another's lock while its session has been silent for
    `detached_abort_seconds` is aborted (Snowflake: 5 minutes; see fakesnow_sessions).
    """
    import uvicorn
    from fakesnow.instance import FakeSnow

    fix_fakesnow()
    if db_path:
        os.makedirs(db_path, exist_ok=True)
    fs = FakeSnow(db_path=db_path, nop_regexes=list(nop_regexes))
    register_database(fs)
    sock = socket.socket()
    sock.bind((host, port))  # bound here, so the port is known (and ours) before the thread starts
    sessions = Sessions(detached_abort_seconds)
    server = uvicorn.Server(uvicorn.Config(_fakesnow_app(fs, sessions), log_level="warning"))
    logging.getLogger("fakesnow.server").setLevel(logging.WARNING)  # else one INFO line per login
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, name="fakesnow", daemon=True)
    thread.start()
    while thread.is_alive() and not server.started:
        threading.Event().wait(0.02)
    if not server.started:
        raise RuntimeError("fakesnow server failed to start")
    args = {
        "host": host, "port": sock.getsockname()[1], "protocol": "http",
        # Bounds retries, not statements (the connector's cancel is a no-op in fakesnow). A fakesnow
        # HTTP 500 (unsupported SQL) is deterministic: fail in 1 s, not after re-running it for 30 s.
        "network_timeout": 1,
        "session_parameters": {"CLIENT_OUT_OF_BAND_TELEMETRY_ENABLED": False},
    }  # fmt: skip
    return FakesnowServer(connection_args=args, sessions=sessions, _server=server, _thread=thread, _fs=fs)


def s3_resource(endpoint_url: str) -> S3Resource:
    """dagster-aws `S3Resource` for an S3 stand-in, with dummy credentials."""
    from dagster_aws.s3 import S3Resource

    credentials = {"aws_access_key_id": DUMMY_AWS_KEY, "aws_secret_access_key": DUMMY_AWS_SECRET}
    return S3Resource(endpoint_url=endpoint_url, region_name=REGION, **credentials)


def snowflake_resource(connection_args: dict[str, Any], database: str, schema: str) -> SnowflakeResource:
    """dagster-snowflake `SnowflakeResource` for a fakesnow server. Account, user, password, warehouse
    and role are required fields, here dummies: fakesnow checks none of them."""
    from dagster_snowflake import SnowflakeResource

    return SnowflakeResource(
        account="fakesnow", user="fake", password="snow", warehouse="FAKE_WH", role="FAKE_ROLE",
        database=database, schema=schema, additional_snowflake_connection_args=dict(connection_args),
    )  # fmt: skip


class LocalStack:
    """moto + fakesnow (S3 shim pointed at that moto) in threads of this process; a context manager.

    >>> with LocalStack() as stack:
    ...     s3 = s3_resource(stack.s3_endpoint_url)
    ...     snowflake = snowflake_resource(stack.snowflake_connection_args, "RAW", "GENESYS")
    """

    def __init__(
        self, db_path: str | None = None, host: str = "127.0.0.1", s3_port: int = 0, snowflake_port: int = 0
    ) -> None:
        self.s3 = start_moto_s3(host, s3_port)
        install_fakesnow_s3_shim(self.s3.endpoint_url)
        try:
            self.snowflake = start_fakesnow_server(db_path, host, snowflake_port)
        except BaseException:
            self.s3.stop()
            raise
        self.s3_endpoint_url = self.s3.endpoint_url
        self.snowflake_connection_args = self.snowflake.connection_args

    def stop(self) -> None:
        self.snowflake.stop()
        self.s3.stop()

    def __enter__(self) -> LocalStack:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


@dataclass
class LocalStackProcess:
    """A `python -m genesys_pipeline.local.stand_ins` child process, and the endpoints it printed."""

    s3_endpoint_url: str
    snowflake_connection_args: dict[str, Any]
    process: subprocess.Popen[str] = field(repr=False)

    def stop(self, timeout: float = 30) -> None:
        self.process.send_signal(signal.SIGTERM)  # main() stops both cleanly, persisting the database
        self.process.wait(timeout)
        if self.process.stdout:
            self.process.stdout.close()


def spawn_local_stack(
    db_path: str | None = None, host: str = "127.0.0.1", s3_port: int = 0, snowflake_port: int = 0
) -> LocalStackProcess:
    """Run moto + fakesnow in a child process, for when they must outlive this process or live apart
    from it (the local demo, restart tests). Returns once both accept connections."""
    cmd = [sys.executable, "-m", __name__, "--host", host, "--s3-port", str(s3_port)]
    cmd += ["--snowflake-port", str(snowflake_port)] + (["--db-path", db_path] if db_path else [])
    process = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
    if not (line := process.stdout.readline() if process.stdout else ""):
        raise RuntimeError(f"stand-ins exited with {process.wait(30)} before printing their endpoints")
    endpoints = json.loads(line)
    return LocalStackProcess(endpoints["s3_endpoint_url"], endpoints["snowflake_connection_args"], process)


def main(argv: list[str] | None = None) -> None:
    """Run both stand-ins until SIGINT or SIGTERM; print their endpoints as one JSON line."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m genesys_pipeline.local.stand_ins", description=main.__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--s3-port", type=int, default=0, help="default: a free port")
    parser.add_argument("--snowflake-port", type=int, default=0, help="default: a free port")
    parser.add_argument("--db-path", help="persist the Snowflake databases in this directory")
    args = parser.parse_args(argv)
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):  # set explicitly: `cmd &` in a script ignores SIGINT
        signal.signal(signum, lambda *_: stop.set())
    with LocalStack(args.db_path, args.host, args.s3_port, args.snowflake_port) as stack:
        endpoints = {"s3_endpoint_url": stack.s3_endpoint_url}
        endpoints["snowflake_connection_args"] = stack.snowflake_connection_args
        print(json.dumps(endpoints), flush=True)
        stop.wait()


if __name__ == "__main__":
    main()
