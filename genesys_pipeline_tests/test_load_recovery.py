"""A load killed (`kill -9`) inside its Snowflake transaction, then a plain rerun: against the fakesnow
server over HTTP, whose sessions, transaction names, SHOW TRANSACTIONS, SYSTEM$ABORT_TRANSACTION and table
locks behave as Snowflake's (local/fakesnow_sessions.py), so the recovery tested is production's
(steps/snowflake_recovery.py). The day and the data come from test_load's `Env`.
"""

from __future__ import annotations

import dataclasses
import json
import os
import select
import signal
import subprocess
import sys
import textwrap
import time
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import dagster as dg
import pytest

from genesys_pipeline.contracts.tables import TABLES
from genesys_pipeline.defs.checks import row_counts_match_across_stages
from genesys_pipeline.defs.s3_conversations import s3_conversations
from genesys_pipeline.defs.snowflake_conversations import snowflake_conversations
from genesys_pipeline.local import stand_ins
from genesys_pipeline.steps.publish import read_published_manifest
from genesys_pipeline.steps.snowflake_recovery import (
    new_load_token,
    target_id,
    transaction_name,
)
from genesys_pipeline_tests.flat_fixtures import write_partition
from genesys_pipeline_tests.test_load import (
    DAY,
    SCHEMA,
    Env,
    check_evaluation,
    expected_rows,
    new_env,
)

# The child: the production loader on its own connection, paused (then killed) right after the
# statement that starts with `pause_after`.
CHILD = textwrap.dedent("""
    import json, sys, time
    import snowflake.connector
    from genesys_pipeline.contracts.manifests import PublishedObject
    from genesys_pipeline.resources.warehouse import S3Publishing, SnowflakeTarget
    from genesys_pipeline.steps.load import DayFiles, WarehouseLoader
    from genesys_pipeline.steps.snowflake_session import SnowflakeSession

    job = json.loads(sys.argv[1])
    execute = SnowflakeSession.execute

    def execute_then_pause(self, sql, params=None):
        rows = execute(self, sql, params)
        if sql.startswith(job["pause_after"]):
            print("PAUSED", flush=True)
            time.sleep(600)
        return rows

    SnowflakeSession.execute = execute_then_pause
    connection = snowflake.connector.connect(user="fake", password="snow", account="fakesnow",
                                             database=job["database"], schema=job["schema"], **job["connection"])
    loader = WarehouseLoader(connection, SnowflakeTarget(**job["target"]), S3Publishing(**job["publishing"]))
    loader.prepare([job["day"]], "the-killed-run")
    files = {table: PublishedObject(**entry) for table, entry in job["files"].items()}
    loader.load_partitions([DayFiles(job["day"], files, job["format"])], "the-killed-run")
    print("FINISHED", flush=True)
""")


@pytest.fixture
def env(stack: stand_ins.LocalStack, tmp_path: Path) -> Env:
    return new_env(stack, tmp_path)


def logged(instance: dg.DagsterInstance, run_id: str) -> str:
    """Every message the run logged (context.log), one per line."""
    return "\n".join(entry.user_message for entry in instance.all_logs(run_id))


def start_load_and_kill_it(env: Env, pause_after: str) -> float:
    """Run the day's load in a child process, `kill -9` it at the pause; returns when it was killed."""
    client = env.s3
    manifest = read_published_manifest(client, env.publishing, DAY)
    job = {
        "pause_after": pause_after, "day": DAY, "database": env.database, "schema": SCHEMA,
        "connection": env.stack.snowflake_connection_args, "format": manifest.format,
        "files": {table: dataclasses.asdict(entry) for table, entry in manifest.tables.items()},
        "target": {"stage_aws_key_id": "testing", "stage_aws_secret_key": "not-a-real-secret",
                   "staging_tables": env.staging_tables},
        "publishing": {"bucket": env.bucket, "prefix": "genesys/conversations", "file_format": env.file_format},
    }  # fmt: skip
    child = subprocess.Popen([sys.executable, "-c", CHILD, json.dumps(job)], stdout=subprocess.PIPE, text=True)
    try:
        ready, _, _ = select.select([child.stdout], [], [], 120)
        line = child.stdout.readline() if ready and child.stdout else ""
        assert line.strip() == "PAUSED", f"the child did not reach {pause_after!r}: {line!r}"
    finally:
        os.kill(child.pid, signal.SIGKILL)
        child.wait(30)
        if child.stdout:
            child.stdout.close()
    assert child.returncode == -signal.SIGKILL
    return time.monotonic()


def open_transactions(env: Env) -> list[Any]:
    return [s.transaction for s in env.stack.snowflake.sessions.snapshot() if s.transaction is not None]


def leftover_staging(env: Env) -> list[str]:
    rows = env.query("SELECT TABLE_NAME FROM INFORMATION_SCHEMA.TABLES WHERE TABLE_NAME LIKE '%\\_LOADING\\_%'")
    return sorted(r["table_name"] for r in rows)


