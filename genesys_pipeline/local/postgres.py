"""A throwaway PostgreSQL server on loopback, for trying and testing deploy/dagster-postgres.yaml.

Dev tooling: the production code location never imports it. It runs Debian's PostgreSQL binaries
(`apt-get install postgresql`: they are in /usr/lib/postgresql/<version>/bin, which is not on PATH):
`initdb` into a new temporary directory, with password (SCRAM) authentication for one role, then
`pg_ctl start` on 127.0.0.1 and a free port, then `createdb`. Stopping it removes the directory.

PostgreSQL refuses to run as root (a CI machine, a container): then the server runs as the `postgres`
user that Debian's package creates (or `nobody` without it), and owns its temporary directory.

    with LocalPostgres() as server:
        os.environ.update(server.environment())    # DAGSTER_PG_HOST, _PORT, _USERNAME, _PASSWORD, _DB

`python -m genesys_pipeline.local.postgres` starts one until Ctrl-C and says which file to `source`
for those variables; a shell that has sourced it can start `dagster-webserver` and `dagster-daemon`
with DAGSTER_HOME holding a copy of deploy/dagster-postgres.yaml.
"""

from __future__ import annotations

import argparse
import contextlib
import glob
import os
import pwd
import secrets
import shlex
import shutil
import signal
import subprocess
import tempfile
from pathlib import Path

from genesys_pipeline.local.processes import free_port

# The users a root process hands the server to, in order of preference.
_UNPRIVILEGED_USERS = ("postgres", "nobody")


class PostgresNotFound(RuntimeError):
    """No PostgreSQL server binaries on this machine."""


def server_binaries() -> Path:
    """The directory with `initdb`, `pg_ctl` and `createdb`: the one on PATH, else Debian's newest
    /usr/lib/postgresql/<version>/bin. PostgresNotFound says how to install them."""
    on_path = shutil.which("pg_ctl")
    if on_path and shutil.which("initdb"):
        return Path(os.path.realpath(on_path)).parent
    debian = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"), key=lambda p: int(p.split("/")[4]))
    if debian:
        return Path(debian[-1]).parent
    raise PostgresNotFound(
        "no PostgreSQL server binaries: pg_ctl is not on PATH nor in /usr/lib/postgresql/<version>/bin; "
        "install them with `apt-get install postgresql` (Debian/Ubuntu)"
    )


