"""GenesysResource and its client, over real HTTP against the in-process Genesys emulator.

The emulator's ground truth (`conversations_started`, its request counters) is the oracle: the
client must return exactly the conversations that exist, survive injected faults and token
revocation, cancel what it abandons, stay under its request budget, and never leak a secret.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import re
import subprocess
import sys
import threading
import time
from datetime import date, datetime, timedelta, timezone
from typing import Any, Callable, Iterator

import dagster as dg
import pytest

import genesys_pipeline.local.emulator.lookup_endpoints as emulator_lookup_endpoints
import genesys_pipeline.local.emulator.ratelimit as emulator_ratelimit
from genesys_pipeline.genesys import (
    ClientSettings,
    DetailJobError,
    GenesysApiError,
    GenesysAuthError,
    GenesysClient,
    GenesysError,
    GenesysRetriesExhausted,
    GenesysTransportError,
    JobResultCapExceeded,
    QueryCapExceeded,
    RequestThrottle,
)
from genesys_pipeline.genesys import responses as genesys_responses
from genesys_pipeline.genesys.detail_jobs import AVAILABILITY_PATH
from genesys_pipeline.genesys.job_slots import JobSlotsBusy
from genesys_pipeline.genesys.regions import GENESYS_REGIONS
from genesys_pipeline.genesys.timestamps import format_interval
from genesys_pipeline.local.emulator import (
    DEMO_CLIENT_ID,
    DEMO_CLIENT_SECRET,
    EmulatorServer,
)
from genesys_pipeline.local.emulator.messages import Response as EmulatorResponse
from genesys_pipeline.resources.genesys import GenesysResource
from genesys_pipeline_tests.conftest import CLOCK, PAST_DAY, genesys_for

# ##### FIXTURES (the emulators come from conftest.py)

DAY = date(2024, 5, 9)

# The client's own tests: shorter waits than conftest's FAST_RETRIES, and the resource's default attempt
# budget unless a test sets max_attempts.
FAST_CLIENT: dict[str, Any] = dict(
    backoff_base_seconds=0.02,
    backoff_cap_seconds=0.2,
    job_poll_interval_seconds=0.05,
    job_poll_max_interval_seconds=0.1,
)


def resource_for(emulator: EmulatorServer, **overrides: Any) -> GenesysResource:
    return genesys_for(emulator, retries=FAST_CLIENT, **overrides)


@contextlib.contextmanager
def client_for(emulator: EmulatorServer, **overrides: Any) -> Iterator[GenesysClient]:
    with resource_for(emulator, **overrides).get_client() as client:
        yield client


def day_bounds(day: date) -> tuple[datetime, datetime]:
    start = datetime(day.year, day.month, day.day, tzinfo=timezone.utc)
    return start, start + timedelta(days=1)


def record_issued_tokens(emulator: EmulatorServer) -> list[str]:
    """Wrap the emulator's token issuer so the test knows every access token handed out."""
    issued: list[str] = []
    original = emulator.app.tokens.issue

    def issue(*args: Any) -> dict[str, object]:
        body = original(*args)
        issued.append(str(body["access_token"]))
        return body

    emulator.app.tokens.issue = issue  # type: ignore[method-assign]
    return issued


def assert_no_secrets(texts: list[str], secrets: list[str]) -> None:
    for secret in secrets:
        for text in texts:
            assert secret not in text, f"secret {secret[:6]}... leaked into: {text[:200]}"


# ##### CONFIGURATION


@pytest.mark.parametrize(
    ("fields", "field_named", "also"),
    [
        (dict(region="mars.pure.cloud"), "region", "mypurecloud.com.au"),  # lists the valid ones
        (dict(), "region", "api_base_url"),
        (dict(region="mypurecloud.com", api_base_url="http://a", login_base_url="http://a"), "region", "not both"),
        (dict(api_base_url="http://127.0.0.1:1"), "login_base_url", "api_base_url"),
        (dict(api_base_url="ftp://x", login_base_url="http://x"), "api_base_url", "http(s)"),
        (dict(api_base_url="http://x", login_base_url="127.0.0.1:8765"), "login_base_url", "http(s)"),
        (dict(region="mypurecloud.de", query_page_size=0), "query_page_size", ""),
        (dict(region="mypurecloud.de", job_page_size=5000), "job_page_size", ""),
        (dict(region="mypurecloud.de", lookup_page_size=0), "lookup_page_size", ""),
        (dict(region="mypurecloud.de", requests_per_minute=0), "requests_per_minute", ""),
        (dict(region="mypurecloud.de", client_secret=" "), "client_secret", "empty"),
    ],
)
def test_bad_configuration_fails_at_load_naming_the_field(fields: dict, field_named: str, also: str) -> None:
    secret = "do-not-print-this-secret"
    with pytest.raises(Exception) as raised:
        GenesysResource(**{"client_id": "id", "client_secret": secret, **fields})
    message = str(raised.value)
    assert field_named in message and also in message
    if fields.get("client_secret") is None:
        assert secret not in message


@pytest.mark.parametrize("domain", sorted(GENESYS_REGIONS))
def test_every_region_maps_to_its_api_and_login_hosts(domain: str) -> None:
    resource = GenesysResource(region=domain, client_id="id", client_secret="secret")
    assert resource.resolved_api_base_url == f"https://api.{domain}"
    assert resource.resolved_login_base_url == f"https://login.{domain}"