@pytest.mark.slow
@pytest.mark.parametrize(
    "pause_after",
    [pytest.param("DELETE FROM CONVERSATIONS", id="after-the-first-DELETE"),
     pytest.param("INSERT INTO GENESYS_LOAD_HISTORY", id="before-COMMIT")],
)  # fmt: skip
def test_a_load_killed_inside_its_transaction_is_recovered_by_a_plain_rerun(env: Env, pause_after: str) -> None:
    """Day 2024-05-08 is loaded (run-1). Its new data (run-2) is published and loaded by a process that
    is killed between DELETE and COMMIT: its transaction stays open in Snowflake, holding its locks, and
    readers still see run-1's day whole. A plain rerun of the load aborts that transaction, drops its
    staging tables, and converges on run-2's rows within seconds, with the check passing."""
    write_partition(env.storage, DAY, conversations=9, run_id="run-1")
    assert env.materialize().success
    before = env.everything()
    tables = write_partition(env.storage, DAY, conversations=6, run_id="run-2")
    assert env.materialize([s3_conversations]).success

    killed_at = start_load_and_kill_it(env, pause_after)
    (detached,) = open_transactions(env)
    assert detached.name.startswith("GENESYS_LOAD_") and "_20240508_20240508_" in detached.name
    (session,) = [s for s in env.stack.snowflake.sessions.snapshot() if s.transaction is detached]
    assert (session.lock_timeout, session.statement_timeout) == (900, 3600)  # SnowflakeTarget's defaults
    tag = json.loads(session.query_tag)
    assert tag == {"pipeline": "genesys_pipeline", "run_id": "the-killed-run", "partition": DAY, "load": tag["load"]}
    assert detached.name.endswith(tag["load"])
    assert env.everything() == before  # a reader sees the old day, whole
    assert len(leftover_staging(env)) == len([t for t in TABLES if tables[t.name].num_rows])  # tables with rows

    instance = dg.DagsterInstance.ephemeral()
    result = env.materialize([snowflake_conversations, row_counts_match_across_stages], instance=instance)
    recovered_in = time.monotonic() - killed_at
    assert result.success and check_evaluation(result).passed, check_evaluation(result).description
    print(f"the rerun succeeded {recovered_in:.1f} s after the kill")
    assert recovered_in < 60, f"the rerun took {recovered_in:.1f} s after the kill"
    for table in TABLES:
        assert env.rows(table.name) == expected_rows(tables, table.name), table.name
    history = env.query("SELECT RUN_ID FROM GENESYS_LOAD_HISTORY WHERE TABLE_NAME = 'CONVERSATIONS' ORDER BY LOADED_AT")
    assert [h["run_id"] for h in history][-1] == result.run_id
    assert "the-killed-run" not in {h["run_id"] for h in history}  # nothing of the killed load was committed
    assert open_transactions(env) == [] and leftover_staging(env) == []
    assert (f"aborted the transaction {detached.id} ({detached.name}, started " in logged(instance, result.run_id)
            and "an earlier load of 2024-05-08 that never finished" in logged(instance, result.run_id))  # fmt: skip


@pytest.mark.slow
def test_a_load_killed_before_its_transaction_leaves_nothing_once_its_staging_tables_are_old(env: Env) -> None:
    """Killed after creating its staging tables, before BEGIN: no transaction to abort, so nothing proves
    at once that the load is dead. A rerun succeeds anyway; the staging tables stay while they are younger
    than the statement timeout (their load could be alive) and the next load after that drops them."""
    tables = write_partition(env.storage, DAY, conversations=4)
    assert env.materialize([s3_conversations]).success
    start_load_and_kill_it(env, f"CREATE OR REPLACE TRANSIENT TABLE {TABLES[-1].name.upper()}_LOADING_")  # the last
    with_rows = len([t for t in TABLES if tables[t.name].num_rows])  # a table without rows needs no staging
    assert open_transactions(env) == [] and len(leftover_staging(env)) == with_rows
    assert env.materialize([snowflake_conversations]).success  # within the default hour: kept
    assert len(leftover_staging(env)) == with_rows

    time.sleep(2)
    env.statement_timeout_seconds = 1
    assert env.materialize([snowflake_conversations]).success
    assert leftover_staging(env) == []
    for table in TABLES:
        assert env.rows(table.name) == expected_rows(tables, table.name), table.name


