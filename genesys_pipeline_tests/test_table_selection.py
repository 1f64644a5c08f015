"""GENESYS_TABLES: the tables left out are never written, published, created or touched in Snowflake, and
the row-count check counts the selected ones; a name that is not a table fails when the definitions load.

The pipeline runs for real: the Genesys emulator, moto's S3 server and the fakesnow server over HTTP.
"""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import dagster as dg
import pytest

import genesys_pipeline.settings as settings_module
from genesys_pipeline.contracts.manifests import FlatManifest
from genesys_pipeline.contracts.tables import TABLES
from genesys_pipeline.defs.checks import ROW_COUNT_CHECK, row_counts_match_across_stages
from genesys_pipeline.defs.flattened_conversations import flattened_conversations
from genesys_pipeline.defs.raw_conversations import raw_conversations
from genesys_pipeline.defs.s3_conversations import s3_conversations
from genesys_pipeline.defs.snowflake_conversations import snowflake_conversations
from genesys_pipeline.local import stand_ins
from genesys_pipeline.resources.warehouse import S3Publishing, SnowflakeTarget
from genesys_pipeline.resources.working_storage import WorkingStorage
from genesys_pipeline.settings import SettingsError, load_settings
from genesys_pipeline_tests.conftest import PAST_DAY, genesys_for, run_query

DAY = PAST_DAY.isoformat()
PIPELINE = [raw_conversations, flattened_conversations, s3_conversations, snowflake_conversations,
            row_counts_match_across_stages]  # fmt: skip
QUIET = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}


def select(monkeypatch: pytest.MonkeyPatch, value: str) -> tuple[str, ...]:
    """GENESYS_TABLES=value for the steps run from now on (they read the parsed settings when they run)."""
    settings = load_settings({"GENESYS_TABLES": value})
    chosen = dataclasses.replace(settings_module.SETTINGS, tables=settings.tables)
    monkeypatch.setattr(settings_module, "SETTINGS", chosen)
    return settings.tables


def pipeline_resources(stack: stand_ins.LocalStack, emulator: Any, tmp_path: Path) -> dict[str, Any]:
    """The pipeline's resources on the emulator, a bucket and a database of the test's own."""
    token = uuid.uuid4().hex[:8]
    bucket = f"genesys-select-{token}"  # moto's buckets are process-wide; fakesnow's databases server-wide
    s3 = stand_ins.s3_resource(stack.s3_endpoint_url)
    s3.get_client().create_bucket(Bucket=bucket)
    return {
        "genesys": genesys_for(emulator), "working_storage": WorkingStorage(root=str(tmp_path / "working")),
        "s3": s3, "s3_publishing": S3Publishing(bucket=bucket),
        "snowflake": stand_ins.snowflake_resource(stack.snowflake_connection_args, f"SELECT_{token.upper()}",
                                                  "GENESYS"),
        "snowflake_target": SnowflakeTarget(stage_aws_key_id="testing", stage_aws_secret_key="testing",
                                            staging_tables="transient"),
    }  # fmt: skip


def test_the_selection_is_parsed_in_the_contract_order_and_always_has_conversations() -> None:
    assert load_settings({}).tables == tuple(table.name for table in TABLES)
    assert load_settings({"GENESYS_TABLES": " Segments ,conversations,"}).tables == ("conversations", "segments")
    assert load_settings({"GENESYS_TABLES": "session_metrics"}).tables == ("conversations", "session_metrics")


def test_an_unknown_table_name_fails_naming_the_variable_the_value_and_the_allowed_names() -> None:
    with pytest.raises(SettingsError) as raised:
        load_settings({"GENESYS_TABLES": "conversations,segmnts"})
    message = str(raised.value)
    assert message.startswith("GENESYS_TABLES must list tables")
    assert "'conversations,segmnts'" in message and "'segmnts' is not among them" in message
    assert all(table.name in message for table in TABLES)


def test_the_code_location_refuses_to_load_with_an_unknown_table() -> None:
    env = dict(os.environ, GENESYS_TABLES="calls")
    done = subprocess.run([sys.executable, "-W", "ignore", "-c", "import genesys_pipeline.definitions"], env=env,
                          capture_output=True, text=True, timeout=120, cwd=Path(__file__).resolve().parents[1])  # fmt: skip
    assert done.returncode != 0
    assert "SettingsError: GENESYS_TABLES must list tables" in done.stderr and "'calls'" in done.stderr