def test_region_table_and_aliases() -> None:
    assert len(GENESYS_REGIONS) == 18
    by_key = GenesysResource(region="ap_southeast_2", client_id="id", client_secret="s")
    assert by_key.resolved_api_base_url == "https://api.mypurecloud.com.au"
    explicit = GenesysResource(
        api_base_url="http://127.0.0.1:8765/", login_base_url="http://127.0.0.1:8765", client_id="i", client_secret="s"
    )
    assert explicit.resolved_api_base_url == explicit.resolved_login_base_url == "http://127.0.0.1:8765"


def test_secret_is_not_in_the_resource_repr() -> None:
    resource = GenesysResource(region="usw2.pure.cloud", client_id="id", client_secret="hush-hush-123")
    assert "hush-hush-123" not in repr(resource) and "hush-hush-123" not in str(resource)


def test_the_client_settings_carry_every_setting_and_hide_the_secret() -> None:
    resource = GenesysResource(region="eu-central-1", client_id="id", client_secret="hush-hush-123", max_attempts=9)
    settings = resource.client_settings()
    assert (settings.api_base_url, settings.login_base_url) == ("https://api.mypurecloud.de", "https://login.mypurecloud.de")
    assert settings.client_secret == "hush-hush-123" and settings.max_attempts == 9
    # Every resource field but the endpoint ones reaches the client under its own name.
    endpoint_fields = {"region", "api_base_url", "login_base_url"}
    copied = {field.name for field in dataclasses.fields(ClientSettings)} - endpoint_fields
    # personal_data is what the assets do with the records (steps/privacy.py), not the client's business.
    assert copied == set(GenesysResource.model_fields) - endpoint_fields - {"personal_data"}
    assert all(getattr(settings, name) == getattr(resource, name) for name in copied)
    with pytest.raises(dataclasses.FrozenInstanceError):
        settings.max_attempts = 1  # type: ignore[misc]
    with GenesysClient(settings) as client:
        texts = [repr(settings), str(settings), repr(client)]
    assert "client_id='id'" in texts[0]
    assert_no_secrets(texts, ["hush-hush-123"])


