"""No secret anywhere (issue 10): after a successful run and after failing runs, distinctive secrets are
searched in everything the runs left: their stdout and stderr, the whole DAGSTER_HOME (run and event
storage, SQLite files read as bytes, compute logs), the working files, every S3 object and every table
and view of the Snowflake database.

The runs are `dagster job execute` in child processes, as an operator would rerun a day, on a code
location built here (CODE_LOCATION) whose secrets are `dg.EnvVar`s as in production: the Genesys client
secret, the Snowflake password or private key and its password, the stage's AWS secret key and the
personal-data hash key. The tokens the emulator issued are secrets too. Each secret is searched as it
is and in the forms a leak would take (the Basic auth header, URL-encoded); gzip files are searched
unpacked and Parquet files decoded. The scan also looks for what must be there (the run id, a
conversation id), so that it would see a secret in each place if one were there.
"""

from __future__ import annotations

import base64
import dataclasses
import gzip
import io
import json
import os
import shutil
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any, Iterator
from urllib.parse import quote

import pyarrow.parquet as pq
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from genesys_pipeline.local import stand_ins
from genesys_pipeline.local.emulator import EmulatorServer
from genesys_pipeline_tests.conftest import PAST_DAY, new_emulator, run_query

REPOSITORY = Path(__file__).resolve().parents[1]
DAY = PAST_DAY.isoformat()
SCHEMA = "GENESYS"

# The code location of the runs: the project's definitions with resources pointed at this module's
# emulator and stand-ins (SCAN_ENDPOINTS), every secret an EnvVar.
CODE_LOCATION = '''
import json, os
import dagster as dg
from dagster_snowflake import SnowflakeResource
from genesys_pipeline.definitions import build_definitions
from genesys_pipeline.local import stand_ins
from genesys_pipeline.resources.genesys import GenesysResource
from genesys_pipeline.resources.personal_data import PersonalDataProtection
from genesys_pipeline.resources.warehouse import S3Publishing, SnowflakeTarget
from genesys_pipeline.resources.working_storage import WorkingStorage

where = json.loads(os.environ["SCAN_ENDPOINTS"])
if os.environ.get("SNOWFLAKE_PRIVATE_KEY"):
    credentials = {"private_key": dg.EnvVar("SNOWFLAKE_PRIVATE_KEY"),
                   "private_key_password": dg.EnvVar("SNOWFLAKE_PRIVATE_KEY_PASSWORD")}
else:
    credentials = {"password": dg.EnvVar("SNOWFLAKE_PASSWORD")}
defs = build_definitions(resources={
    "genesys": GenesysResource(
        api_base_url=where["genesys_url"], login_base_url=where["genesys_url"],
        client_id=dg.EnvVar("GENESYS_CLIENT_ID"), client_secret=dg.EnvVar("GENESYS_CLIENT_SECRET"),
        job_poll_interval_seconds=0.05, backoff_base_seconds=0.05, backoff_cap_seconds=0.2, max_attempts=2,
        personal_data=PersonalDataProtection(phone_numbers="hash", email_addresses="hash",
                                             hash_key=dg.EnvVar("GENESYS_PII_HASH_KEY")),
    ),
    "working_storage": WorkingStorage(root=where["root"]),
    "s3": stand_ins.s3_resource(where["s3_url"]),
    "s3_publishing": S3Publishing(bucket=where["bucket"]),
    "snowflake": SnowflakeResource(
        account="scan", user="scan_user", database=where["database"], schema="GENESYS", warehouse="WH",
        additional_snowflake_connection_args=where["snowflake_args"], **credentials),
    "snowflake_target": SnowflakeTarget(stage_aws_key_id="AKIASCAN", staging_tables="transient",
                                        stage_aws_secret_key=dg.EnvVar("GENESYS_STAGE_AWS_SECRET_KEY")),
}, executor=dg.in_process_executor)
'''


def _distinct(kind: str) -> str:
    return f"{kind}-{uuid.uuid4().hex}{uuid.uuid4().hex[:8]}"


def _private_key(password: str) -> str:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.BestAvailableEncryption(password.encode())).decode()  # fmt: skip


