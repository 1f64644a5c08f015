"""The S3 and Snowflake stand-ins, driven over their real wire protocols.

S3 through dagster-aws `S3Resource.get_client()` (boto3, HTTP, moto); Snowflake through dagster-snowflake
`SnowflakeResource.get_connection()` (the real connector, HTTP, fakesnow). The only patches are those of
`genesys_pipeline.local.stand_ins`, so these tests fail loudly if one stops applying to the pinned fakesnow.
"""

from __future__ import annotations

import datetime as dt
import gzip
import hashlib
import io
import json
import threading
import time
import uuid
from decimal import Decimal
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from boto3.s3.transfer import TransferConfig
from dagster_snowflake import SnowflakeResource
from snowflake.connector import DictCursor
from snowflake.connector.errors import Error as SnowflakeError
from snowflake.connector.errors import ProgrammingError

from genesys_pipeline.local import fakesnow_patches, stand_ins

pytestmark = pytest.mark.filterwarnings("ignore:Arrow output on a DB-API result:UserWarning")

UTC = dt.timezone.utc
MB = 1024 * 1024
DAY_PREFIX = "conversations/year=2024/month=05/day=08/"  # the key layout, under the stage URL
WINDOW = (dt.datetime(2024, 5, 8, tzinfo=UTC), dt.datetime(2024, 5, 9, tzinfo=UTC))

HOSTILE = [
    'He said "hi", then left',
    "O'Brien, Jr.; DROP TABLE x; --",
    "line 1\nline 2\r\nline 3",
    "emoji 😀🎧 and a ZWJ 👩‍💻",
    "日本語のテキスト",
    "مرحبا بالعالم",
    "Ünïcödé — ñ",
    "tab\tand back\\slash",
    "  padded  ",
]

PARQUET_SCHEMA = pa.schema(
    [
        pa.field("conversation_id", pa.string(), nullable=False),
        pa.field("conversation_start", pa.timestamp("us", tz="UTC")),
        pa.field("duration_ms", pa.int64()),
        pa.field("mos", pa.decimal128(4, 2)),
        pa.field("is_abandoned", pa.bool_()),
        pa.field("customer_name", pa.string()),
        pa.field("payload", pa.string()),  # JSON text, for the VARIANT column
    ]
)
COLUMNS = PARQUET_SCHEMA.names
CHICAGO_CDT = dt.timezone(dt.timedelta(hours=-5))
# The last hours of 2024-05-08 UTC, written from a -05:00 clock; integers past 2**53; hostile text.
ROWS: list[tuple[Any, ...]] = [
    (
        f"c-{i:02d}",
        dt.datetime(2024, 5, 8, 18, 59, 59, 999_999, tzinfo=CHICAGO_CDT) - dt.timedelta(hours=i),
        2**53 + i,
        Decimal("4.25"),
        i % 2 == 0,
        text,
        json.dumps({"text": text, "n": [i, None, True]}),
    )
    for i, text in enumerate(HOSTILE)
] + [("c-empty", dt.datetime(2024, 5, 8, 0, 0, tzinfo=UTC), 0, None, None, "", None)]

TABLE_DDL = """CREATE TABLE IF NOT EXISTS {table} (
    conversation_id VARCHAR NOT NULL, conversation_start TIMESTAMP_TZ, duration_ms NUMBER(38, 0),
    mos NUMBER(4, 2), is_abandoned BOOLEAN, customer_name VARCHAR, payload VARIANT)"""
COPY_PARQUET = """COPY INTO {table} FROM @{stage}/{prefix} FILES = ('part.parquet')
    FILE_FORMAT = (TYPE = PARQUET) MATCH_BY_COLUMN_NAME = CASE_INSENSITIVE FORCE = TRUE
    ON_ERROR = ABORT_STATEMENT"""


# ##### FIXTURES AND HELPERS (`stack`, the module's moto and fakesnow, comes from conftest.py)


@pytest.fixture(scope="module")
def s3(stack: stand_ins.LocalStack) -> Any:
    return stand_ins.s3_resource(stack.s3_endpoint_url).get_client()


