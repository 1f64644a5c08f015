"""The async detail jobs API over HTTP: lifecycle, cursors, watermark, interval semantics, caps."""

from __future__ import annotations

import time
from datetime import datetime, timedelta, timezone

from genesys_pipeline_tests.conftest import CLOCK, PAST_DAY
from genesys_pipeline_tests.emulator.conftest import (
    DETAILS,
    ApiSession,
    day_interval,
    wait_for_state,
)

JOBS = f"{DETAILS}/jobs"


def test_lifecycle_queued_pending_fulfilled(start_emulator):
    session = ApiSession(start_emulator(job_queued_seconds=0.3, job_pending_seconds=0.3))
    submitted = session.post(JOBS, {"interval": day_interval(PAST_DAY)})
    assert submitted.status_code == 202 and set(submitted.json()) == {"jobId"}
    job_id = submitted.json()["jobId"]
    first = session.get(f"{JOBS}/{job_id}").json()
    assert first["state"] == "QUEUED" and "submissionDate" in first and "completionDate" not in first
    early = session.get(f"{JOBS}/{job_id}/results")
    assert early.status_code == 400 and "QUEUED" in early.json()["message"]
    wait_for_state(session, job_id, "PENDING")
    done = wait_for_state(session, job_id, "FULFILLED")
    assert done["completionDate"] >= done["submissionDate"] and done["expirationDate"] > done["completionDate"]


def test_cursor_paging_with_watermark_on_every_page(api):
    conversations, pages = api.run_job({"interval": day_interval(PAST_DAY), "startOfDayIntervalMatching": True}, page_size=70)
    assert len(pages) == 5  # 300 results in pages of 70
    assert all("cursor" in page for page in pages[:-1]) and "cursor" not in pages[-1]
    watermark = (CLOCK - timedelta(hours=6)).strftime("%Y-%m-%dT%H:%M:%S.000Z")
    assert all(page["dataAvailabilityDate"] == watermark for page in pages)
    assert api.get(f"{JOBS}/availability").json() == {"dataAvailabilityDate": watermark}
    assert len({c["conversationId"] for c in conversations}) == len(conversations) == 300


def test_job_and_sync_query_agree_for_a_seeded_day(api):
    """startOfDayIntervalMatching gives the query's day semantics: the same set of ids."""
    interval = day_interval(PAST_DAY)
    from_query = {c["conversationId"] for c in api.query_all(interval)}
    from_job, _ = api.run_job({"interval": interval, "startOfDayIntervalMatching": True})
    assert {c["conversationId"] for c in from_job} == from_query
    assert len(from_query) == 300


def test_default_matching_is_lifetime_overlap(api):
    centre = api.emulator.app.centre
    earlier = centre.day_plans(PAST_DAY - timedelta(days=2)) + centre.day_plans(PAST_DAY - timedelta(days=1))
    # ... and the email and message conversations open for days, started up to 21 days before
    earlier += [p for n in range(3, 22) for p in centre.long_lived_plans(PAST_DAY - timedelta(days=n))]
    day_start_ms = int(_midnight(PAST_DAY).timestamp() * 1000)
    crossing = {p.conversation_id for p in earlier if p.end_ms > day_start_ms}
    assert crossing
    overlap, _ = api.run_job({"interval": day_interval(PAST_DAY)})
    ids = {c["conversationId"] for c in overlap}
    assert crossing <= ids
    assert set(api.emulator.app.conversations_started(PAST_DAY)) <= ids
    assert len(ids) == 300 + len(crossing)


def test_results_carry_participant_attributes_and_query_does_not(api):
    interval = day_interval(PAST_DAY)
    from_job, _ = api.run_job({"interval": interval, "startOfDayIntervalMatching": True})
    assert any("attributes" in p for c in from_job for p in c["participants"])
    assert not any("attributes" in p for c in api.query_all(interval) for p in c["participants"])


def test_job_sees_data_only_up_to_the_watermark(api):
    today = CLOCK.date()
    from_job, _ = api.run_job({"interval": day_interval(today), "startOfDayIntervalMatching": True})
    watermark = (CLOCK - timedelta(hours=6)).strftime("%Y-%m-%dT%H:%M:%S.000Z")
    assert from_job and all(c["conversationStart"] <= watermark for c in from_job)
    live = api.query_all(day_interval(today))
    assert len(live) > len(from_job)


def test_result_cap(start_emulator):
    session = ApiSession(start_emulator(job_result_cap=250))
    job_id = session.post(JOBS, {"interval": day_interval(PAST_DAY), "startOfDayIntervalMatching": True}).json()["jobId"]
    wait_for_state(session, job_id, "FULFILLED")
    first = session.get(f"{JOBS}/{job_id}/results", pageSize=200).json()
    capped = session.get(f"{JOBS}/{job_id}/results", pageSize=200, cursor=first["cursor"])
    assert capped.status_code == 400
    assert capped.json()["message"] == "Pagination may not exceed 250 results"


def test_delete_cancels(api):
    job_id = api.post(JOBS, {"interval": day_interval(PAST_DAY)}).json()["jobId"]
    deleted = api.delete(f"{JOBS}/{job_id}")
    assert deleted.status_code == 204 and deleted.content == b""
    assert api.get(f"{JOBS}/{job_id}").json()["state"] == "CANCELLED"
    assert api.get(f"{JOBS}/{job_id}/results").status_code == 400


