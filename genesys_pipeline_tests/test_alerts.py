"""Operators' signals (defs/alerts.py): a failed run is announced on a chat webhook, with the job, the
day, the cause and a link, and never the webhook's URL in a log; the Snowflake tables carry a freshness
policy with the configured deadline."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Callable, Iterator

import dagster as dg
import pytest

from genesys_pipeline.definitions import build_definitions
from genesys_pipeline.defs.alerts import genesys_failed_run_alert
from genesys_pipeline.local.emulator import EmulatorServer
from genesys_pipeline.local.resources import local_resources
from genesys_pipeline.resources.alerts import FailureAlerts
from genesys_pipeline.settings import load_settings
from genesys_pipeline.steps.alerts import AlertError, failure_text, post_to_webhook
from genesys_pipeline_tests.conftest import PAST_DAY, genesys_for


class _Webhook:
    """A chat webhook on loopback: records the JSON bodies it is sent; answers `status`."""

    def __init__(self, status: int = 200) -> None:
        received: list[dict[str, Any]] = []
        self.received = received

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's name)
                received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
                self.send_response(status)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks/T000/SECRET-PART"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def webhook() -> Iterator[Callable[..., _Webhook]]:
    started: list[_Webhook] = []

    def start(status: int = 200) -> _Webhook:
        started.append(_Webhook(status))
        return started[-1]

    yield start
    for hook in started:
        hook.close()


def test_the_message_names_job_days_cause_and_link_and_is_short() -> None:
    text = failure_text("genesys_conversations", "r-1", "2024-05-08", "boom\n  at line 3", "https://ui.example/")
    assert text == (
        "genesys_pipeline: run of genesys_conversations failed for 2024-05-08\n"
        "Cause: boom at line 3\n"
        "Run: https://ui.example/runs/r-1"
    )
    assert len(failure_text("j", "r", "", "x" * 5000)) < 700


def test_a_webhook_that_refuses_or_is_gone_raises_without_the_url(webhook: Callable[..., _Webhook]) -> None:
    refusing = webhook(status=500)
    with pytest.raises(AlertError) as raised:
        post_to_webhook(refusing.url, "hello")
    assert "HTTP 500" in str(raised.value) and "SECRET-PART" not in str(raised.value)
    with pytest.raises(AlertError) as raised:
        post_to_webhook("http://127.0.0.1:9/hooks/SECRET-PART", "hello", timeout_seconds=2)
    assert "SECRET-PART" not in str(raised.value)
    with pytest.raises(ValueError) as invalid:
        FailureAlerts(webhook_url="not-a-url-SECRET-PART")
    assert "SECRET-PART" not in str(invalid.value).split("input_value")[0]


@pytest.mark.slow
def test_a_failed_run_is_announced_on_the_webhook(
    start_emulator: Callable[..., EmulatorServer], webhook: Callable[..., _Webhook], tmp_path: Path
) -> None:
    """A run whose Genesys credentials are refused fails at once; the sensor, given that failure, posts
    one message with the job, the day, the API's reason and a link to the run."""
    emulator, hook = start_emulator(), webhook()
    resources = local_resources(load_settings({"GENESYS_WORKING_DIR": str(tmp_path)}).local)
    resources["genesys"] = genesys_for(emulator, client_secret="not-the-secret", max_attempts=1)
    definitions = build_definitions(resources=resources)
    with dg.instance_for_test() as instance:
        result = definitions.resolve_job_def("genesys_conversations").execute_in_process(
            instance=instance, partition_key=PAST_DAY.isoformat(), raise_on_error=False
        )
        assert not result.success
        context = dg.build_run_status_sensor_context(
            sensor_name=genesys_failed_run_alert.name, dagster_event=result.get_run_failure_event(),
            dagster_instance=instance, dagster_run=result.dagster_run,
            resources={"alerts": FailureAlerts(webhook_url=hook.url, ui_base_url="https://dagster.example.com")},
        ).for_run_failure()  # fmt: skip
        genesys_failed_run_alert(context)
    (message,) = hook.received
    lines = message["text"].splitlines()
    assert lines[0] == f"genesys_pipeline: run of genesys_conversations failed for {PAST_DAY.isoformat()}"
    assert lines[1].startswith("Cause: ") and len(lines[1]) > len("Cause: ")
    assert lines[2] == f"Run: https://dagster.example.com/runs/{result.run_id}"


def test_the_code_location_has_the_alert_sensor_and_a_freshness_policy_on_the_tables() -> None:
    definitions = build_definitions()
    sensors = {sensor.name: sensor for sensor in definitions.get_repository_def().sensor_defs}
    # Off unless GENESYS_ALERT_WEBHOOK_URL is set (the test environment does not set it).
    assert sensors["genesys_failed_run_alert"].default_status == dg.DefaultSensorStatus.STOPPED
    policy = definitions.resolve_assets_def("snowflake_conversations").specs_by_key[
        dg.AssetKey("snowflake_conversations")].freshness_policy  # fmt: skip
    assert policy is not None and policy.deadline_cron == "0 10 * * *"  # GENESYS_FRESHNESS_DEADLINE_HOUR's default
    # A policy, not a check: nothing but the two count checks (and the schema-drift check, on the
    # flattened tables) runs inside the runs that load the tables.
    assert {key.name for key in definitions.get_repository_def().asset_graph.asset_check_keys} == {
        "row_counts_match_across_stages", "api_count_close_to_extracted", "record_fields_match_the_contract"}
