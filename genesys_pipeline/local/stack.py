"""The embedded stack that `make demo` and `make dev` both run, set up in one way.

Both start the Genesys Cloud emulator with the same synthetic contact centre (`emulator_server`), the
S3 and Snowflake stand-ins (`make demo` in threads of its own process with `stand_ins.LocalStack`,
`make dev` as a child process with `spawn_stand_ins` and `stop_stand_ins`) and the bucket
(`create_bucket`). `endpoints_of` says where all of it is, as the `LocalEndpoints` that
`local_resources()` takes; `to_environment` says the same as the GENESYS_* variables from which
`settings.load_settings` reads it back, which is how `make dev` hands it to `dagster dev`.
"""

from __future__ import annotations

import json
import select
import signal
import subprocess
import sys
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Protocol

from genesys_pipeline.local.emulator import EmulatorConfig, EmulatorServer
from genesys_pipeline.local.processes import start_session, stop_session
from genesys_pipeline.local.stand_ins import LocalStackProcess, s3_resource

if TYPE_CHECKING:
    import argparse

    from genesys_pipeline.settings import LocalEndpoints

# The same synthetic contact centre in `make demo`, `make dev` and `make emulator` (the Makefile).
DEFAULT_SEED, DEFAULT_DAILY_VOLUME = 7, 2000
# settings.py's defaults for GENESYS_S3_BUCKET and GENESYS_S3_FILE_FORMAT.
LOCAL_BUCKET, LOCAL_FILE_FORMAT = "genesys-local", "parquet"


class StandIns(Protocol):
    """Running S3/Snowflake stand-ins: `stand_ins.LocalStack` (threads) or a `LocalStackProcess`."""

    s3_endpoint_url: str
    snowflake_connection_args: dict[str, Any]


def add_stack_options(parser: argparse.ArgumentParser, data_dir_holds: str) -> None:
    """The options of `make demo` and `make dev` alike: the emulator's volume, and the directory that
    holds `data_dir_holds`."""
    parser.add_argument("--daily-volume", type=int, default=DEFAULT_DAILY_VOLUME,
                        help="conversations per UTC day in the Genesys emulator (default: %(default)s)")
    parser.add_argument("--data-dir", default="data", help=f"where {data_dir_holds} are kept (default: %(default)s)")


def emulator_server(
    daily_volume: int = DEFAULT_DAILY_VOLUME, host: str = "127.0.0.1", port: int = 0, seed: int = DEFAULT_SEED
) -> EmulatorServer:
    """The Genesys Cloud emulator on `host:port` (0: a free port), listening but not serving yet: `with`
    or `start()` starts it. OSError if the port is taken."""
    return EmulatorServer(EmulatorConfig(host=host, port=port, seed=seed, daily_volume=daily_volume))


def spawn_stand_ins(
    host: str,
    db_path: Path,
    stderr: int | IO[bytes] | None = None,
    cwd: Path | None = None,
    hint: str = "",
    s3_port: int = 0,
    snowflake_port: int = 0,
) -> LocalStackProcess:
    """`stand_ins.spawn_local_stack`, but in a session of its own (`processes.start_session`) and with
    a bounded wait for the endpoints it prints. Ports 0: free ones. `hint` ends the error message if it
    does not start."""
    command = [sys.executable, "-m", "genesys_pipeline.local.stand_ins", "--host", host, "--db-path", str(db_path),
               "--s3-port", str(s3_port), "--snowflake-port", str(snowflake_port)]  # fmt: skip
    process = start_session(command, stdout=subprocess.PIPE, stderr=stderr, cwd=cwd)
    assert process.stdout is not None
    ready, _, _ = select.select([process.stdout], [], [], 120)
    line = process.stdout.readline() if ready else b""
    if not line:
        stop_session(process, "stand-ins")
        raise RuntimeError(
            f"the S3/Snowflake stand-ins did not start (exit code {process.poll()}); is another `make dev` "
            f"or `make demo` using {db_path}"
            + (f", or port {s3_port} or {snowflake_port}?" if s3_port or snowflake_port else "?") + hint
        )
    printed = json.loads(line)
    return LocalStackProcess(
        printed["s3_endpoint_url"], printed["snowflake_connection_args"], process  # type: ignore[arg-type]
    )


def stop_stand_ins(stand_ins: LocalStackProcess) -> None:
    """Stop what `spawn_stand_ins` started: SIGTERM to its session (the stand-ins then stop both servers,
    which writes the Snowflake database to disk), then `processes.stop_session`'s escalation if needed."""
    stop_session(stand_ins.process, "stand-ins", interrupt_signal=signal.SIGTERM)
    if stand_ins.process.stdout:
        stand_ins.process.stdout.close()


def endpoints_of(
    emulator: EmulatorServer,
    stand_ins: StandIns,
    working_dir: str,
    bucket: str = LOCAL_BUCKET,
    file_format: str = LOCAL_FILE_FORMAT,
) -> LocalEndpoints:
    """Where the local resource set finds the running emulator and stand-ins."""
    # Imported here, not at the top: importing settings parses this process's environment, and a bad
    # GENESYS_* value must not break `make dev --help`; here `make dev` reports it as a failed start.
    from genesys_pipeline.settings import LocalEndpoints

    return LocalEndpoints(
        genesys_url=emulator.base_url,
        working_dir=working_dir,
        s3_endpoint_url=stand_ins.s3_endpoint_url,
        s3_bucket=bucket,
        s3_file_format=file_format,
        snowflake_connection_args=stand_ins.snowflake_connection_args,
    )


def create_bucket(endpoints: LocalEndpoints) -> None:
    """Create the bucket on the S3 stand-in unless it is there (moto's servers in one process share
    their buckets)."""
    client = s3_resource(endpoints.s3_endpoint_url).get_client()
    if endpoints.s3_bucket not in {b["Name"] for b in client.list_buckets().get("Buckets", [])}:
        client.create_bucket(Bucket=endpoints.s3_bucket)


def to_environment(endpoints: LocalEndpoints) -> dict[str, str]:
    """The variables from which `settings.load_settings` reads `endpoints` back as `Settings.local`, with
    the local environment selected (so that the code location builds `local_resources(endpoints)`)."""
    return {
        "GENESYS_PIPELINE_ENV": "local",
        "GENESYS_API_BASE_URL": endpoints.genesys_url,
        "GENESYS_WORKING_DIR": endpoints.working_dir,
        "GENESYS_S3_ENDPOINT_URL": endpoints.s3_endpoint_url,
        "GENESYS_S3_BUCKET": endpoints.s3_bucket,
        "GENESYS_S3_FILE_FORMAT": endpoints.s3_file_format,
        "GENESYS_SNOWFLAKE_CONNECTION_ARGS": json.dumps(endpoints.snowflake_connection_args),
    }
