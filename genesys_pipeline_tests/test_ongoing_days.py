"""Conversations that stay open for days: the daily tick also reloads the older days that Snowflake still
holds ongoing conversations for (steps/ongoing_days.py, wired in defs/schedules.py).

The day selection (window bounds, no table yet, Snowflake unreachable or hanging) against the fakesnow
server; then the whole pipeline over HTTP: a day loaded just after it ended holds ongoing
conversations, the emulator's clock moves days ahead (that day is outside the lookback by then), and the
tick at that time requests the day, whose reload leaves nothing ongoing that has ended.
"""

from __future__ import annotations

import socket
import time
import uuid
from datetime import date, datetime, timedelta, timezone
from typing import Any, Iterator

import dagster as dg
import pytest
import requests
from dagster_snowflake import SnowflakeResource

from genesys_pipeline.contracts.tables import CONVERSATIONS
from genesys_pipeline.defs import schedules
from genesys_pipeline.defs.jobs import CONVERSATIONS_JOB
from genesys_pipeline.defs.schedules import (
    DAYS_BACK_TAG,
    ONGOING_TAG,
    REASON_TAG,
    conversation_run_requests,
    genesys_conversations_daily,
    ongoing_window,
    partition_keys_for_tick,
)
from genesys_pipeline.local import stand_ins
from genesys_pipeline.resources.genesys import GenesysResource
from genesys_pipeline.resources.warehouse import S3Publishing, SnowflakeTarget
from genesys_pipeline.resources.working_storage import WorkingStorage
from genesys_pipeline.steps.ongoing_days import (
    describe_error,
    find_ongoing_days,
    within_deadline,
)
from genesys_pipeline.steps.snowflake_sql import create_table_sql, insert_values_sql
from genesys_pipeline_tests import test_operations
from genesys_pipeline_tests.conftest import run_query
from genesys_pipeline_tests.test_operations import (
    QUIET,
    SCHEMA,
    epoch_ms,
    instance_like_production,
    project_definitions,
)

lab = test_operations.lab  # the operations tests' fixture: an emulator, a bucket and a database of the test's own
UTC = timezone.utc
TICK = datetime(2024, 5, 10, 6, tzinfo=UTC)  # lookback 3: 05-09 .. 05-06; ongoing window: 05-05 .. 04-09
NORMAL_DAYS = ["2024-05-09", "2024-05-08", "2024-05-07", "2024-05-06"]
LATE_DAY = "2024-04-30"  # GENESYS_LATE_RELOAD_DAYS_BACK (10) days before the tick


# ##### THE WINDOW AND THE REQUESTS (no Snowflake)


def test_the_window_starts_after_the_lookback_and_ends_a_day_past_the_refresh_days() -> None:
    # A conversation started late on 04-09 and ending 30 days later, late on 05-09, ends after the 05-09
    # tick: the 05-10 tick (31 days back) is the first one after its end.
    assert ongoing_window(TICK, lookback_days=3, ongoing_refresh_days=30) == (date(2024, 4, 9), date(2024, 5, 5))
    assert ongoing_window(TICK, lookback_days=0, ongoing_refresh_days=1) == (date(2024, 5, 8), date(2024, 5, 8))
    assert ongoing_window(TICK, lookback_days=3, ongoing_refresh_days=4) == (date(2024, 5, 5), date(2024, 5, 5))
    assert ongoing_window(TICK, lookback_days=3, ongoing_refresh_days=3) is None  # all within the lookback
    assert ongoing_window(TICK, lookback_days=3, ongoing_refresh_days=0) is None  # turned off
    # Not before the first partition (2024-01-01).
    assert ongoing_window(datetime(2024, 1, 10, 6, tzinfo=UTC), 3, 30) == (date(2024, 1, 1), date(2024, 1, 5))
    assert ongoing_window(datetime(2024, 1, 4, 6, tzinfo=UTC), 3, 30) is None
    with pytest.raises(ValueError, match=r"ongoing_refresh_days must be between 0 and 90, got 91"):
        ongoing_window(TICK, 3, 91)
    with pytest.raises(ValueError, match="timezone-aware"):
        ongoing_window(datetime(2024, 5, 10, 6), 3, 30)