@pytest.fixture(scope="module")
def bucket(s3: Any) -> str:
    name = f"genesys-raw-{uuid.uuid4().hex[:8]}"  # moto's buckets are process-wide: keep names unique
    s3.create_bucket(Bucket=name)
    return name


@pytest.fixture(scope="module")
def snowflake(stack: stand_ins.LocalStack) -> SnowflakeResource:
    return stand_ins.snowflake_resource(stack.snowflake_connection_args, database="RAW", schema="GENESYS")


def parquet_bytes(rows: list[tuple[Any, ...]]) -> bytes:
    table = pa.Table.from_pylist([dict(zip(COLUMNS, row)) for row in rows], schema=PARQUET_SCHEMA)
    buffer = io.BytesIO()
    pq.write_table(table, buffer)
    return buffer.getvalue()


def create_table_and_stage(snowflake: SnowflakeResource, bucket: str, table: str, stage: str) -> None:
    with snowflake.get_connection() as conn:
        cur = conn.cursor()
        cur.execute(TABLE_DDL.format(table=table))
        # The CREDENTIALS clause prod would send; fakesnow ignores it (the S3 shim decides where to read).
        cur.execute(
            f"CREATE STAGE IF NOT EXISTS {stage} URL = 's3://{bucket}/prefix/' "
            "CREDENTIALS = (AWS_KEY_ID = 'testing' AWS_SECRET_KEY = 'testing')"
        )


def load_partition(snowflake: SnowflakeResource, table: str, stage: str, prefix: str = DAY_PREFIX) -> list[dict]:
    """The pipeline's reload of one day, in ONE transaction; returns the COPY result rows by name."""
    with snowflake.get_connection() as conn:
        cur = conn.cursor(DictCursor)
        cur.execute("BEGIN")
        try:
            cur.execute(f"DELETE FROM {table} WHERE conversation_start >= %s AND conversation_start < %s", WINDOW)
            cur.execute(COPY_PARQUET.format(table=table, stage=stage, prefix=prefix))
            results = cur.fetchall()
            cur.execute("COMMIT")
        except Exception:
            cur.execute("ROLLBACK")
            raise
    return results


def select_all(snowflake: SnowflakeResource, table: str) -> list[tuple[Any, ...]]:
    with snowflake.get_connection() as conn:
        cur = conn.cursor()
        cur.execute(f"SELECT {', '.join(COLUMNS)} FROM {table} ORDER BY conversation_id")
        return [parse_variant(row) for row in cur.fetchall()]


def parse_variant(row: tuple[Any, ...]) -> tuple[Any, ...]:
    """The row with its last column (VARIANT) parsed: the connector returns a VARIANT as JSON text,
    formatted differently by fakesnow (the source text) and Snowflake (pretty-printed)."""
    return (*row[:-1], None if row[-1] is None else json.loads(row[-1]))


# ##### S3


def test_s3_put_with_sse_and_list_by_prefix(s3: Any, bucket: str) -> None:
    """SSE-S3 is echoed and kept; prefix and delimiter listings see the day layout."""
    day_09 = "prefix/conversations/year=2024/month=05/day=09/"
    keys = [f"prefix/{DAY_PREFIX}part.parquet", f"prefix/{DAY_PREFIX}other.parquet", f"{day_09}part.parquet"]
    for key in keys:
        response = s3.put_object(Bucket=bucket, Key=key, Body=b"x", ServerSideEncryption="AES256")
        assert response["ServerSideEncryption"] == "AES256"
    assert s3.head_object(Bucket=bucket, Key=keys[0])["ServerSideEncryption"] == "AES256"

    listed = s3.list_objects_v2(Bucket=bucket, Prefix=f"prefix/{DAY_PREFIX}")
    assert sorted(obj["Key"] for obj in listed["Contents"]) == sorted(keys[:2])
    days = s3.list_objects_v2(Bucket=bucket, Prefix="prefix/conversations/year=2024/month=05/", Delimiter="/")
    assert [p["Prefix"] for p in days["CommonPrefixes"]] == [f"prefix/{DAY_PREFIX}", day_09]