def test_staging_tables_of_dead_loads_are_dropped_and_live_ones_kept(env: Env) -> None:
    """Leftovers of loads that died outside their transaction: a staging table older than the statement
    timeout (and one named by an earlier version, whose age only Snowflake's CREATED tells) is dropped by
    the next load; a young one (a load that may still be running) and tables that are not ours are kept."""
    now = datetime.now(timezone.utc)
    old = new_load_token(now - timedelta(hours=2))
    young = new_load_token(now - timedelta(seconds=30))
    names = [f"CONVERSATIONS_LOADING_{old}", f"SESSION_METRICS_LOADING_{old}", "SEGMENTS_LOADING_0A1B2C3D",
             f"PARTICIPANTS_LOADING_{young}", f"NOT_OURS_LOADING_{old}", f"CONVERSATIONS_LOADING_{old}_COPY"]  # fmt: skip
    for name in names:
        env.query(f"CREATE TRANSIENT TABLE {name} (X INT)")
    write_partition(env.storage, DAY, conversations=3)
    instance = dg.DagsterInstance.ephemeral()
    result = env.materialize([s3_conversations, snowflake_conversations], instance=instance)
    assert result.success
    assert leftover_staging(env) == sorted([f"PARTICIPANTS_LOADING_{young}", f"NOT_OURS_LOADING_{old}",
                                            f"CONVERSATIONS_LOADING_{old}_COPY"])  # fmt: skip
    assert f"dropped the staging tables of loads that never finished: CONVERSATIONS_LOADING_{old}" in logged(
        instance, result.run_id
    )


def test_transactions_of_other_days_and_other_targets_are_left_alone(env: Env) -> None:
    """Only this target's transactions of days the load replaces are a dead load's for sure: one of
    other days (its own next load handles it) and one of the same day in another schema stay open."""
    write_partition(env.storage, DAY, conversations=2)
    ours, elsewhere = target_id(env.database, SCHEMA, ""), target_id(env.database, "OTHER", "")
    names = [transaction_name(ours, [date(2024, 5, 7)], new_load_token()),
             transaction_name(ours, [date(2024, 5, 9), date(2024, 5, 12)], new_load_token()),
             transaction_name(elsewhere, [date(2024, 5, 8)], new_load_token())]  # fmt: skip
    connections = [env.snowflake.get_connection() for _ in names]
    try:
        for name, connection in zip(names, [c.__enter__() for c in connections]):
            connection.cursor().execute(f"BEGIN TRANSACTION NAME {name}")
        assert env.materialize([s3_conversations, snowflake_conversations]).success
        assert sorted(t.name for t in open_transactions(env)) == sorted(names)
    finally:
        for connection in connections:
            connection.__exit__(None, None, None)
    assert open_transactions(env) == []  # close() ended them (the stand-in's masterToken)


def test_dead_transactions_of_ranges_overlapping_the_run_and_of_the_old_one_day_names_are_aborted(env: Env) -> None:
    """Dead loads hold the tables: a range load's transaction (first and last day in its name) whose days
    overlap the run's, and a one-day load's of an earlier version (`GENESYS_LOAD_<target>_<day>_<token>`),
    are aborted by the next load of a day they cover; a range that ends before the run stays open."""
    days = ["2024-05-07", DAY]
    for day in days:
        write_partition(env.storage, day, conversations=3)
    assert env.materialize([s3_conversations, snowflake_conversations], days=(days[0], days[-1])).success
    for day in days:
        write_partition(env.storage, day, conversations=2)
    assert env.materialize([s3_conversations], days=(days[0], days[-1])).success
    env.statement_timeout_seconds = 60  # and so the lock timeout: a dead load left in place fails the test soon
    ours = target_id(env.database, SCHEMA, "")
    overlapping = transaction_name(ours, [date(2024, 5, 8), date(2024, 5, 14)], new_load_token())
    old_style = f"GENESYS_LOAD_{ours}_20240507_{new_load_token()}"
    before = transaction_name(ours, [date(2024, 5, 1), date(2024, 5, 6)], new_load_token())
    connections = [env.snowflake.get_connection() for _ in range(3)]
    opened = [c.__enter__() for c in connections]
    instance = dg.DagsterInstance.ephemeral()
    try:
        # the two dead loads each hold a table the run replaces (the one before the run holds nothing)
        for name, table, connection in zip([overlapping, old_style, before], ["SESSIONS", "SEGMENTS", ""], opened):
            cursor = connection.cursor()
            cursor.execute(f"BEGIN TRANSACTION NAME {name}")
            if table:
                cursor.execute(f"DELETE FROM {table} WHERE PARTITION_DATE = %s", (date(2024, 5, 8),))
        result = env.materialize([snowflake_conversations], days=(days[0], days[-1]), instance=instance)
        assert result.success
        assert [t.name for t in open_transactions(env)] == [before]
    finally:
        for connection, opened_connection in zip(connections, opened):
            opened_connection.cursor().execute("ROLLBACK")  # an aborted transaction's session must send it
            connection.__exit__(None, None, None)
    log = logged(instance, result.run_id)
    assert f"({overlapping}, started " in log and "an earlier load of 2024-05-08 that never finished" in log
    assert f"({old_style}, started " in log and "an earlier load of 2024-05-07 that never finished" in log
    assert f"({before}, " not in log
    counts = env.query("SELECT PARTITION_DATE, COUNT(*) AS N FROM CONVERSATIONS GROUP BY 1 ORDER BY 1")
    assert [(str(c["partition_date"]), c["n"]) for c in counts] == [(day, 2) for day in days]