def test_ongoing_days_are_requested_after_the_normal_days_and_say_why() -> None:
    ongoing = {date(2024, 5, 1): 12, date(2024, 5, 8): 3, date(2024, 4, 20): 0, date(2024, 5, 4): 1}
    requests_ = conversation_run_requests(TICK, 3, ongoing_by_day=ongoing, late_reload_days_back=0)
    assert [r.partition_key for r in requests_] == [*NORMAL_DAYS, "2024-05-04", "2024-05-01"]
    reasons = ["yesterday", "lookback", "lookback", "lookback", "ongoing", "ongoing"]
    assert [r.tags[REASON_TAG] for r in requests_] == reasons
    assert [r.tags[DAYS_BACK_TAG] for r in requests_] == ["1", "2", "3", "4", "6", "9"]
    assert [r.tags.get(ONGOING_TAG) for r in requests_] == [None] * 4 + ["1", "12"]
    assert [r.run_key for r in requests_] == [f"2024-05-10:{r.partition_key}" for r in requests_]
    # Without ongoing days, the tick is what it always was.
    assert [r.partition_key for r in conversation_run_requests(TICK, 3, late_reload_days_back=0)] == NORMAL_DAYS


def test_the_day_ten_days_back_is_reloaded_once_more_for_what_genesys_adds_a_week_later() -> None:
    """Resolutions come 7 days and some hours after a conversation ends, and some evaluations are finished
    after the lookback: each tick reloads the day GENESYS_LATE_RELOAD_DAYS_BACK (10) days back once more."""
    requests_ = conversation_run_requests(TICK, 3)
    assert [r.partition_key for r in requests_] == [*NORMAL_DAYS, "2024-04-30"]
    assert (requests_[-1].tags[REASON_TAG], requests_[-1].tags[DAYS_BACK_TAG]) == ("late", "10")
    assert requests_[-1].run_key == "2024-05-10:2024-04-30"
    # A day that is also ongoing is requested once, as the late reload; other ongoing days follow it.
    both = conversation_run_requests(TICK, 3, ongoing_by_day={date(2024, 4, 30): 2, date(2024, 4, 25): 1})
    assert [(r.partition_key, r.tags[REASON_TAG]) for r in both][4:] == [("2024-04-30", "late"), ("2024-04-25", "ongoing")]
    # Within the lookback it is already there; before the first partition there is none; 0 turns it off.
    assert [r.partition_key for r in conversation_run_requests(TICK, 12)] == partition_keys_for_tick(TICK, 12)
    assert [r.partition_key for r in conversation_run_requests(datetime(2024, 1, 8, 6, tzinfo=UTC), 3)] == [
        "2024-01-07", "2024-01-06", "2024-01-05", "2024-01-04"]  # fmt: skip
    assert [r.partition_key for r in conversation_run_requests(TICK, 3, late_reload_days_back=0)] == NORMAL_DAYS


def test_a_lookup_that_hangs_is_abandoned_and_errors_reach_the_caller() -> None:
    started = time.monotonic()
    with pytest.raises(Exception, match=r"the lookup took longer than 0.2 s and was abandoned"):
        within_deadline(lambda: time.sleep(5), 0.2, "the lookup")
    assert time.monotonic() - started < 2
    with pytest.raises(ZeroDivisionError):
        within_deadline(lambda: 1 / 0, 5, "the lookup")
    assert within_deadline(lambda: 42, 5, "the lookup") == 42


def test_a_validation_error_is_described_without_the_values_it_rejected() -> None:
    with pytest.raises(Exception) as caught:
        password: Any = {"pw-never-logged": 1}
        SnowflakeResource(account="a", user="u", password=password, database="d", schema="s")
    assert describe_error(caught.value) == "ValidationError: password: Input should be a valid string"
    assert describe_error(RuntimeError("first line\nsecond line")) == "RuntimeError: first line"
    assert describe_error(RuntimeError("x" * 400)) == "RuntimeError: " + "x" * 283 + "..."


