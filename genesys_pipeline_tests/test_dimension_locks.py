"""A dimension load that meets the lock of a load that never ended fails after the target's LOCK_TIMEOUT
(Snowflake's default would keep it waiting 12 hours), says so, and leaves the table as it was; its
transaction is named and its session tagged, so an operator's SHOW TRANSACTIONS tells what it is."""

from __future__ import annotations

import json
import threading
import time
import uuid
from typing import Any

import pytest

from genesys_pipeline.contracts.dimension_tables import QUEUES
from genesys_pipeline.local import stand_ins
from genesys_pipeline.local.emulator.synthetic import ContactCentre
from genesys_pipeline.resources.warehouse import SnowflakeTarget
from genesys_pipeline.steps import dimensions as dimension_loads
from genesys_pipeline_tests.conftest import run_query

SCHEMA = "GENESYS"
LOCK_TIMEOUT = 3


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_a_dimension_load_behind_a_stuck_transaction_fails_after_its_lock_timeout(stack: stand_ins.LocalStack) -> None:
    snowflake = stand_ins.snowflake_resource(stack.snowflake_connection_args, f"DIM_{uuid.uuid4().hex[:8].upper()}", SCHEMA)
    queues = ContactCentre(7, 0).queues
    target = SnowflakeTarget(stage_aws_key_id="testing", stage_aws_secret_key="testing",
                             lock_timeout_seconds=LOCK_TIMEOUT, statement_timeout_seconds=60)  # fmt: skip
    with snowflake.get_connection() as conn:
        dimension_loads.load_dimension(conn, target, QUEUES, queues, "run-1")
    before = run_query(snowflake, "SELECT * FROM DIM_QUEUES ORDER BY QUEUE_ID")

    outcome: dict[str, Any] = {}

    def load_behind_the_lock() -> None:
        started = time.monotonic()
        with snowflake.get_connection() as conn:
            try:
                dimension_loads.load_dimension(conn, target, QUEUES, queues[:2], "run-2")
            except dimension_loads.DimensionLoadError as error:
                outcome["error"] = str(error)
        outcome["seconds"] = time.monotonic() - started

    with snowflake.get_connection() as stuck:  # a load that took the table's lock and never ended
        stuck.cursor().execute("BEGIN")
        stuck.cursor().execute("DELETE FROM DIM_QUEUES")
        loading = threading.Thread(target=load_behind_the_lock)
        loading.start()
        names, tags = _waiting_load(stack)
        loading.join(60)
        stuck.cursor().execute("ROLLBACK")

    assert names == ["GENESYS_DIMENSION_DIM_QUEUES"]
    assert tags == [{"pipeline": "genesys_pipeline", "run_id": "run-2", "dimension": "DIM_QUEUES"}]
    assert "LOCK_TIMEOUT" in outcome.get("error", ""), outcome
    assert "the table is as it was before" in outcome["error"]
    assert LOCK_TIMEOUT <= outcome["seconds"] < 30, outcome
    assert run_query(snowflake, "SELECT * FROM DIM_QUEUES ORDER BY QUEUE_ID") == before

    with snowflake.get_connection() as conn:  # the lock gone, the same load goes through
        load = dimension_loads.load_dimension(conn, target, QUEUES, queues[:2], "run-3")
    assert load.rows == 2 and load.rows_replaced == len(before)


def _waiting_load(stack: stand_ins.LocalStack) -> tuple[list[str], list[dict[str, Any]]]:
    """The names of the dimension transactions open in the stand-in, and their sessions' query tags, once
    the waiting load has begun its transaction."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        sessions = [s for s in stack.snowflake.sessions.snapshot()
                    if s.transaction is not None and s.transaction.name.startswith("GENESYS_DIMENSION_")]  # fmt: skip
        if sessions:
            return [s.transaction.name for s in sessions], [json.loads(s.query_tag) for s in sessions]
        time.sleep(0.1)
    pytest.fail("the dimension load never began its transaction")