class LocalPostgres:
    """One PostgreSQL server in a temporary directory on `host` and `port` (0: a free one), with one
    database `db_name` owned by `username`, whose password is random unless given."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        username: str = "dagster",
        db_name: str = "dagster",
        password: str | None = None,
    ) -> None:
        self.host, self.port = host, port or free_port(host)
        self.username, self.db_name = username, db_name
        self.password = password or secrets.token_urlsafe(16)
        self.directory: Path | None = None
        self._run_as: str | None = None
        self._started = False

    @property
    def data_dir(self) -> Path:
        assert self.directory is not None, "not started"
        return self.directory / "data"

    def start(self) -> LocalPostgres:
        try:
            self._start()
        except BaseException:
            self.stop()
            raise
        return self

    def _start(self) -> None:
        binaries = server_binaries()
        self.directory = Path(tempfile.mkdtemp(prefix="genesys-postgres-"))
        self._run_as = _unprivileged_user() if os.geteuid() == 0 else None
        password_file = self.directory / "password"
        password_file.write_text(self.password + "\n")
        if self._run_as:
            entry = pwd.getpwnam(self._run_as)
            for path in (self.directory, password_file):
                os.chown(path, entry.pw_uid, entry.pw_gid)
        password_file.chmod(0o600)
        self._run([str(binaries / "initdb"), "-D", str(self.data_dir), "-U", self.username, "-E", "UTF8",
                   "--auth=scram-sha-256", f"--pwfile={password_file}", "--no-sync", "--no-instructions"])  # fmt: skip
        password_file.unlink()
        # Only TCP on `host`; the socket in our own directory (Debian's default one is root's).
        options = f"-h {self.host} -p {self.port} -k {shlex.quote(str(self.directory))}"
        self._run([str(binaries / "pg_ctl"), "start", "-D", str(self.data_dir), "-w", "-t", "60",
                   "-l", str(self.directory / "server.log"), "-o", options])  # fmt: skip
        self._started = True
        self._run([str(binaries / "createdb"), "-h", self.host, "-p", str(self.port), "-U", self.username, self.db_name],
                  env=dict(os.environ, PGPASSWORD=self.password))  # fmt: skip

    def _run(self, command: list[str], env: dict[str, str] | None = None) -> None:
        done = subprocess.run(command, user=self._run_as, env=env, cwd=self.directory, stdin=subprocess.DEVNULL,
                              capture_output=True, text=True, timeout=120)  # fmt: skip
        if done.returncode != 0:
            log = self.directory / "server.log" if self.directory else None
            tail = log.read_text()[-2000:] if log and log.is_file() else ""
            raise RuntimeError(
                f"{Path(command[0]).name} failed (exit code {done.returncode}): "
                f"{(done.stderr or done.stdout).strip()[-2000:]}" + (f"\nserver log:\n{tail}" if tail else "")
            )

    def query(self, sql: str) -> str:
        """What `psql` prints for `sql` on this server's database, unaligned and without headers."""
        done = subprocess.run(
            [str(server_binaries() / "psql"), "-h", self.host, "-p", str(self.port), "-U", self.username, "-d",
             self.db_name, "-X", "-t", "-A", "-v", "ON_ERROR_STOP=1", "-c", sql],
            env=dict(os.environ, PGPASSWORD=self.password), capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        if done.returncode != 0:
            raise RuntimeError(f"psql failed (exit code {done.returncode}): {done.stderr.strip()[-2000:]}")
        return done.stdout.strip()

    def stop(self) -> None:
        """Stop the server (fast shutdown: open sessions are ended) and remove its directory; safe to
        call more than once."""
        if self._started:
            self._started = False
            # Going on past a server that is gone already.
            with contextlib.suppress(RuntimeError, OSError, subprocess.SubprocessError):
                self._run([str(server_binaries() / "pg_ctl"), "stop", "-D", str(self.data_dir), "-m", "fast", "-w"])
        if self.directory is not None:
            shutil.rmtree(self.directory, ignore_errors=True)
            self.directory = None

    def environment(self) -> dict[str, str]:
        """The variables that deploy/dagster-postgres.yaml reads, pointed at this server."""
        return {
            "DAGSTER_PG_HOST": self.host,
            "DAGSTER_PG_PORT": str(self.port),
            "DAGSTER_PG_USERNAME": self.username,
            "DAGSTER_PG_PASSWORD": self.password,
            "DAGSTER_PG_DB": self.db_name,
        }

    def __enter__(self) -> LocalPostgres:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def _unprivileged_user() -> str:
    for name in _UNPRIVILEGED_USERS:
        try:
            pwd.getpwnam(name)
            return name
        except KeyError:
            continue
    raise RuntimeError(f"PostgreSQL does not run as root, and none of the users {', '.join(_UNPRIVILEGED_USERS)} "
                       "exists to run it as")  # fmt: skip


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m genesys_pipeline.local.postgres", description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0, help="the server's port on 127.0.0.1 (default: a free one)")
    args = parser.parse_args(argv)
    # SIGTERM like Ctrl-C, from the start, and SIGINT even if started in the background (which ignores
    # it): the server runs on its own (pg_ctl), so only this process's orderly exit stops it.
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, signal.default_int_handler)
    try:
        with LocalPostgres(port=args.port) as server:
            # In a file only its owner reads, not on the terminal: the password is one all the same.
            assert server.directory is not None
            variables = server.directory / "dagster-pg.env"
            variables.write_text("".join(f"export {k}={shlex.quote(v)}\n" for k, v in server.environment().items()))
            variables.chmod(0o600)
            print(f"PostgreSQL is running on {server.host}:{server.port} (database {server.db_name}, user "
                  f"{server.username}); its DAGSTER_PG_* variables: source {variables}\n"
                  "Ctrl-C stops it and deletes its data.", flush=True)  # fmt: skip
            signal.pause()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