# ##### THE LOOKUP AGAINST SNOWFLAKE (the fakesnow server)


def _snowflake(stack: stand_ins.LocalStack, **connection: Any) -> Any:
    database = f"ONGOING_{uuid.uuid4().hex[:8].upper()}"
    return stand_ins.snowflake_resource({**stack.snowflake_connection_args, **connection}, database, SCHEMA)


def _conversation_rows(snowflake: Any, table: str, rows: list[tuple[str, date, bool]]) -> None:
    """`table` with the conversations table's columns, and (id, day, ongoing) rows."""
    columns = ["CONVERSATION_ID", "PARTITION_DATE", "CONVERSATION_START", "CONVERSATION_END", "ONGOING",
               "EXTRACTION_RUN_ID", "EXTRACTED_AT"]  # fmt: skip
    run_query(snowflake, create_table_sql(CONVERSATIONS, table))
    for conversation_id, day, ongoing in rows:
        start = datetime(day.year, day.month, day.day, 20, tzinfo=UTC)
        end = None if ongoing else start + timedelta(minutes=5)
        values = (conversation_id, day, start, end, ongoing, "run", start)
        run_query(snowflake, insert_values_sql(table, columns), values)


def _evaluate(snowflake: Any, target: SnowflakeTarget, tick: datetime = TICK) -> list[dg.RunRequest]:
    """The conversations schedule evaluated as the daemon does: with the code location's repository, here
    the project's definitions with these Snowflake resources (the others are never called)."""
    resources = {
        "genesys": GenesysResource(api_base_url="http://127.0.0.1:9", login_base_url="http://127.0.0.1:9",
                                   client_id="id", client_secret="not-used"),
        "working_storage": WorkingStorage(root="unused"), "s3": stand_ins.s3_resource("http://127.0.0.1:9"),
        "s3_publishing": S3Publishing(bucket="unused"), "snowflake": snowflake, "snowflake_target": target,
    }  # fmt: skip
    context = dg.build_schedule_context(scheduled_execution_time=tick,
                                        repository_def=project_definitions(resources).get_repository_def())  # fmt: skip
    return list(genesys_conversations_daily.evaluate_tick(context).run_requests or [])


def test_the_days_holding_ongoing_conversations_within_the_window(stack: stand_ins.LocalStack) -> None:
    snowflake = _snowflake(stack)
    with snowflake.get_connection() as connection:
        first = find_ongoing_days(connection, "CONVERSATIONS", date(2024, 4, 9), date(2024, 5, 5))
    assert not first.table_exists and first.by_day == {}
    assert first.summary() == (
        "no CONVERSATIONS table in Snowflake yet, so no ongoing conversations between 2024-04-09 and 2024-05-05"
    )

    _conversation_rows(snowflake, "CONVERSATIONS", [
        ("in-lookback", date(2024, 5, 6), True),     # reloaded anyway (days back 4)
        ("first-ongoing", date(2024, 5, 5), True),   # the window's newest day
        ("second", date(2024, 5, 1), True), ("third", date(2024, 5, 1), True), ("ended", date(2024, 5, 1), False),
        ("all-ended", date(2024, 4, 30), False),
        ("oldest-ongoing", date(2024, 4, 9), True),  # the window's oldest day
        ("too-old", date(2024, 4, 8), True),         # left the window: never reloaded for this again
    ])  # fmt: skip
    with snowflake.get_connection() as connection:
        found = find_ongoing_days(connection, "CONVERSATIONS", date(2024, 4, 9), date(2024, 5, 5))
    assert found.table_exists
    assert list(found.by_day.items()) == [(date(2024, 5, 5), 1), (date(2024, 5, 1), 2), (date(2024, 4, 9), 1)]

    target = SnowflakeTarget(stage_aws_key_id="testing", stage_aws_secret_key="testing")
    requests_ = _evaluate(snowflake, target)
    assert [(r.partition_key, r.tags[REASON_TAG], r.tags.get(ONGOING_TAG)) for r in requests_] == [
        ("2024-05-09", "yesterday", None), ("2024-05-08", "lookback", None), ("2024-05-07", "lookback", None),
        ("2024-05-06", "lookback", None), (LATE_DAY, "late", None),
        ("2024-05-05", "ongoing", "1"), ("2024-05-01", "ongoing", "2"), ("2024-04-09", "ongoing", "1"),
    ]  # fmt: skip


