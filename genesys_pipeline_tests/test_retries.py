"""Which failures the step retry policy retries: transient ones only. Permanent errors (configuration,
rejected credentials, a request the API refuses, a broken manifest or stage) fail the step at once,
with the cause in the message, instead of costing minutes of retries before the run fails."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import dagster as dg
import pydantic
import pytest

from genesys_pipeline.contracts.manifests import ManifestError
from genesys_pipeline.defs.partitions import build_retry_policy, is_permanent
from genesys_pipeline.defs.raw_conversations import raw_conversations
from genesys_pipeline.genesys.errors import (
    GenesysApiError,
    GenesysAuthError,
    GenesysRetriesExhausted,
)
from genesys_pipeline.local.emulator import DEMO_CLIENT_SECRET
from genesys_pipeline.resources.genesys import GenesysResource
from genesys_pipeline.resources.working_storage import WorkingStorage
from genesys_pipeline.settings import SettingsError
from genesys_pipeline.steps.load import LoadError
from genesys_pipeline_tests.conftest import genesys_for

PARTITION = "2024-05-08"
# Production's policy (GENESYS_STEP_RETRIES=2) with a delay short enough for a test.
TEST_POLICY = build_retry_policy(2, delay=0.01)


def run_raw(genesys: GenesysResource, root: Path) -> dg.ExecuteJobResult:
    """raw_conversations for one day, in a job whose steps have TEST_POLICY (the assets' own policy is
    None in the local environment the tests run in, so the job's applies)."""
    job = dg.define_asset_job("raw_with_retries", [raw_conversations], op_retry_policy=TEST_POLICY)
    defs = dg.Definitions(
        assets=[raw_conversations], jobs=[job],
        resources={"genesys": genesys, "working_storage": WorkingStorage(root=str(root))},
    )  # fmt: skip
    return defs.resolve_job_def(job.name).execute_in_process(partition_key=PARTITION, raise_on_error=False)


def counts(result: dg.ExecuteJobResult) -> dict[str, int]:
    types = [event.event_type_value for event in result.all_events]
    return {kind: types.count(kind) for kind in ("STEP_UP_FOR_RETRY", "STEP_RESTARTED", "STEP_FAILURE")}


def failure_message(result: dg.ExecuteJobResult) -> str:
    (event,) = [e for e in result.all_events if e.event_type_value == "STEP_FAILURE"]
    error = event.step_failure_data.error
    return " | ".join(part.message for part in (error, error.cause) if part is not None)


def test_rejected_credentials_fail_the_step_once_naming_the_cause(start_emulator, tmp_path):
    emulator = start_emulator()
    result = run_raw(genesys_for(emulator, client_secret="not-the-secret"), tmp_path)
    assert not result.success
    assert counts(result) == {"STEP_UP_FOR_RETRY": 0, "STEP_RESTARTED": 0, "STEP_FAILURE": 1}
    message = failure_message(result)
    assert "GenesysAuthError" in message and "not retried" in message, message
    assert "not-the-secret" not in message and DEMO_CLIENT_SECRET not in message


def test_a_bad_region_fails_the_run_without_retries(start_emulator, tmp_path, monkeypatch):
    # Checked when the run resolves the EnvVar, before any step body runs: in the in-process executor
    # a resource-init failure of the run, not a step failure the policy could retry.
    monkeypatch.setenv("GENESYS_REGION", "moon.pure.cloud")
    genesys = GenesysResource(region=dg.EnvVar("GENESYS_REGION"), client_id="id", client_secret="secret")
    result = run_raw(genesys, tmp_path)
    assert not result.success
    types = [event.event_type_value for event in result.all_events]
    assert types.count("STEP_UP_FOR_RETRY") == 0 and types.count("STEP_START") == 0
    (init_failure,) = [e for e in result.all_events if e.event_type_value == "RESOURCE_INIT_FAILURE"]
    assert "moon.pure.cloud" in str(init_failure.engine_event_data.error), init_failure.engine_event_data.error


def test_transient_api_failures_keep_the_step_retries(start_emulator, tmp_path):
    # Every request faults (429/503/504/connection reset): the client gives up after its 2 attempts,
    # and the step policy runs the step twice more.
    emulator = start_emulator(fault_rate=1.0)
    result = run_raw(genesys_for(emulator, max_attempts=2), tmp_path)
    assert not result.success
    assert counts(result) == {"STEP_UP_FOR_RETRY": 2, "STEP_RESTARTED": 2, "STEP_FAILURE": 1}


def _api_error(status: int, retries_exhausted: bool = False) -> GenesysApiError:
    fields: dict[str, Any] = {"method": "POST", "path": "/api/v2/x", "status": status, "code": None,
                              "message": "m", "correlation_id": None}  # fmt: skip
    return GenesysRetriesExhausted(attempts=6, **fields) if retries_exhausted else GenesysApiError(**fields)


def _validation_error() -> pydantic.ValidationError:
    try:
        GenesysResource(region="moon.pure.cloud", client_id="id", client_secret="secret")
    except pydantic.ValidationError as error:
        return error
    raise AssertionError("the resource accepted an unknown region")


def _chained(error: Exception, cause: Exception) -> Exception:
    error.__cause__ = cause
    return error


@pytest.mark.parametrize(
    ("error", "permanent"),
    [
        (GenesysAuthError("invalid_client"), True),
        (_api_error(400), True),
        (_api_error(403), True),
        (_api_error(404), True),
        (_api_error(408), False),
        (_api_error(429), False),
        (_api_error(503, retries_exhausted=True), False),
        (_api_error(429, retries_exhausted=True), False),
        (ManifestError("raw manifest: field rows missing"), True),
        (SettingsError("GENESYS_STEP_RETRIES must be a whole number, got 'two'"), True),
        (_validation_error(), True),
        (LoadError("Stage DB.S.STAGE reads 's3://other/', but S3Publishing publishes to 's3://ours/'"), True),
        (_chained(LoadError("COPY failed"), LoadError("COPY reported LOAD_FAILED for f.parquet")), True),
        (_chained(LoadError("COPY failed"), ConnectionResetError("connection reset by peer")), False),
        (TimeoutError("read timed out"), False),
        (RuntimeError("anything else"), False),
    ],
)
def test_which_errors_are_permanent(error, permanent):
    assert is_permanent(error) is permanent