@pytest.mark.slow
def test_a_day_with_two_tables_selected_writes_publishes_and_loads_only_those(
    stack: stand_ins.LocalStack, start_emulator: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """First the day with every table; then with conversations and segments only: those two are replaced
    (the second run's rows), the others keep the first run's rows untouched, nothing new is published
    for them, and the check counts the two and passes."""
    emulator = start_emulator()
    resources = pipeline_resources(stack, emulator, tmp_path)
    s3, snowflake, bucket = resources["s3"], resources["snowflake"], resources["s3_publishing"].bucket

    def run() -> dg.ExecuteInProcessResult:
        result = dg.materialize(PIPELINE, partition_key=DAY, resources=resources, run_config=QUIET)
        assert result.success
        (evaluation,) = result.get_asset_check_evaluations()
        assert evaluation.check_name == ROW_COUNT_CHECK and evaluation.passed, evaluation.description
        return result

    def run_ids() -> dict[str, set[str]]:
        tables = {r["table_name"].lower() for r in run_query(
            snowflake, "SELECT TABLE_NAME FROM INFORMATION_SCHEMA.TABLES WHERE TABLE_SCHEMA = 'GENESYS' "
            "AND TABLE_TYPE = 'BASE TABLE'")} - {"genesys_load_history"}  # fmt: skip
        distinct = "SELECT DISTINCT EXTRACTION_RUN_ID AS R FROM {}"
        return {t: {r["r"] for r in run_query(snowflake, distinct.format(t))} for t in tables}

    def objects() -> dict[str, str]:
        listed = s3.get_client().list_objects_v2(Bucket=bucket, Prefix="genesys/conversations/")["Contents"]
        return {item["Key"]: item["ETag"] for item in listed}

    first = run()
    before_objects = objects()
    loaded_first = run_ids()
    assert set(loaded_first) == {table.name for table in TABLES}
    assert all(loaded_first[name] == {first.run_id} for name in ("conversations", "participants", "segments"))
    with_rows = {name for name, ids in loaded_first.items() if ids}

    assert select(monkeypatch, "segments") == ("conversations", "segments")
    second = run()
    # Snowflake: the two selected tables hold the second run's rows; every other table the first run's.
    assert run_ids() == {name: ({second.run_id if name in ("conversations", "segments") else first.run_id}
                                if name in with_rows else set()) for name in loaded_first}  # fmt: skip
    # The load history has the second run's loads for the two tables only.
    loaded = run_query(snowflake, "SELECT TABLE_NAME FROM GENESYS_LOAD_HISTORY WHERE RUN_ID = %s", (second.run_id,))
    assert sorted(r["table_name"] for r in loaded) == ["CONVERSATIONS", "SEGMENTS"]
    # S3: new objects for the two tables (same keys), the others' objects as the first run left them.
    after_objects = objects()
    assert set(after_objects) == set(before_objects)
    changed_tables = {key.split("/")[2] for key in after_objects if after_objects[key] != before_objects[key]}
    assert changed_tables <= {"conversations", "segments", "_manifests"}
    manifest_key = f"genesys/conversations/_manifests/{DAY}.json"
    assert after_objects[manifest_key] != before_objects[manifest_key]
    # The working location: the flat manifest lists the two tables; the check counted exactly those.
    assert sorted(FlatManifest.read(resources["working_storage"], DAY).tables) == ["conversations", "segments"]
    (evaluation,) = second.get_asset_check_evaluations()
    assert "All 2 tables agree" in (evaluation.description or "")


@pytest.mark.slow
def test_a_fresh_schema_with_two_tables_selected_gets_only_those_tables(
    stack: stand_ins.LocalStack, start_emulator: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No table left out is created; the views, which read tables left out, are not created either."""
    select(monkeypatch, "conversations,segments")
    emulator = start_emulator(daily_volume=60)
    resources = pipeline_resources(stack, emulator, tmp_path)
    s3, snowflake, bucket = resources["s3"], resources["snowflake"], resources["s3_publishing"].bucket
    result = dg.materialize(PIPELINE, partition_key=DAY, resources=resources, run_config=QUIET)
    assert result.success
    (evaluation,) = result.get_asset_check_evaluations()
    assert evaluation.passed and "All 2 tables agree" in (evaluation.description or ""), evaluation.description

    listing = "SELECT TABLE_NAME, TABLE_TYPE FROM INFORMATION_SCHEMA.TABLES WHERE TABLE_SCHEMA = 'GENESYS'"
    in_schema = {(r["table_name"], r["table_type"]) for r in run_query(snowflake, listing)}
    assert in_schema == {("CONVERSATIONS", "BASE TABLE"), ("SEGMENTS", "BASE TABLE"),
                         ("GENESYS_LOAD_HISTORY", "BASE TABLE")}  # fmt: skip
    listed = s3.get_client().list_objects_v2(Bucket=bucket)["Contents"]
    assert sorted(item["Key"].split("/")[2] for item in listed) == ["_manifests", "conversations", "segments"]
    served = len(emulator.app.conversations_started(PAST_DAY))
    assert run_query(snowflake, "SELECT COUNT(*) AS N FROM CONVERSATIONS")[0]["n"] == served > 0
    assert sorted(p.name for p in (tmp_path / "working" / "flat" / DAY).iterdir()) == [
        "conversations.parquet", "manifest.json", "record_paths.json", "segments.parquet"]