def test_the_api_client_package_imports_neither_dagster_nor_the_resource() -> None:
    # genesys/ is plain Python under the resource: usable without Dagster, and no import cycle.
    probe = (
        "import sys, genesys_pipeline.genesys; print(sorted(m for m in sys.modules "
        "if m.split('.')[0] == 'dagster' or m.startswith('genesys_pipeline.resources')))"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


# ##### DETAILS QUERY


def test_query_pages_a_full_day_to_exactly_the_ground_truth(emulator: EmulatorServer) -> None:
    start, end = day_bounds(DAY)
    with client_for(emulator) as client:
        stream = client.query_conversation_details(start, end)
        ids = [conversation["conversationId"] for conversation in stream]
    truth = emulator.app.conversations_started(DAY)
    assert len(truth) >= 250
    assert len(ids) == len(set(ids)) and set(ids) == set(truth)
    assert stream.conversations == len(truth)
    assert abs(stream.total_hits - len(truth)) <= 0.03 * len(truth) + 1  # the API's estimate
    # It stops at the first page shorter than pageSize, whatever totalHits says.
    assert emulator.app.stats.snapshot()["requests.details_query"] == len(truth) // 100 + 1 == stream.pages
    assert client.stats.retries == 0 and client.stats.token_requests == 1


def test_a_total_hits_estimate_below_the_truth_loses_nothing(
    start_emulator: Callable[..., EmulatorServer],
) -> None:
    # totalHits is approximate; paging that stopped at it would drop the records past the estimate.
    emulator = start_emulator(daily_volume=302)
    days = [date(2024, 5, d) for d in range(1, 10)]
    with client_for(emulator) as client:
        streams = {day: client.query_conversation_details(*day_bounds(day)) for day in days}
        arrived = {day: [c["conversationId"] for c in stream] for day, stream in streams.items()}
    low = [day for day in days if streams[day].total_hits < len(emulator.app.conversations_started(day))]
    assert low, "no day with an estimate below the truth: the test would prove nothing"
    for day in days:
        assert sorted(arrived[day]) == sorted(emulator.app.conversations_started(day)), day


def test_query_and_job_under_injected_faults_return_the_same_ids(
    start_emulator: Callable[..., EmulatorServer],
) -> None:
    emulator = start_emulator(fault_rate=0.3)
    start, end = day_bounds(DAY)
    with client_for(emulator, query_page_size=20, job_page_size=60, max_attempts=10) as client:
        ids = [conversation["conversationId"] for conversation in client.query_conversation_details(start, end)]
        past_start, past_end = day_bounds(PAST_DAY)
        job = client.run_details_job(past_start, past_end, start_of_day_interval_matching=True)
        job_ids = [conversation["conversationId"] for conversation in job]
        stats = client.stats.snapshot()
    assert sorted(ids) == sorted(emulator.app.conversations_started(DAY))
    assert sorted(job_ids) == sorted(emulator.app.conversations_started(PAST_DAY))
    served = emulator.app.stats.snapshot()
    faults = {kind: served.get(f"faults.{kind}", 0) for kind in ("429", "503", "504", "reset")}
    assert all(faults.values()), faults  # every kind of fault was met, and survived
    assert stats["retries"] == sum(faults.values())
    assert stats["rate_limited"] == faults["429"]
    assert stats["server_errors"] == faults["503"] + faults["504"]
    assert stats["transport_errors"] == faults["reset"]
    handled = sum(count for key, count in served.items() if key.startswith("requests.") and key != "requests.oauth_token")
    assert stats["requests"] == handled + sum(faults.values())


def test_query_on_shifting_live_data_yields_each_conversation_once(
    start_emulator: Callable[..., EmulatorServer],
) -> None:
    emulator = start_emulator(live_drift=True)
    start, end = day_bounds(DAY)
    with client_for(emulator) as client:
        stream = client.query_conversation_details(start, end)
        ids = [conversation["conversationId"] for conversation in stream]
    assert stream.duplicates_skipped > 0
    assert len(ids) == len(set(ids)) and set(ids) == set(emulator.app.conversations_started(DAY))


def test_query_cap_is_raised_before_any_record_and_before_paging_past_it(
    start_emulator: Callable[..., EmulatorServer],
) -> None:
    emulator = start_emulator(query_pagination_cap=200, exact_total_hits=True)
    start, end = day_bounds(DAY)
    with client_for(emulator, query_result_cap=200) as client:
        stream = client.query_conversation_details(start, end)
        with pytest.raises(QueryCapExceeded) as raised:
            next(stream)
    assert raised.value.total_hits == len(emulator.app.conversations_started(DAY)) > 200
    assert stream.conversations == 0
    assert emulator.app.stats.snapshot().get("status.400", 0) == 0  # never asked past the cap


def test_server_cap_lower_than_configured_still_raises_query_cap_exceeded(
    start_emulator: Callable[..., EmulatorServer],
) -> None:
    emulator = start_emulator(query_pagination_cap=200)
    start, end = day_bounds(DAY)
    with client_for(emulator) as client, pytest.raises(QueryCapExceeded):
        list(client.query_conversation_details(start, end))


# ##### DETAIL JOBS


def test_job_for_a_past_day_returns_the_same_ids_and_the_watermark(emulator: EmulatorServer) -> None:
    start, end = day_bounds(PAST_DAY)
    with client_for(emulator, job_page_size=120) as client:
        stream = client.run_details_job(start, end, start_of_day_interval_matching=True)
        conversations = list(stream)
        watermark = client.get_data_availability()
    ids = [conversation["conversationId"] for conversation in conversations]
    assert len(ids) == len(set(ids)) and set(ids) == set(emulator.app.conversations_started(PAST_DAY))
    assert stream.state == "FULFILLED" and stream.pages == -(-len(ids) // 120) and not stream.cancelled
    assert watermark == CLOCK - timedelta(hours=6) == stream.data_availability_date
    # Job records carry participant attributes (the query's do not).
    assert any("attributes" in p for c in conversations for p in c["participants"])
    assert emulator.app.stats.snapshot().get("requests.cancel_job", 0) == 0


def test_a_running_job_logs_each_state_with_its_elapsed_time(
    start_emulator: Callable[..., EmulatorServer], caplog: pytest.LogCaptureFixture
) -> None:
    """Polling is never silent: every state the job goes through is logged once, with the time since
    submission (a long job also logs every JOB_PROGRESS_LOG_SECONDS while its state stays the same)."""
    emulator = start_emulator(job_queued_seconds=0.3, job_pending_seconds=0.6)
    start, end = day_bounds(PAST_DAY)
    caplog.set_level(logging.INFO)
    with client_for(emulator) as client:
        stream = client.run_details_job(start, end)
        assert list(stream)
    told = [r.getMessage() for r in caplog.records if r.getMessage().startswith(f"Genesys detail job {stream.job_id}: ")]
    states = [message.split(": ")[1].split(" ")[0] for message in told]
    assert states[-1] == "FULFILLED" and "PENDING" in states and len(states) == len(set(states))
    assert all(re.search(r"after \d+ s \(timeout 3600 s\)$", message) for message in told), told


def test_failed_job_raises_and_is_not_left_running(start_emulator: Callable[..., EmulatorServer]) -> None:
    emulator = start_emulator(job_failure_rate=1.0)
    start, end = day_bounds(PAST_DAY)
    with client_for(emulator) as client:
        stream = client.run_details_job(start, end)
        with pytest.raises(DetailJobError) as raised:
            list(stream)
    assert raised.value.state == "FAILED" and raised.value.error_message
    assert raised.value.job_id == stream.job_id
    assert emulator.app.jobs.status(stream.job_id)["state"] not in ("QUEUED", "PENDING")
    assert emulator.app.stats.snapshot()["requests.cancel_job"] == 1


def test_closing_a_job_stream_midway_cancels_the_job(emulator: EmulatorServer) -> None:
    start, end = day_bounds(PAST_DAY)
    with client_for(emulator, job_page_size=50) as client:
        stream = client.run_details_job(start, end)
        first = [next(stream) for _ in range(10)]
        assert emulator.app.stats.snapshot().get("requests.cancel_job", 0) == 0
        stream.close()
    assert len(first) == 10 and stream.cancelled
    assert emulator.app.stats.snapshot()["requests.cancel_job"] == 1
    assert emulator.app.jobs.status(stream.job_id)["state"] == "CANCELLED"


def test_interrupting_a_job_stream_cancels_the_job(emulator: EmulatorServer) -> None:
    start, end = day_bounds(PAST_DAY)
    with client_for(emulator) as client:
        with pytest.raises(KeyboardInterrupt):
            with client.run_details_job(start, end) as stream:
                for _ in stream:
                    raise KeyboardInterrupt
    assert stream.cancelled
    assert emulator.app.jobs.status(stream.job_id)["state"] == "CANCELLED"


def test_interrupt_while_waiting_for_the_job_cancels_it(
    emulator: EmulatorServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    def interrupted(self: GenesysClient, job_id: str) -> dict[str, Any]:
        raise KeyboardInterrupt  # as if Ctrl-C landed while polling

    monkeypatch.setattr(GenesysClient, "get_details_job_status", interrupted)
    start, end = day_bounds(PAST_DAY)
    with client_for(emulator) as client:
        stream = client.run_details_job(start, end)
        with pytest.raises(KeyboardInterrupt):
            next(stream)
    assert stream.cancelled and stream.conversations == 0
    assert emulator.app.jobs.status(stream.job_id)["state"] == "CANCELLED"


def test_job_results_cap(start_emulator: Callable[..., EmulatorServer]) -> None:
    emulator = start_emulator(job_result_cap=150)
    start, end = day_bounds(PAST_DAY)
    with client_for(emulator, job_result_cap=150, job_page_size=100) as client:
        stream = client.run_details_job(start, end)
        with pytest.raises(JobResultCapExceeded):
            for _ in stream:
                pass
    assert stream.conversations == 150  # the last page was shrunk to end at the cap
    served = emulator.app.stats.snapshot()
    assert served.get("status.400", 0) == 0 and served["requests.cancel_job"] == 1
    # A server cap below the configured one is recognised from its 400 as well.
    with client_for(emulator, job_page_size=100) as client, pytest.raises(JobResultCapExceeded):
        list(client.run_details_job(start, end))


def test_job_submission_waits_out_the_concurrent_job_limit(start_emulator: Callable[..., EmulatorServer]) -> None:
    emulator = start_emulator(max_concurrent_jobs=1, job_pending_seconds=0.3)
    start, end = day_bounds(PAST_DAY)
    with client_for(emulator, backoff_base_seconds=0.2) as client:
        client.submit_details_job({"interval": format_interval(start, end)})  # takes the only slot
        ids = [conversation["conversationId"] for conversation in client.run_details_job(start, end)]
        assert client.stats.rate_limited >= 1
    assert len(ids) >= len(emulator.app.conversations_started(PAST_DAY))


def test_job_submission_waits_for_slots_another_integration_holds(
    start_emulator: Callable[..., EmulatorServer], caplog: pytest.LogCaptureFixture
) -> None:
    """The slots stay taken for 2.5 s, longer than 2 attempts 1 s apart (Retry-After) last: the
    submission waits them out on its own budget, and says at INFO what it waits for."""
    emulator = start_emulator(jobs_busy_seconds=2.5, max_concurrent_jobs=3)
    start, end = day_bounds(PAST_DAY)
    caplog.set_level(logging.INFO)
    with client_for(emulator, max_attempts=2, job_slot_wait_seconds=30) as client:
        assert client.get_analytics_limits().job_slots == 3
        ids = [conversation["conversationId"] for conversation in client.run_details_job(start, end)]
        stats = client.stats.snapshot()
    assert len(ids) >= len(emulator.app.conversations_started(PAST_DAY)) > 0
    assert stats["job_slot_waits"] >= 2 and stats["rate_limited"] == stats["job_slot_waits"]
    assert 2.0 <= stats["job_slot_wait_seconds"] < 10
    waiting = [r for r in caplog.records if "detail-job slots" in r.getMessage()]
    assert len(waiting) == 1 and waiting[0].levelno == logging.INFO  # at most one line per 30 s
    assert "all 3 detail-job slots of the org are in use (another integration?)" in waiting[0].getMessage()
    assert "0 s of 30 s so far" in waiting[0].getMessage() and "Maximum of 3 concurrent" in waiting[0].getMessage()
    assert " failed (HTTP 429" not in caplog.text  # not the normal budget's per-retry warning


def test_job_submission_gives_up_when_the_slots_stay_taken_naming_the_setting(
    start_emulator: Callable[..., EmulatorServer]
) -> None:
    emulator = start_emulator(jobs_busy_seconds=600)
    start, end = day_bounds(PAST_DAY)
    with client_for(emulator, job_slot_wait_seconds=2) as client:
        began = time.monotonic()
        with pytest.raises(JobSlotsBusy) as raised:
            list(client.run_details_job(start, end))
        took = time.monotonic() - began
    error = raised.value
    assert 2 <= took < 5 and error.status == 429 and error.path.endswith("/details/jobs")
    assert "detail-job slots of the org stayed in use for 2 s" in str(error)
    assert "raise job_slot_wait_seconds on GenesysResource" in str(error) and "Another integration" in str(error)
    assert isinstance(error, GenesysRetriesExhausted)  # what callers of the old budget catch


def test_the_rate_limit_429_on_job_submission_keeps_the_normal_budget(
    start_emulator: Callable[..., EmulatorServer]
) -> None:
    """A 429 of this token's full request window is not a busy slot: no waiting by time for it."""
    emulator = start_emulator(rate_limit_per_minute=2)
    body = {"interval": format_interval(*day_bounds(PAST_DAY))}
    with client_for(emulator, max_attempts=1, job_slot_wait_seconds=60) as client:
        client.submit_details_job(body)
        client.submit_details_job(body)
        with pytest.raises(GenesysRetriesExhausted) as raised:
            client.submit_details_job(body)
    assert not isinstance(raised.value, JobSlotsBusy) and raised.value.attempts == 1
    assert client.stats.job_slot_waits == 0


def test_the_orgs_analytics_limits_are_read_and_a_403_is_not_fatal(
    start_emulator: Callable[..., EmulatorServer], caplog: pytest.LogCaptureFixture
) -> None:
    with client_for(start_emulator(max_concurrent_jobs=4, rate_limit_per_minute=200)) as client:
        limits = client.get_analytics_limits()
    assert limits.unavailable is None and limits.namespace == "analytics"
    assert limits.values["details.jobs.concurrent.access.max"] == 4 == limits.job_slots
    assert limits.values["token.rate.per.minute"] == 200
    caplog.set_level(logging.INFO)
    with client_for(start_emulator(limits_forbidden=True)) as client:
        forbidden = client.get_analytics_limits()
        client.get_data_availability()  # the client goes on working
    assert forbidden.values == {} and forbidden.job_slots is None
    assert forbidden.unavailable and forbidden.unavailable.startswith("HTTP 403 not.authorized")
    assert "could not be read (HTTP 403" in caplog.text


# ##### AUTH, ERRORS, SECRETS


def test_revoked_token_midway_is_refreshed_once_and_paging_continues(
    emulator: EmulatorServer, caplog: pytest.LogCaptureFixture
) -> None:
    tokens = record_issued_tokens(emulator)
    start, end = day_bounds(DAY)
    caplog.set_level(logging.DEBUG)
    with client_for(emulator, query_page_size=50) as client:
        ids = []
        for conversation in client.query_conversation_details(start, end):
            ids.append(conversation["conversationId"])
            if len(ids) == 75:
                emulator.app.tokens.revoke_all()
        assert client.stats.token_refreshes == 1 and client.stats.token_requests == 2
    assert sorted(ids) == sorted(emulator.app.conversations_started(DAY))
    assert emulator.app.stats.snapshot()["status.401"] == 1 and len(tokens) == 2
    assert_no_secrets([caplog.text, repr(client)], tokens + [DEMO_CLIENT_SECRET])


def test_a_second_401_with_a_fresh_token_is_a_clear_failure(
    start_emulator: Callable[..., EmulatorServer], caplog: pytest.LogCaptureFixture
) -> None:
    emulator = start_emulator(token_lifetime_seconds=0)  # every token is dead on arrival
    tokens = record_issued_tokens(emulator)
    caplog.set_level(logging.DEBUG)
    with client_for(emulator) as client, pytest.raises(GenesysAuthError) as raised:
        client.get_data_availability()
    error = raised.value
    assert error.status == 401 and error.code == "bad.credentials" and error.correlation_id
    assert "401" in str(error) and "fresh" in str(error)
    assert emulator.app.stats.snapshot()["status.401"] == 2 and len(tokens) == 2
    assert_no_secrets([str(error), repr(error), caplog.text], tokens + [DEMO_CLIENT_SECRET])


@pytest.mark.parametrize(
    ("client_id", "client_secret", "description"),
    [
        (DEMO_CLIENT_ID, "wrong-secret-f00dcafe", "authentication failed"),
        ("no-such-client", "another-secret-beefcafe", "client not found"),
    ],
)
def test_bad_credentials_give_a_clear_error_without_the_secret(
    emulator: EmulatorServer, caplog: pytest.LogCaptureFixture, client_id: str, client_secret: str, description: str
) -> None:
    caplog.set_level(logging.DEBUG)
    with client_for(emulator, client_id=client_id, client_secret=client_secret) as client:
        with pytest.raises(GenesysAuthError) as raised:
            list(client.iter_queues())
        assert client.stats.requests == 0  # no API call without a token
    error = raised.value
    assert error.error == "invalid_client" and error.status == 401
    assert description in str(error) and "invalid_client" in str(error)
    assert_no_secrets([str(error), repr(error), caplog.text], [client_secret])


def script_token_endpoint(emulator: EmulatorServer, failures: list[EmulatorResponse]) -> None:
    """Answer the next token requests with `failures`, one each, then issue tokens as usual."""
    original = emulator.app._token
    pending = list(failures)

    def token(request: Any) -> EmulatorResponse:
        return pending.pop(0) if pending else original(request)

    emulator.app._token = token  # type: ignore[method-assign]


def test_token_request_retries_429_5xx_and_resets_like_api_requests(
    emulator: EmulatorServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    script_token_endpoint(emulator, [
        EmulatorResponse(503, {"error": "temporarily_unavailable"}),
        EmulatorResponse(429, {"error": "too_many_requests"}, {"Retry-After": "0"}),
        EmulatorResponse(0, reset_connection=True),
    ])  # fmt: skip
    with client_for(emulator) as client:
        client.get_data_availability()
        stats = client.stats.snapshot()
    assert stats["token_requests"] == 4 and stats["retries"] == 3 and stats["requests"] == 1
    # The failure counters describe /api/v2 traffic only.
    assert stats["rate_limited"] == stats["server_errors"] == stats["transport_errors"] == 0
    assert caplog.text.count("/oauth/token failed") == 3
    assert_no_secrets([caplog.text], [DEMO_CLIENT_SECRET])


@pytest.mark.parametrize(
    ("failure", "error_type", "text"),
    [
        (EmulatorResponse(503, {"error": "temporarily_unavailable"}), GenesysRetriesExhausted, "HTTP 503"),
        (EmulatorResponse(0, reset_connection=True), GenesysTransportError, "failed after 3 attempts"),
    ],
)
def test_token_request_gives_up_after_the_retry_budget(
    emulator: EmulatorServer, failure: EmulatorResponse, error_type: type, text: str
) -> None:
    script_token_endpoint(emulator, [failure] * 3)
    with client_for(emulator, max_attempts=3) as client, pytest.raises(error_type) as raised:
        client.get_data_availability()
    error = raised.value
    assert (error.method, error.path, error.attempts) == ("POST", "/oauth/token", 3)
    assert text in str(error) and "POST /oauth/token" in str(error)
    assert client.stats.token_requests == 3 and client.stats.retries == 2 and client.stats.requests == 0


def test_api_request_gives_up_after_the_retry_budget(start_emulator: Callable[..., EmulatorServer]) -> None:
    emulator = start_emulator(fault_rate=1.0)
    with client_for(emulator, max_attempts=3) as client:
        with pytest.raises((GenesysRetriesExhausted, GenesysTransportError)) as raised:
            client.get_data_availability()
        stats = client.stats.snapshot()
    error = raised.value
    assert error.attempts == 3 and error.path == AVAILABILITY_PATH and "3 attempts" in str(error)
    assert stats["requests"] == 3 and stats["retries"] == 2
    assert stats["rate_limited"] + stats["server_errors"] + stats["transport_errors"] == 3


def test_a_token_refresh_does_not_use_up_the_retry_budget(emulator: EmulatorServer) -> None:
    with client_for(emulator, max_attempts=1) as client:
        client.get_data_availability()
        emulator.app.tokens.revoke_all()
        client.get_data_availability()
        stats = client.stats.snapshot()
    assert stats["token_refreshes"] == 1 and stats["token_requests"] == 2
    assert stats["requests"] == 3 and stats["retries"] == 0


# ##### A 200 WHOSE BODY IS NOT JSON (a proxy's doing): retried like a 503, then a clear error

HTML_TYPE = "text/html; charset=UTF-8"
JSON_HEADERS, HTML_HEADERS = {"Content-Type": "application/json"}, {"Content-Type": HTML_TYPE}
CUT_TOKEN = EmulatorResponse(200, raw=b'{"access_token":"half-of-a-real-tok', headers=JSON_HEADERS)
HTML_TOKEN = EmulatorResponse(200, raw=b"<html><body>Sign in to the proxy</body></html>", headers=HTML_HEADERS)


@pytest.mark.parametrize("kind", ["truncated", "html"])
def test_details_pages_with_a_bad_200_body_are_retried_and_nothing_is_lost(
    start_emulator: Callable[..., EmulatorServer], kind: str
) -> None:
    emulator = start_emulator(bad_body_rate=0.3, bad_body_kinds=kind)
    start, end = day_bounds(DAY)
    with client_for(emulator, query_page_size=20, max_attempts=10) as client:
        ids = [conversation["conversationId"] for conversation in client.query_conversation_details(start, end)]
        stats = client.stats.snapshot()
    assert sorted(ids) == sorted(emulator.app.conversations_started(DAY))
    spoiled = emulator.app.stats.snapshot()[f"faults.bad_body_{kind}"]
    assert spoiled > 0 and stats["bad_bodies"] == stats["retries"] == spoiled


@pytest.mark.parametrize("bad", [CUT_TOKEN, HTML_TOKEN], ids=["truncated", "html"])
def test_a_token_response_with_a_bad_200_body_is_retried(emulator: EmulatorServer, bad: EmulatorResponse) -> None:
    script_token_endpoint(emulator, [bad, bad])
    with client_for(emulator) as client:
        client.get_data_availability()
        stats = client.stats.snapshot()
    assert stats["token_requests"] == 3 and stats["retries"] == 2 and stats["requests"] == 1
    assert stats["bad_bodies"] == 0  # like the other failure counters, it describes /api/v2 traffic


@pytest.mark.parametrize(
    ("kind", "content_type", "excerpt"),
    [
        ("truncated", "application/json", '{"conversations":[{"conversationEnd":'),
        ("html", "text/html", "<!DOCTYPE html><html><head><title>"),
    ],
)
def test_a_details_page_that_stays_bad_fails_naming_path_status_type_page_and_body(
    start_emulator: Callable[..., EmulatorServer], kind: str, content_type: str, excerpt: str
) -> None:
    emulator = start_emulator(bad_body_rate=1.0, bad_body_kinds=kind)
    tokens = record_issued_tokens(emulator)
    with client_for(emulator, max_attempts=3) as client, pytest.raises(GenesysError) as raised:
        list(client.query_conversation_details(*day_bounds(DAY)))
    message = str(raised.value)
    assert "POST /api/v2/analytics/conversations/details/query" in message, message
    assert "HTTP 200" in message and content_type in message and "query page 1" in message, message
    assert excerpt in message and "3 attempts" in message, message
    assert len(message) < 600, message  # an excerpt, not the page
    assert client.stats.bad_bodies == 3 and client.stats.retries == 2
    assert_no_secrets([message, repr(raised.value)], tokens + [DEMO_CLIENT_SECRET])


def test_a_job_results_page_that_stays_bad_fails_naming_the_job_and_page(
    start_emulator: Callable[..., EmulatorServer],
) -> None:
    emulator = start_emulator()
    handle = emulator.app.handle

    def results_behind_a_proxy(request: Any) -> EmulatorResponse:
        response = handle(request)
        if request.path.endswith("/results") and response.status == 200:
            response.raw, response.headers["Content-Type"] = b"<html>Gateway</html>", HTML_TYPE
        return response

    emulator.app.handle = results_behind_a_proxy  # type: ignore[method-assign]
    with client_for(emulator, max_attempts=2) as client, pytest.raises(GenesysError) as raised:
        list(client.run_details_job(*day_bounds(PAST_DAY)))
    (job_id,) = emulator.app.jobs._jobs
    message = str(raised.value)
    assert f"job {job_id} results page 1" in message and "/results" in message, message
    assert "HTTP 200" in message and "text/html" in message, message
    assert "<html>Gateway</html>" in message, message


@pytest.mark.parametrize("bad", [CUT_TOKEN, HTML_TOKEN], ids=["truncated", "html"])
def test_a_token_response_that_stays_bad_fails_without_echoing_the_body(
    emulator: EmulatorServer, bad: EmulatorResponse
) -> None:
    script_token_endpoint(emulator, [bad] * 3)
    with client_for(emulator, max_attempts=3) as client, pytest.raises(GenesysError) as raised:
        client.get_data_availability()
    message = str(raised.value)
    assert "POST /oauth/token" in message and "HTTP 200" in message and "3 attempts" in message, message
    assert bad.headers["Content-Type"] in message, message
    # The login service's body holds the token: none of it is repeated.
    assert_no_secrets([message, repr(raised.value)], [DEMO_CLIENT_SECRET, "half-of-a-real-tok", "access_token", "Sign in"])


def test_a_4xx_surfaces_the_error_body_and_is_not_retried(emulator: EmulatorServer) -> None:
    start, end = day_bounds(DAY)
    with client_for(emulator) as client:
        with pytest.raises(GenesysApiError) as raised:
            list(client.query_conversation_details(start, end, order="sideways"))
        with pytest.raises(GenesysApiError) as missing:
            client.get_details_job_status("no-such-job")
    error = raised.value
    assert (error.status, error.code) == (400, "invalid.value") and "order must be one of" in error.message
    assert error.correlation_id and error.correlation_id in str(error) and error.message in str(error)
    assert error.body["contextId"] == error.correlation_id
    assert (missing.value.status, missing.value.code) == (404, "not.found")
    assert emulator.app.stats.snapshot()["requests.details_query"] == 1


def test_no_secret_or_token_in_logs_errors_or_metadata(
    start_emulator: Callable[..., EmulatorServer], caplog: pytest.LogCaptureFixture
) -> None:
    emulator = start_emulator(fault_rate=0.3)
    tokens = record_issued_tokens(emulator)
    caplog.set_level(logging.DEBUG)
    texts: list[str] = []
    with client_for(emulator, max_attempts=10, lookup_page_size=5) as client:
        users = list(client.iter_users())
        emulator.app.tokens.revoke_all()
        divisions = list(client.iter_divisions())
        with pytest.raises(GenesysApiError) as raised:
            client.get_details_job_status("no-such-job")
        texts += [str(raised.value), repr(raised.value), repr(client), str(client.stats.snapshot())]
    assert users and divisions and client.stats.retries > 0 and len(tokens) == 2
    assert_no_secrets(texts + [caplog.text], tokens + [DEMO_CLIENT_SECRET])


# ##### THROTTLE


def test_throttle_holds_back_once_the_window_is_full() -> None:
    throttle = RequestThrottle(3, window_seconds=0.3)
    for _ in range(3):
        assert throttle.acquire() < 0.1
        throttle.release()
    assert throttle.acquire() >= 0.25  # waited for the first slot to leave the window
    throttle.release()


def test_throttle_keeps_a_multithreaded_burst_clear_of_429s(
    start_emulator: Callable[..., EmulatorServer], monkeypatch: pytest.MonkeyPatch
) -> None:
    # A 2 s window (both sides) stands in for the 60 s one so the test stays short.
    monkeypatch.setattr(emulator_ratelimit, "WINDOW_SECONDS", 2.0)
    limit, requests = 8, 24

    def burst(emulator: EmulatorServer, throttle: RequestThrottle | None) -> GenesysClient:
        with resource_for(emulator).get_client(throttle=throttle) as client:
            threads = [
                threading.Thread(target=lambda: [client.get_data_availability() for _ in range(requests // 4)])
                for _ in range(4)
            ]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
        return client

    throttled = start_emulator(rate_limit_per_minute=limit)
    client = burst(throttled, RequestThrottle(limit, window_seconds=2.0))
    served = throttled.app.stats.snapshot()
    assert served.get("rate_limited", 0) == 0 and served["requests.availability"] == requests
    assert client.stats.throttle_waits > 0 and client.stats.rate_limited == 0

    # Control: without the throttle the same burst does hit the limit (and 429s are retried).
    unthrottled = start_emulator(rate_limit_per_minute=limit)
    client = burst(unthrottled, RequestThrottle(10_000))
    served = unthrottled.app.stats.snapshot()
    assert served["rate_limited"] > 0 and client.stats.rate_limited == served["rate_limited"]
    assert served["requests.availability"] == requests


# ##### LOOKUPS AND MULTI-GET


@pytest.mark.parametrize("omit_next_uri", [False, True], ids=["nextUri", "no-nextUri"])
def test_lookups_return_every_entity_including_deleted_users(
    start_emulator: Callable[..., EmulatorServer], omit_next_uri: bool
) -> None:
    # Without nextUri on pages before the last (an UNCONFIRMED possibility) only pageCount says there are more.
    emulator = start_emulator(lookup_omit_next_uri=omit_next_uri)
    centre = emulator.app.centre
    with client_for(emulator, lookup_page_size=7) as client:
        users = list(client.iter_users())
        active = list(client.iter_users(state="active"))
        listings = {
            "queues": list(client.iter_queues()),
            "wrapup_codes": list(client.iter_wrapup_codes()),
            "divisions": list(client.iter_divisions()),
        }
    assert sorted(u["id"] for u in users) == sorted(u["id"] for u in centre.users)
    assert any(u["state"] == "deleted" for u in users) and all(u["state"] == "active" for u in active)
    assert len(active) < len(users)
    for kind, entities in listings.items():
        expected = getattr(centre, kind)
        assert len(entities) == len({e["id"] for e in entities}) == len(expected) > 0, kind


def _scripted_listing(monkeypatch: pytest.MonkeyPatch, change: Callable[[dict[str, Any]], None]) -> None:
    """The emulator's listings, each page passed through `change` before it is sent."""
    original = emulator_lookup_endpoints.listing

    def listing(*args: Any, **kwargs: Any) -> dict[str, Any]:
        body = original(*args, **kwargs)
        change(body)
        return body

    monkeypatch.setattr(emulator_lookup_endpoints, "listing", listing)


def _without_page_count(body: dict[str, Any]) -> None:
    del body["pageCount"]


def _never_ending(body: dict[str, Any]) -> None:
    # Every page says there is one more, and has entities: paged by pageCount alone it never ends.
    body["pageCount"] = body["pageNumber"] + 1
    body["entities"] = body["entities"] or [{"id": f"again-{body['pageNumber']}", "name": "again"}]
    body.pop("nextUri", None)


@pytest.mark.parametrize(
    "change, message",
    [(_without_page_count, "no integer pageCount"), (_never_ending, "did not end: page 2 of the 2")],
    ids=["no-pageCount", "never-ends"],
)
def test_a_listing_without_page_count_or_that_never_ends_fails_naming_the_path(
    emulator: EmulatorServer, monkeypatch: pytest.MonkeyPatch, change: Callable[[dict[str, Any]], None], message: str
) -> None:
    _scripted_listing(monkeypatch, change)
    with client_for(emulator, lookup_page_size=10) as client, pytest.raises(GenesysError) as raised:
        list(client.iter_wrapup_codes())  # 20 codes: 2 pages of 10
    assert "GET /api/v2/routing/wrapupcodes" in str(raised.value) and message in str(raised.value)
    assert emulator.app.stats.snapshot().get("requests.list_wrapup_codes", 0) <= 2


def test_multi_get_by_id_in_chunks(emulator: EmulatorServer) -> None:
    ids = emulator.app.conversations_started(DAY)[:100]
    with client_for(emulator, multiget_chunk_size=40) as client:
        found = list(client.get_conversations(ids + ids[:5] + ["not-a-conversation"]))
    assert [c["conversationId"] for c in found] == ids
    assert emulator.app.stats.snapshot()["requests.multi_get"] == 3


# ##### DAGSTER


def test_the_client_logs_where_dagster_captures_it() -> None:
    # genesys/ names the logger instead of importing Dagster for it; it must stay the same one.
    assert genesys_responses.log is dg.get_dagster_logger("genesys")


def test_resource_in_an_asset_with_env_var_credentials(
    emulator: EmulatorServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TEST_GENESYS_CLIENT_ID", DEMO_CLIENT_ID)
    monkeypatch.setenv("TEST_GENESYS_CLIENT_SECRET", DEMO_CLIENT_SECRET)
    start, end = day_bounds(DAY)

    @dg.asset
    def conversation_count(genesys: GenesysResource) -> dg.MaterializeResult:
        with genesys.get_client() as client:
            count = sum(1 for _ in client.query_conversation_details(start, end))
        stats = {f"genesys_{name}": value for name, value in client.stats.snapshot().items()}
        return dg.MaterializeResult(metadata={"count": count, **stats})

    genesys = resource_for(
        emulator,
        client_id=dg.EnvVar("TEST_GENESYS_CLIENT_ID"),
        client_secret=dg.EnvVar("TEST_GENESYS_CLIENT_SECRET"),
    )
    result = dg.materialize([conversation_count], resources={"genesys": genesys})
    assert result.success
    metadata = result.asset_materializations_for_node("conversation_count")[0].metadata
    assert metadata["count"].value == len(emulator.app.conversations_started(DAY))
    assert metadata["genesys_requests"].value == metadata["count"].value // 100 + 1  # pages up to the first short one
    assert DEMO_CLIENT_SECRET not in str(metadata)


def test_a_detail_job_is_seen_done_soon_after_it_is_and_a_long_one_is_polled_sparingly(
    start_emulator: Callable[..., EmulatorServer],
) -> None:
    """The resource's defaults: the first poll half a second after submitting (the emulator's jobs are
    done in a fraction of a second, real ones in seconds to minutes), then after half the job's run time."""
    start, end = day_bounds(PAST_DAY)
    body = {"interval": format_interval(start, end)}
    fast = start_emulator(job_queued_seconds=0.05, job_pending_seconds=0.1)
    with genesys_for(fast, retries={}).get_client() as client:
        job_id = client.submit_details_job(body)
        began = time.monotonic()
        assert client.wait_for_details_job(job_id)["state"] == "FULFILLED"
        assert time.monotonic() - began < 1.0
    slow = start_emulator(job_queued_seconds=1.0, job_pending_seconds=3.0)  # done 4 s after submitting
    with genesys_for(slow, retries={}).get_client() as client:
        job_id = client.submit_details_job(body)
        began = time.monotonic()
        client.wait_for_details_job(job_id)
        waited = time.monotonic() - began
    # Polls at 0.5, 0.75, 1.1, 1.7, 2.5, 3.8 and 5.7 s: seen done at most half its run time late, in 7 polls.
    assert 4.0 <= waited <= 6.5 and slow.app.stats.snapshot()["requests.job_status"] <= 7