@dataclasses.dataclass
class Scan:
    """The module's emulator, bucket, database, working location, DAGSTER_HOME and secrets."""

    stack: stand_ins.LocalStack
    emulator: EmulatorServer
    tmp: Path
    bucket: str
    database: str
    secrets: dict[str, str]
    issued_tokens: list[str] = dataclasses.field(default_factory=list)
    outputs: list[tuple[str, bytes]] = dataclasses.field(default_factory=list)  # (which run, stdout+stderr)

    @property
    def home(self) -> Path:
        return self.tmp / "dagster_home"

    @property
    def root(self) -> Path:
        return self.tmp / "working"

    def run(self, name: str, key_pair: bool, **secret_overrides: str) -> subprocess.CompletedProcess[bytes]:
        """`dagster job execute` of the day in a child process, the secrets in its environment."""
        where = {
            "genesys_url": self.emulator.base_url, "root": str(self.root), "s3_url": self.stack.s3_endpoint_url,
            "bucket": self.bucket, "database": self.database, "snowflake_args": self.stack.snowflake_connection_args,
        }  # fmt: skip
        secrets = {**self.secrets, **secret_overrides}
        env = dict(os.environ, DAGSTER_HOME=str(self.home), SCAN_ENDPOINTS=json.dumps(where),
                   GENESYS_CLIENT_ID=self.emulator.config.client_id, GENESYS_CLIENT_SECRET=secrets["client_secret"],
                   GENESYS_STAGE_AWS_SECRET_KEY=secrets["stage_secret_key"], GENESYS_PII_HASH_KEY=secrets["hash_key"])  # fmt: skip
        if key_pair:
            env.update(SNOWFLAKE_PRIVATE_KEY=secrets["private_key"], SNOWFLAKE_PRIVATE_KEY_PASSWORD=secrets["key_password"])
        else:
            env["SNOWFLAKE_PASSWORD"] = secrets["password"]
        command = [str(Path(sys.executable).with_name("dagster")), "job", "execute", "-f", str(self.tmp / "scan_location.py"),
                   "-j", "genesys_conversations", "--tags", json.dumps({"dagster/partition": DAY})]  # fmt: skip
        done = subprocess.run(command, env=env, cwd=REPOSITORY, capture_output=True, timeout=240)
        self.outputs.append((name, done.stdout + done.stderr))
        return done

    def forms(self) -> dict[str, list[bytes]]:
        """Each secret's name and the byte strings that would betray it."""
        found = {name: [value] for name, value in self.secrets.items()}
        basic = f"{self.emulator.config.client_id}:{self.secrets['client_secret']}".encode()
        found["client_secret"].append(base64.b64encode(basic).decode())
        found["private_key"] = [line for line in self.secrets["private_key"].splitlines()[2:-2]]  # the key's body
        for index, token in enumerate(self.issued_tokens):
            found[f"token {index + 1}"] = [token]
        return {name: sorted({v.encode() for v in values} | {quote(v, safe="").encode() for v in values})
                for name, values in found.items()}  # fmt: skip

    # ----- what there is to search: (where, the bytes), gzip unpacked and Parquet decoded as well

    def places(self) -> dict[str, list[tuple[str, bytes]]]:
        client = stand_ins.s3_resource(self.stack.s3_endpoint_url).get_client()
        objects = client.list_objects_v2(Bucket=self.bucket).get("Contents", [])
        snowflake = stand_ins.snowflake_resource(self.stack.snowflake_connection_args, self.database, SCHEMA)
        tables = run_query(snowflake, "SELECT TABLE_NAME FROM INFORMATION_SCHEMA.TABLES WHERE TABLE_SCHEMA = %s", (SCHEMA,))
        return {
            "stdout/stderr": [(f"output of the {name} run", output) for name, output in self.outputs],
            "DAGSTER_HOME": _files(self.home),
            "working files": _files(self.root),
            "S3 objects": [(f"s3://{self.bucket}/{o['Key']}",
                            client.get_object(Bucket=self.bucket, Key=o["Key"])["Body"].read()) for o in objects],
            "Snowflake": [(f"table {t['table_name']}", json.dumps(run_query(snowflake, f"SELECT * FROM {t['table_name']}"),
                                                                  default=str).encode()) for t in tables],
        }  # fmt: skip

    def leaks(self) -> tuple[list[str], dict[str, int]]:
        """(secret name, where) for every secret found; and how many places each source had."""
        forms = self.forms()
        found, sizes = [], {}
        for source, places in self.places().items():
            sizes[source] = len(places)
            for where, data in places:
                readable = _readable(data)
                found += [f"{name} in {source}: {where}" for name, values in forms.items()
                          if any(value in text for text in readable for value in values)]  # fmt: skip
        return found, sizes

    def holds(self, marker: str) -> dict[str, bool]:
        """Whether each source holds `marker` (the scan sees content there)."""
        return {source: any(marker.encode() in text for _, data in places for text in _readable(data))
                for source, places in self.places().items()}  # fmt: skip


def _files(folder: Path) -> list[tuple[str, bytes]]:
    return [(str(p), p.read_bytes()) for p in sorted(folder.rglob("*")) if p.is_file()]