def test_concurrent_job_limit_is_429(start_emulator):
    session = ApiSession(start_emulator(max_concurrent_jobs=2, job_queued_seconds=5))
    body = {"interval": day_interval(PAST_DAY)}
    assert [session.post(JOBS, body).status_code for _ in range(2)] == [202, 202]
    third = session.post(JOBS, body)
    assert third.status_code == 429 and int(third.headers["Retry-After"]) >= 1
    assert third.json()["status"] == 429


def test_failed_and_expired_jobs(start_emulator):
    failing = ApiSession(start_emulator(job_failure_rate=1.0))
    job_id = failing.post(JOBS, {"interval": day_interval(PAST_DAY)}).json()["jobId"]
    status = wait_for_state(failing, job_id, "FAILED")
    assert status["errorMessage"]
    expiring = ApiSession(start_emulator(job_ttl_seconds=0.2))
    job_id = expiring.post(JOBS, {"interval": day_interval(PAST_DAY)}).json()["jobId"]
    wait_for_state(expiring, job_id, "FULFILLED")
    time.sleep(0.3)
    assert expiring.get(f"{JOBS}/{job_id}").json()["state"] == "EXPIRED"
    assert expiring.get(f"{JOBS}/{job_id}/results").status_code == 400


def test_bad_job_requests(api):
    assert api.post(JOBS, {"interval": day_interval(PAST_DAY, days=32)}).status_code == 400
    assert api.post(JOBS, {"interval": day_interval(PAST_DAY), "paging": {"pageSize": 1, "pageNumber": 1}}).status_code == 400
    assert api.get(f"{JOBS}/no-such-job").status_code == 404
    job_id = api.post(JOBS, {"interval": day_interval(PAST_DAY)}).json()["jobId"]
    wait_for_state(api, job_id, "FULFILLED")
    assert api.get(f"{JOBS}/{job_id}/results", cursor="garbage").status_code == 400
    assert api.get(f"{JOBS}/{job_id}/results", pageSize=1001).status_code == 400


def _midnight(day):
    return datetime(day.year, day.month, day.day, tzinfo=timezone.utc)


def test_open_conversations_at_the_watermark_are_served_or_omitted_by_option(start_emulator):
    """UNCONFIRMED on the real API: by default a job serves a conversation still open at the
    watermark as it stood then; `jobs_omit_open_at_watermark` leaves it out with no error or flag."""
    today = CLOCK.date()
    body = {"interval": day_interval(today), "startOfDayIntervalMatching": True}
    served, _ = ApiSession(start_emulator()).run_job(body)
    open_ids = {c["conversationId"] for c in served if "conversationEnd" not in c}
    assert open_ids, "at the 06:00 watermark some conversations of the day are still open"
    omitting, pages = ApiSession(start_emulator(jobs_omit_open_at_watermark=True)).run_job(body)
    assert {c["conversationId"] for c in omitting} == {c["conversationId"] for c in served} - open_ids
    assert all("conversationEnd" in c for c in omitting) and "cursor" not in pages[-1]


def test_slots_held_by_another_integration_answer_the_concurrent_jobs_429_for_a_while(start_emulator):
    """`jobs_busy_seconds`: the org's slots are taken by jobs we cannot see, so every submission gets
    the very 429 of our own jobs filling the slots, until the other integration's jobs end."""
    full = ApiSession(start_emulator(max_concurrent_jobs=1, job_queued_seconds=5))
    body = {"interval": day_interval(PAST_DAY)}
    assert full.post(JOBS, body).status_code == 202
    own = full.post(JOBS, body)
    busy = ApiSession(start_emulator(max_concurrent_jobs=1, jobs_busy_seconds=1.0))
    started = time.monotonic()
    refused = busy.post(JOBS, body)
    assert refused.status_code == own.status_code == 429
    assert refused.headers["Retry-After"] == own.headers["Retry-After"] == "1"
    assert {k: v for k, v in refused.json().items() if k != "contextId"} == {
        k: v for k, v in own.json().items() if k != "contextId"}
    assert busy.post(JOBS, body).status_code == 429  # still busy, and no job of ours holds a slot
    time.sleep(max(0.0, 1.05 - (time.monotonic() - started)))
    assert busy.post(JOBS, body).status_code == 202


def test_limits_of_the_analytics_namespace_are_the_emulators_own(start_emulator):
    session = ApiSession(start_emulator(max_concurrent_jobs=3, rate_limit_per_minute=120))
    limits = session.get("/api/v2/organizations/limits/namespaces/analytics")
    assert limits.status_code == 200 and set(limits.json()) == {"entities"}
    entities = limits.json()["entities"]
    assert all(set(e) == {"key", "namespace", "value"} and e["namespace"] == "analytics" for e in entities)
    values = {e["key"]: e["value"] for e in entities}
    assert values["details.jobs.concurrent.access.max"] == 3
    assert values["client.credentials.token.rate.per.minute"] == values["token.rate.per.minute"] == 120
    assert values["request.bytes.max"] == 512_000
    assert session.get("/api/v2/organizations/limits/namespaces/no.such.namespace").status_code == 404
    forbidden = ApiSession(start_emulator(limits_forbidden=True)).get("/api/v2/organizations/limits/namespaces/analytics")
    assert forbidden.status_code == 403
    assert forbidden.json()["code"] == "not.authorized" and forbidden.json()["status"] == 403