def test_s3_multipart_upload_keeps_sse(s3: Any, bucket: str, tmp_path: Path) -> None:
    """A 20 MiB upload goes in 3 parts and keeps ServerSideEncryption=AES256."""
    payload = b"".join(hashlib.sha256(str(i).encode()).digest() for i in range(20 * MB // 32))
    (source := tmp_path / "big.bin").write_bytes(payload)
    key = "prefix/multipart/big.bin"
    config = TransferConfig(multipart_threshold=8 * MB, multipart_chunksize=8 * MB)
    s3.upload_file(str(source), bucket, key, ExtraArgs={"ServerSideEncryption": "AES256"}, Config=config)

    head = s3.head_object(Bucket=bucket, Key=key)
    assert head["ServerSideEncryption"] == "AES256"
    assert head["ETag"].endswith('-3"')  # the multipart ETag: really 3 parts
    assert s3.get_object(Bucket=bucket, Key=key)["Body"].read() == payload


# ##### SNOWFLAKE


def test_parquet_partition_load_round_trips_and_reruns_without_duplicates(
    s3: Any, bucket: str, snowflake: SnowflakeResource
) -> None:
    """DELETE + COPY in one transaction loads every value exactly, a rerun replaces rather than
    duplicates, other days are untouched, and a second connection sees the committed rows."""
    key = f"prefix/{DAY_PREFIX}part.parquet"
    s3.put_object(Bucket=bucket, Key=key, Body=parquet_bytes(ROWS), ServerSideEncryption="AES256")
    create_table_and_stage(snowflake, bucket, "conversations_pq", "raw_stage")
    other_day = ("c-other-day", dt.datetime(2024, 5, 9, tzinfo=UTC), 1, Decimal("1.00"), False, "kept", None)
    with snowflake.get_connection() as conn:
        placeholders = ", ".join(["%s"] * len(COLUMNS))
        conn.cursor().execute(f"INSERT INTO conversations_pq ({', '.join(COLUMNS)}) VALUES ({placeholders})", other_day)

    for _run in ("first", "rerun"):
        results = load_partition(snowflake, "conversations_pq", "raw_stage")
        assert [(r["status"], r["rows_loaded"]) for r in results] == [("LOADED", len(ROWS))]
        assert results[0]["file"] == f"s3://{bucket}/{key}"
        assert select_all(snowflake, "conversations_pq") == sorted([parse_variant(r) for r in ROWS] + [other_day])


def test_one_copy_names_several_days_files_relative_to_the_table_folder(
    s3: Any, bucket: str, snowflake: SnowflakeResource
) -> None:
    """The load's COPY of a table for all a run's days (steps/load.py): FROM @stage/<table>/ with
    FILES = ('year=.../month=.../day=.../<file>', ...), each name appended to the stage URL and the path
    as Snowflake does; the answer is one row per file, named by its full URL, with its own rows_loaded.
    A named file that is missing fails the statement (ON_ERROR = ABORT_STATEMENT)."""
    create_table_and_stage(snowflake, bucket, "conversations_days", "days_stage")
    names = {f"year=2024/month=05/day={day:02d}/part-{day}.parquet": rows for day, rows in ((7, 2), (8, 4))}
    for name, rows in names.items():
        s3.put_object(Bucket=bucket, Key=f"prefix/conversations/{name}", Body=parquet_bytes(ROWS[:rows]))
    s3.put_object(Bucket=bucket, Key="prefix/conversations/year=2024/month=05/day=09/part-9.parquet",
                  Body=parquet_bytes(ROWS))  # not named: not loaded  # fmt: skip
    copy = ("COPY INTO conversations_days FROM @days_stage/conversations/ FILES = ({}) FILE_FORMAT = (TYPE = "
            "PARQUET) MATCH_BY_COLUMN_NAME = CASE_INSENSITIVE FORCE = TRUE ON_ERROR = ABORT_STATEMENT")  # fmt: skip
    with snowflake.get_connection() as conn:
        cursor = conn.cursor(DictCursor)
        cursor.execute(copy.format("%s, %s"), list(names))
        results = [{k.lower(): v for k, v in row.items()} for row in cursor.fetchall()]
        assert sorted((r["file"], r["status"], r["rows_loaded"]) for r in results) == [
            (f"s3://{bucket}/prefix/conversations/{name}", "LOADED", rows) for name, rows in names.items()
        ]
        with pytest.raises(SnowflakeError):
            cursor.execute(copy.format("%s"), ["year=2024/month=05/day=10/part-10.parquet"])
    assert len(select_all(snowflake, "conversations_days")) == 2 + 4


def test_failed_copy_in_a_transaction_leaves_the_table_unchanged(
    s3: Any, bucket: str, snowflake: SnowflakeResource
) -> None:
    """A COPY of a corrupt file fails, and ROLLBACK restores the rows its transaction deleted."""
    create_table_and_stage(snowflake, bucket, "conversations_rb", "rb_stage")
    good, corrupt = f"{DAY_PREFIX}good/", f"{DAY_PREFIX}corrupt/"
    s3.put_object(Bucket=bucket, Key=f"prefix/{good}part.parquet", Body=parquet_bytes(ROWS[:3]))
    s3.put_object(Bucket=bucket, Key=f"prefix/{corrupt}part.parquet", Body=b"PAR1 not parquet at all PAR1")
    load_partition(snowflake, "conversations_rb", "rb_stage", prefix=good)

    # fakesnow answers an unreadable file with HTTP 500 -> InternalServerError 290500 (Snowflake: a
    # ProgrammingError with the parse error). Either way a snowflake.connector Error.
    with pytest.raises(SnowflakeError):
        load_partition(snowflake, "conversations_rb", "rb_stage", prefix=corrupt)
    assert select_all(snowflake, "conversations_rb") == [parse_variant(r) for r in ROWS[:3]]


def test_gzip_csv_round_trips_from_the_year_month_day_layout(
    s3: Any, bucket: str, snowflake: SnowflakeResource
) -> None:
    """RFC 4180 CSV, gzip, hostile strings and NULLs, from a `year=/month=/day=` key.

    Stock fakesnow fails here ("Binder Error: table ... has 3 columns but 6 values were supplied":
    DuckDB reads year/month/day from the path), and reads the NULL timestamp back as 1970-01-01.
    Not covered, as fakesnow differs from Snowflake: a quoted empty string ("") loads as NULL.
    """

    def field(value: str | None) -> str:  # quote every string, double inner quotes; NULL unquoted
        return "" if value is None else '"' + value.replace('"', '""') + '"'

    rows = [(i, dt.datetime(2024, 5, 8, i, tzinfo=UTC).isoformat(), text) for i, text in enumerate(HOSTILE)]
    rows.append((len(rows), None, None))
    body = "id,started,text\r\n" + "".join(f"{i},{field(ts)},{field(text)}\r\n" for i, ts, text in rows)
    s3.put_object(Bucket=bucket, Key=f"prefix/csv/{DAY_PREFIX}part.csv.gz", Body=gzip.compress(body.encode()))

    with snowflake.get_connection() as conn:
        cur = conn.cursor(DictCursor)
        cur.execute("CREATE TABLE IF NOT EXISTS transcripts (id NUMBER(38, 0), started TIMESTAMP_TZ, text VARCHAR)")
        cur.execute(f"CREATE STAGE IF NOT EXISTS csv_stage URL = 's3://{bucket}/prefix/csv/'")
        cur.execute(
            f"COPY INTO transcripts FROM @csv_stage/{DAY_PREFIX} FILES = ('part.csv.gz') FILE_FORMAT = ("
            "TYPE = CSV SKIP_HEADER = 1 FIELD_OPTIONALLY_ENCLOSED_BY = '\"' COMPRESSION = GZIP) "
            "FORCE = TRUE ON_ERROR = ABORT_STATEMENT"
        )
        assert [(r["status"], r["rows_loaded"]) for r in cur.fetchall()] == [("LOADED", len(rows))]
        cur.execute("SELECT id, started, text FROM transcripts ORDER BY id")
        loaded = [(r["ID"], r["STARTED"], r["TEXT"]) for r in cur.fetchall()]
    assert loaded == [(i, ts and dt.datetime.fromisoformat(ts), text) for i, ts, text in rows]


def test_prod_only_statements_are_no_ops(snowflake: SnowflakeResource) -> None:
    """DEFAULT_NOP_REGEXES: prod-only statements fakesnow cannot parse succeed without effect."""
    with snowflake.get_connection() as conn:
        cur = conn.cursor()
        cur.execute("ALTER SESSION SET TIMEZONE = 'UTC'")
        cur.execute(
            "CREATE OR REPLACE STORAGE INTEGRATION genesys_s3 TYPE = EXTERNAL_STAGE STORAGE_PROVIDER = 'S3' "
            "ENABLED = TRUE STORAGE_AWS_ROLE_ARN = 'arn:aws:iam::1:role/x' STORAGE_ALLOWED_LOCATIONS = ('s3://x/')"
        )
        assert cur.fetchall() == [("Statement executed successfully.",)]


def test_server_database_persists_across_restarts(tmp_path: Path, stack: stand_ins.LocalStack) -> None:
    """With db_path, a restarted server serves the same tables; each server has its own database."""
    db_path = str(tmp_path / "fakesnow")
    for restart in range(2):
        server = stand_ins.start_fakesnow_server(db_path=db_path)
        try:
            resource = stand_ins.snowflake_resource(server.connection_args, database="DEMO", schema="GENESYS")
            with resource.get_connection() as conn:
                cur = conn.cursor()
                if restart == 0:
                    cur.execute("CREATE TABLE kept (id NUMBER, payload VARIANT)")
                    cur.execute("INSERT INTO kept SELECT 1, PARSE_JSON(%s)", ('{"a": "😀"}',))
                cur.execute("SELECT id, payload:a::string FROM kept")
                assert cur.fetchall() == [(1, "😀")]
        finally:
            server.stop()

    with stand_ins.snowflake_resource(stack.snowflake_connection_args, "DEMO", "GENESYS").get_connection() as conn:
        cur = conn.cursor()
        cur.execute("SELECT count(*) FROM information_schema.tables WHERE table_name = 'KEPT'")
        assert cur.fetchall() == [(0,)]


# ##### ACROSS PROCESSES


def test_spawned_stack_serves_other_processes_and_persists(tmp_path: Path) -> None:
    """The stand-ins in a child process (as for `dagster dev`) serve this process over the network,
    and a new child on the same db_path (after SIGTERM) still has the loaded rows."""
    db_path = str(tmp_path / "fakesnow")
    child = stand_ins.spawn_local_stack(db_path=db_path)
    try:
        s3 = stand_ins.s3_resource(child.s3_endpoint_url).get_client()
        s3.create_bucket(Bucket="spawned")
        s3.put_object(Bucket="spawned", Key=f"prefix/{DAY_PREFIX}part.parquet", Body=parquet_bytes(ROWS))
        resource = stand_ins.snowflake_resource(child.snowflake_connection_args, database="RAW", schema="GENESYS")
        create_table_and_stage(resource, "spawned", "conversations", "raw_stage")
        assert load_partition(resource, "conversations", "raw_stage")[0]["rows_loaded"] == len(ROWS)
    finally:
        child.stop()

    child = stand_ins.spawn_local_stack(db_path=db_path)
    try:
        resource = stand_ins.snowflake_resource(child.snowflake_connection_args, database="RAW", schema="GENESYS")
        assert select_all(resource, "conversations") == [parse_variant(r) for r in ROWS]
    finally:
        child.stop()


def test_s3_shim_follows_the_newest_endpoint(stack: stand_ins.LocalStack, snowflake: SnowflakeResource) -> None:
    """Re-installing the shim repoints fakesnow's already-running database to the new S3 endpoint."""
    # A spawned moto has its own state: a bucket only it holds proves where fakesnow reads from.
    child = stand_ins.spawn_local_stack()
    try:
        child_s3 = stand_ins.s3_resource(child.s3_endpoint_url).get_client()
        child_s3.create_bucket(Bucket="only-in-the-child")
        child_s3.put_object(Bucket="only-in-the-child", Key=f"prefix/{DAY_PREFIX}part.parquet", Body=parquet_bytes(ROWS))
        stand_ins.install_fakesnow_s3_shim(child.s3_endpoint_url)
        create_table_and_stage(snowflake, "only-in-the-child", "conversations_shim", "shim_stage")
        assert load_partition(snowflake, "conversations_shim", "shim_stage")[0]["rows_loaded"] == len(ROWS)
    finally:
        stand_ins.install_fakesnow_s3_shim(stack.s3_endpoint_url)
        child.stop()


# ##### SNOWFLAKE SESSIONS, TRANSACTIONS AND LOCKS (fakesnow_sessions.py)


def connect(connection_args: dict[str, Any], user: str = "fake") -> Any:
    """A raw connector connection (closed by the caller, or left open on purpose: a dead client)."""
    import snowflake.connector

    return snowflake.connector.connect(user=user, password="snow", account="fakesnow", database="RAW",
                                       schema="GENESYS", **connection_args)  # fmt: skip


def two_day_table(connection_args: dict[str, Any]) -> str:
    name = f"LOCKS_{uuid.uuid4().hex[:8].upper()}"
    with connect(connection_args) as conn:
        conn.cursor().execute(f"CREATE TABLE {name} (D DATE, X INT)")
        conn.cursor().execute(f"INSERT INTO {name} VALUES ('2024-05-07', 1), ('2024-05-08', 2), ('2024-05-08', 3)")
    return name


def open_transactions(server: stand_ins.FakesnowServer) -> list[Any]:
    return [s.transaction for s in server.sessions.snapshot() if s.transaction is not None]


def test_close_rolls_back_what_the_session_left_open(stack: stand_ins.LocalStack) -> None:
    """The login answers a masterToken, so the connector's close() reaches the server, which rolls the
    session's open transaction back: the next DELETE of the same rows succeeds at once."""
    table = two_day_table(stack.snowflake_connection_args)
    quitter = connect(stack.snowflake_connection_args)
    quitter.cursor().execute("BEGIN")
    quitter.cursor().execute(f"DELETE FROM {table} WHERE D = '2024-05-08'")
    assert isinstance(quitter.session_id, int)
    quitter.close()
    assert quitter.session_id not in {s.id for s in stack.snowflake.sessions.snapshot()}
    with connect(stack.snowflake_connection_args) as conn:
        cur = conn.cursor()
        cur.execute(f"DELETE FROM {table} WHERE D = '2024-05-08'")
        assert cur.rowcount == 2


def test_session_parameters_are_remembered_and_validated(stack: stand_ins.LocalStack) -> None:
    with connect(stack.snowflake_connection_args) as conn:
        cur = conn.cursor()
        cur.execute("ALTER SESSION SET QUERY_TAG = %s", ('{"run_id": "r-1", "note": "it\'s"}',))
        cur.execute("ALTER SESSION SET LOCK_TIMEOUT = 5 STATEMENT_TIMEOUT_IN_SECONDS = 60")
        assert cur.fetchall() == [("Statement executed successfully.",)]
        (session,) = [s for s in stack.snowflake.sessions.snapshot() if s.id == conn.session_id]
        assert (session.query_tag, session.lock_timeout, session.statement_timeout) == ('{"run_id": "r-1", "note": "it\'s"}', 5, 60)
        cur.execute("ALTER SESSION UNSET QUERY_TAG")
        cur.execute("ALTER SESSION SET TIMEZONE = 'UTC'")  # others stay no-ops
        assert session.query_tag == "" and session.lock_timeout == 5
        with pytest.raises(ProgrammingError, match=r"invalid value \[-1\] for parameter 'LOCK_TIMEOUT'"):
            cur.execute("ALTER SESSION SET LOCK_TIMEOUT = -1")
        assert session.lock_timeout == 5


def test_show_transactions_and_system_abort_transaction(stack: stand_ins.LocalStack) -> None:
    """A named transaction is listed to its user (Snowflake's columns) and to nobody else; its user can
    abort it, another cannot; the aborted session must ROLLBACK before it can go on."""
    args = stack.snowflake_connection_args
    table = two_day_table(args)
    holder, reader, stranger = connect(args), connect(args), connect(args, user="someone_else")
    try:
        holder.cursor().execute("BEGIN TRANSACTION NAME GENESYS_LOAD_TEST")
        holder.cursor().execute(f"DELETE FROM {table} WHERE D = '2024-05-08'")
        cur = reader.cursor(DictCursor)
        cur.execute("SHOW TRANSACTIONS")
        (listed,) = [row for row in cur.fetchall() if row["session"] == holder.session_id]
        assert {k: v for k, v in listed.items() if k not in ("id", "started_on")} == {
            "user": "FAKE", "session": holder.session_id, "name": "GENESYS_LOAD_TEST", "state": "running", "scope": 0}
        assert abs((dt.datetime.now(UTC) - listed["started_on"]).total_seconds()) < 60
        other = stranger.cursor(DictCursor)
        other.execute("SHOW TRANSACTIONS")
        assert listed["id"] not in {row["id"] for row in other.fetchall()}
        with pytest.raises(ProgrammingError, match="Insufficient privileges to abort transaction"):
            other.execute("SELECT SYSTEM$ABORT_TRANSACTION(%s)", (listed["id"],))

        cur.execute("SELECT SYSTEM$ABORT_TRANSACTION(%s)", (listed["id"],))
        assert list(cur.fetchall()[0].values()) == [f"Transaction {listed['id']} aborted."]
        cur.execute("SHOW TRANSACTIONS")
        assert listed["id"] not in {row["id"] for row in cur.fetchall()}
        cur.execute(f"DELETE FROM {table} WHERE D = '2024-05-08'")  # the rows are back, and free
        assert cur.rowcount == 2
        with pytest.raises(ProgrammingError, match=f"Transaction {listed['id']} was aborted"):
            holder.cursor().execute("COMMIT")
        holder.cursor().execute("ROLLBACK")
        holder.cursor().execute(f"SELECT COUNT(*) FROM {table}")
    finally:
        for conn in (holder, reader, stranger):
            conn.close()


def test_a_conflicting_delete_waits_for_the_lock_then_fails_like_snowflake(stack: stand_ins.LocalStack) -> None:
    """Snowflake locks the table, not rows: a DELETE of another day waits for the holder's COMMIT up to
    LOCK_TIMEOUT, then fails with error 000625 (a ProgrammingError), not an HTTP 500."""
    args = stack.snowflake_connection_args
    table = two_day_table(args)
    with connect(args) as holder, connect(args) as waiter:
        holder.cursor().execute("BEGIN")
        holder.cursor().execute(f"DELETE FROM {table} WHERE D = '2024-05-08'")
        cur = waiter.cursor()
        cur.execute("ALTER SESSION SET LOCK_TIMEOUT = 1")
        started = time.monotonic()
        with pytest.raises(ProgrammingError, match=f"for the lock on table 'RAW.GENESYS.{table}'") as raised:
            cur.execute(f"DELETE FROM {table} WHERE D = '2024-05-07'")
        assert raised.value.errno == 625 and 1 <= time.monotonic() - started < 5

        cur.execute("ALTER SESSION SET LOCK_TIMEOUT = 30")
        committer = threading.Timer(0.5, lambda: holder.cursor().execute("COMMIT"))
        committer.start()
        started = time.monotonic()
        cur.execute(f"DELETE FROM {table} WHERE D = '2024-05-07'")
        assert cur.rowcount == 1 and 0.4 <= time.monotonic() - started < 10
        committer.join()
        cur.execute(f"SELECT COUNT(*) FROM {table}")
        assert cur.fetchall() == [(0,)]


def test_a_detached_transaction_that_blocks_another_is_aborted_after_it_idles(stack: stand_ins.LocalStack) -> None:
    """Snowflake aborts a detached transaction that blocks another and has been idle for 5 minutes; the
    stand-in does the same after `detached_abort_seconds` (1 here)."""
    server = stand_ins.start_fakesnow_server(detached_abort_seconds=1)
    try:
        table = two_day_table(server.connection_args)
        dead = connect(server.connection_args)  # never closed: a client that vanished
        dead.cursor().execute("BEGIN")
        dead.cursor().execute(f"DELETE FROM {table} WHERE D = '2024-05-08'")
        with connect(server.connection_args) as conn:
            cur = conn.cursor()
            cur.execute("ALTER SESSION SET LOCK_TIMEOUT = 30")
            started = time.monotonic()
            cur.execute(f"DELETE FROM {table} WHERE D = '2024-05-08'")
            assert cur.rowcount == 2 and 0.9 <= time.monotonic() - started < 10
        assert open_transactions(server) == []
    finally:
        server.stop()


def test_the_s3_shim_reads_what_duckdb_asks_for_even_when_s3_returns_less_at_a_time() -> None:
    """pyarrow's S3 file may return a short read; DuckDB fails a COPY INTO on one, so the shim reads on."""

    class Trickling:  # returns at most 3 bytes a read, like a short S3 read
        def __init__(self, data: bytes) -> None:
            self.data, self.closed = data, False

        def read(self, nbytes: int = -1) -> bytes:
            part, self.data = self.data[: min(nbytes, 3)], self.data[min(nbytes, 3) :]
            return part

    stream = fakesnow_patches.FullReads(Trickling(b"0123456789"))
    assert stream.read(7) == b"0123456" and stream.read(7) == b"789" and stream.read(7) == b""
    assert stream.closed is False  # everything else is the stream's


def test_the_s3_shim_reads_each_object_whole_and_again_on_a_new_stream_when_a_read_fails() -> None:
    """DuckDB gets the object from memory, read whole and checked against its size: a stream that comes
    back short or raises is replaced by a new one; one that never delivers fails naming the object."""

    class Stream:
        def __init__(self, data: bytes, deliver: int | None = None, error: str = "") -> None:
            self.data, self.deliver, self.error, self.closed = data, deliver, error, False

        def size(self) -> int:
            return len(self.data)

        def read(self, nbytes: int = -1) -> bytes:
            if self.error:
                raise OSError(self.error)
            part, self.data = self.data[: self.deliver], b""  # at most `deliver` bytes, then the end
            return part

        def close(self) -> None:
            self.closed = True

    data = b"PAR1" + bytes(range(256)) * 40 + b"PAR1"
    streams = [Stream(data, deliver=100), Stream(data, error="Cannot read past end of file"), Stream(data, deliver=None)]
    opened: list[Stream] = []

    def open_stream() -> Stream:
        opened.append(streams[len(opened)])
        return opened[-1]

    whole = fakesnow_patches.whole_object(open_stream, "s3://bucket/key.parquet")
    assert whole.size() == len(data) and whole.read() == data
    whole.seek(len(data) - 4)
    assert whole.read(4) == b"PAR1"
    assert len(opened) == 3 and all(stream.closed for stream in opened)

    with pytest.raises(OSError, match=r"s3://bucket/key.parquet: could not read the whole object in 2 attempts "
                                      r"\(read 10 of \d+ bytes\)"):  # fmt: skip
        fakesnow_patches.whole_object(lambda: Stream(data, deliver=10), "s3://bucket/key.parquet", attempts=2)


def test_the_s3_shim_reads_again_a_file_that_came_back_empty_before_its_end() -> None:
    """A ranged GET cut short can make pyarrow's S3 file read b"" in the middle: the shim asks again from
    the same position; at the real end (or from a stream that cannot tell its size) an empty read ends it."""

    class CutShort:  # a seekable file whose first read after `cut` comes back empty, once
        def __init__(self, data: bytes, cut: int) -> None:
            self.data, self.position, self.cut, self.seeks = data, 0, cut, []

        def read(self, nbytes: int = -1) -> bytes:
            if self.position == self.cut:
                self.cut = -1
                return b""
            part = self.data[self.position : self.position + min(nbytes, 4)]
            self.position += len(part)
            return part

        def tell(self) -> int:
            return self.position

        def seek(self, position: int) -> None:
            self.seeks.append(position)
            self.position = position

        def size(self) -> int:
            return len(self.data)

    cut_short = CutShort(b"0123456789abcdef", cut=8)
    stream = fakesnow_patches.FullReads(cut_short)
    assert stream.read(12) == b"0123456789ab"
    assert cut_short.seeks == [8]
    assert stream.read(100) == b"cdef" and stream.read(1) == b""  # the real end: no retry
    assert cut_short.seeks == [8]