def _readable(data: bytes) -> list[bytes]:
    """The bytes, and what they hold if they are gzip or Parquet."""
    texts = [data]
    if data[:2] == b"\x1f\x8b":
        try:
            texts.append(gzip.decompress(data))
        except (OSError, EOFError):
            pass
    if data[:4] == b"PAR1":
        rows = pq.read_table(io.BytesIO(data)).to_pylist()
        texts.append(json.dumps(rows, default=str).encode())
    return texts


@pytest.fixture(scope="module")
def scan(stack: stand_ins.LocalStack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Scan]:
    """The secrets, an emulator that knows the client's, and one successful run of the day."""
    key_password = _distinct("keypw")
    secrets = {
        "client_secret": _distinct("gsecret"), "wrong_client_secret": _distinct("gwrong"),
        "password": _distinct("sfpw"), "key_password": key_password, "private_key": _private_key(key_password),
        "stage_secret_key": _distinct("awssecret"), "hash_key": _distinct("hashkey"),
    }  # fmt: skip
    emulator = new_emulator(daily_volume=60, client_id=f"scan-client-{uuid.uuid4().hex[:8]}",
                            client_secret=secrets["client_secret"])  # fmt: skip
    tmp = tmp_path_factory.mktemp("secret-scan")
    token = uuid.uuid4().hex[:8]
    scan = Scan(stack, emulator, tmp, f"genesys-scan-{token}", f"SCAN_{token.upper()}", secrets)
    stand_ins.s3_resource(stack.s3_endpoint_url).get_client().create_bucket(Bucket=scan.bucket)
    scan.home.mkdir()
    shutil.copy(REPOSITORY / "dagster.yaml", scan.home / "dagster.yaml")
    (tmp / "scan_location.py").write_text(CODE_LOCATION)
    issue = emulator.app.tokens.issue

    def issue_and_remember(*args: Any) -> dict[str, object]:
        answer = issue(*args)
        scan.issued_tokens.append(str(answer["access_token"]))
        return answer

    emulator.app.tokens.issue = issue_and_remember  # type: ignore[method-assign]
    done = scan.run("successful", key_pair=True)
    assert done.returncode == 0, done.stderr[-3000:].decode()
    yield scan
    emulator.stop()


def assert_no_leak(scan: Scan) -> None:
    leaks, sizes = scan.leaks()
    assert not leaks, f"secrets found: {leaks}"  # names and places only, never the values
    assert all(sizes.values()), f"a source had nothing to scan: {sizes}"


@pytest.mark.slow
def test_no_secret_anywhere_after_a_successful_run(scan: Scan) -> None:
    assert scan.issued_tokens, "the run got no token from the emulator"
    assert_no_leak(scan)
    # The scan does see into every place: the run's id is in its output and in DAGSTER_HOME, and a
    # conversation of the day is in the working files (gzip), S3 (Parquet) and Snowflake.
    conversation = scan.emulator.app.conversations_started(PAST_DAY)[0]
    (run_id,) = {r["extraction_run_id"] for r in run_query(
        stand_ins.snowflake_resource(scan.stack.snowflake_connection_args, scan.database, SCHEMA),
        "SELECT DISTINCT EXTRACTION_RUN_ID FROM CONVERSATIONS")}  # fmt: skip
    seen_run = scan.holds(run_id)
    assert seen_run["stdout/stderr"] and seen_run["DAGSTER_HOME"], seen_run
    seen_conversation = scan.holds(conversation)
    assert all(seen_conversation[s] for s in ("working files", "S3 objects", "Snowflake")), seen_conversation


@pytest.mark.slow
def test_no_secret_anywhere_after_a_run_with_a_rejected_client_secret(scan: Scan) -> None:
    """The wrong secret the run was given is as secret as the right one; Snowflake by password here."""
    done = scan.run("rejected-credentials", key_pair=False, client_secret=scan.secrets["wrong_client_secret"])
    assert done.returncode != 0 and b"invalid_client" in done.stdout + done.stderr
    assert_no_leak(scan)


@pytest.mark.slow
def test_no_secret_anywhere_after_a_run_whose_api_fails(scan: Scan) -> None:
    """A token is issued, then every API request fails (503/504/429/reset) until the run gives up."""
    tokens_before = len(scan.issued_tokens)
    scan.emulator.app.config.fault_rate = 1.0
    try:
        done = scan.run("failing-api", key_pair=True)
    finally:
        scan.emulator.app.config.fault_rate = 0.0
    assert done.returncode != 0 and b"GenesysRetriesExhausted" in done.stdout + done.stderr
    assert len(scan.issued_tokens) > tokens_before
    assert_no_leak(scan)