def _logged(capfd: pytest.CaptureFixture[str]) -> str:
    """What the tick logged since the last call (Dagster's schedule logger writes to stderr)."""
    return capfd.readouterr().err


def test_the_table_prefix_names_the_table_and_a_first_tick_requests_the_normal_days(
    stack: stand_ins.LocalStack, capfd: pytest.CaptureFixture[str]
) -> None:
    snowflake = _snowflake(stack)
    target = SnowflakeTarget(stage_aws_key_id="testing", stage_aws_secret_key="testing", table_prefix="GENESYS_")
    assert [r.partition_key for r in _evaluate(snowflake, target)] == [*NORMAL_DAYS, LATE_DAY]
    logged = _logged(capfd)
    assert "no GENESYS_CONVERSATIONS table in Snowflake yet" in logged
    assert "Requesting 2024-05-09 (yesterday), 2024-05-08 (lookback)" in logged

    _conversation_rows(snowflake, "CONVERSATIONS", [("unprefixed", date(2024, 5, 1), True)])  # not ours
    _conversation_rows(snowflake, "GENESYS_CONVERSATIONS", [("ours", date(2024, 5, 2), True)])
    assert [r.partition_key for r in _evaluate(snowflake, target)] == [*NORMAL_DAYS, LATE_DAY, "2024-05-02"]
    assert "2024-05-02 (ongoing, 1 ongoing conversations)" in _logged(capfd)


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A port that accepts connections and never answers (a firewall that drops, a hung proxy)."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        yield listener.getsockname()[1]


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_snowflake_down_or_hanging_at_tick_time_still_requests_the_normal_days(
    stack: stand_ins.LocalStack, silent_port: int, capfd: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    target = SnowflakeTarget(stage_aws_key_id="testing", stage_aws_secret_key="testing")
    down = _snowflake(stack, port=_closed_port())
    assert [r.partition_key for r in _evaluate(down, target)] == [*NORMAL_DAYS, LATE_DAY]
    logged = _logged(capfd)
    assert "WARNING - Could not look up which days between 2024-04-09 and 2024-05-05 hold ongoing" in logged
    assert "(OperationalError: 250001: Could not connect to Snowflake backend" in logged
    assert "This tick requests only yesterday, the lookback days and the late reload" in logged

    monkeypatch.setattr(schedules, "ONGOING_LOOKUP_TIMEOUT_SECONDS", 1.0)
    hanging = _snowflake(stack, port=silent_port, network_timeout=60, login_timeout=60)
    started = time.monotonic()
    assert [r.partition_key for r in _evaluate(hanging, target)] == [*NORMAL_DAYS, LATE_DAY]
    assert time.monotonic() - started < 10
    assert "the Snowflake lookup of ongoing conversations took longer than 1 s and was abandoned" in _logged(capfd)

    # A secret not set where the schedule runs (the code server, not the run's environment).
    monkeypatch.delenv("GENESYS_TEST_UNSET_SNOWFLAKE_ACCOUNT", raising=False)
    missing = SnowflakeResource(
        account=dg.EnvVar("GENESYS_TEST_UNSET_SNOWFLAKE_ACCOUNT"), user="fake", password="pw-never-logged",
        database="X", schema=SCHEMA, additional_snowflake_connection_args=dict(stack.snowflake_connection_args),
    )  # fmt: skip
    assert [r.partition_key for r in _evaluate(missing, target)] == [*NORMAL_DAYS, LATE_DAY]
    logged = _logged(capfd)
    assert "(the environment variable GENESYS_TEST_UNSET_SNOWFLAKE_ACCOUNT is not set where the schedule" in logged
    assert "pw-never-logged" not in logged


# ##### THE PIPELINE OVER HTTP


def _run(definitions: dg.Definitions, instance: Any, request: dg.RunRequest) -> dg.ExecuteInProcessResult:
    job = definitions.resolve_job_def(CONVERSATIONS_JOB)
    result = job.execute_in_process(partition_key=request.partition_key, tags=request.tags, instance=instance,
                                    run_config=QUIET)  # fmt: skip
    assert result.success
    evaluations = result.get_asset_check_evaluations()
    assert evaluations and all(e.passed for e in evaluations), [e.description for e in evaluations]
    return result


@pytest.mark.slow
def test_a_day_loaded_while_conversations_were_open_is_completed_by_the_first_tick_after_they_end(lab) -> None:
    day = date(2024, 5, 8)
    first_load = datetime(2024, 5, 9, 0, 20, tzinfo=UTC)  # the day has just ended: its evening is still open
    tick = datetime(2024, 5, 13, 6, tzinfo=UTC)  # days back 5: outside the 3-day lookback
    env = lab(now=first_load, daily_volume=300)
    plans = env.emulator.app.centre.day_plans(day)
    definitions = project_definitions(env.resources())

    with instance_like_production() as instance:
        _run(definitions, instance, dg.RunRequest(partition_key=day.isoformat()))
        ongoing_at_first_load = {
            row["conversation_id"] for row in env.query(
                "SELECT CONVERSATION_ID FROM CONVERSATIONS WHERE PARTITION_DATE = %s AND CONVERSATION_END IS NULL",
                (day,))
        }  # fmt: skip
        open_then = {p.conversation_id for p in plans if p.end_ms > epoch_ms(first_load)}
        assert ongoing_at_first_load and ongoing_at_first_load == open_then

        # Days later, over the emulator's HTTP admin endpoint.
        moved = requests.post(f"{env.emulator.base_url}/emulator/clock", json={"now": tick.isoformat()}, timeout=10)
        assert moved.status_code == 200 and env.emulator.app.clock.now_ms() == epoch_ms(tick)
        still_open = {p.conversation_id for p in plans if p.end_ms > epoch_ms(tick)}
        assert ongoing_at_first_load - still_open, "nothing that was ongoing has ended by the tick"

        repository = definitions.get_repository_def()
        context = dg.build_schedule_context(instance=instance, scheduled_execution_time=tick, repository_def=repository)
        requests_ = genesys_conversations_daily.evaluate_tick(context).run_requests or []
        by_day = {r.partition_key: r for r in requests_}
        assert list(by_day) == ["2024-05-12", "2024-05-11", "2024-05-10", "2024-05-09", "2024-05-03", "2024-05-08"]
        reload = by_day["2024-05-08"]
        assert reload.tags[REASON_TAG] == "ongoing" and reload.tags[DAYS_BACK_TAG] == "5"
        assert reload.tags[ONGOING_TAG] == str(len(ongoing_at_first_load))

        # The normal days' runs are the daily load other tests cover; the reload of the day is the point here.
        _run(definitions, instance, reload)

        after = env.conversations(day)
        assert set(after) == {p.conversation_id for p in plans}
        assert {cid for cid, row in after.items() if row["conversation_end"] is None} == still_open
        assert {cid for cid, row in after.items() if row["ongoing"]} == still_open
        ends = {p.conversation_id: p.end_ms for p in plans}
        for cid in ongoing_at_first_load - still_open:
            assert epoch_ms(after[cid]["conversation_end"]) == ends[cid]

        # The next tick reads the day again only if something of it is still ongoing.
        following = tick + timedelta(days=1)
        context = dg.build_schedule_context(instance=instance, scheduled_execution_time=following,
                                            repository_def=repository)  # fmt: skip
        next_keys = [r.partition_key for r in genesys_conversations_daily.evaluate_tick(context).run_requests or []]
        again = ["2024-05-08"] if still_open else []
        assert next_keys == ["2024-05-13", "2024-05-12", "2024-05-11", "2024-05-10", "2024-05-04", *again]
