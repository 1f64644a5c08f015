"""The synthetic centre as served over HTTP: repeatable bytes, ongoing -> completed, restatement."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from datetime import timedelta

import httpx

from genesys_pipeline.local.emulator.clock import iso_ms
from genesys_pipeline_tests.conftest import CLOCK, PAST_DAY
from genesys_pipeline_tests.emulator.conftest import DETAILS, ApiSession, day_interval


def _query_bytes(session: ApiSession) -> bytes:
    body = {"interval": day_interval(PAST_DAY), "paging": {"pageSize": 100, "pageNumber": 2}}
    return session.post(f"{DETAILS}/query", body).content


def test_same_seed_and_clock_give_the_same_bytes(start_emulator):
    first, second = ApiSession(start_emulator()), ApiSession(start_emulator())
    assert _query_bytes(first) == _query_bytes(second)
    other_seed = ApiSession(start_emulator(seed=8))
    assert _query_bytes(other_seed) != _query_bytes(first)


def test_ongoing_conversation_completes_when_the_clock_moves(api):
    interval = day_interval(CLOCK.date())
    ongoing = [c for c in api.query_all(interval) if "conversationEnd" not in c]
    assert ongoing
    target = ongoing[0]
    open_segments = [s for p in target["participants"] for ss in p["sessions"] for s in ss["segments"] if "segmentEnd" not in s]
    assert open_segments
    plan = api.emulator.app.centre.find_plan(target["conversationId"])
    moved = httpx.post(f"{api.emulator.base_url}/emulator/clock", json={"now": iso_ms(plan.end_ms + 1000)})
    assert moved.status_code == 200
    done = api.get(f"/api/v2/analytics/conversations/{target['conversationId']}/details").json()
    assert done["conversationEnd"] == iso_ms(plan.end_ms)
    assert all("segmentEnd" in s for p in done["participants"] for ss in p["sessions"] for s in ss["segments"])
    names_before = {m["name"] for p in target["participants"] for ss in p["sessions"] for m in ss.get("metrics", [])}
    names_after = {m["name"] for p in done["participants"] for ss in p["sessions"] for m in ss.get("metrics", [])}
    assert names_after > names_before


def test_past_day_is_restated_later(api):
    """Records of a past day change for days after the fact (late wrap-up, evaluation, survey)."""
    centre = api.emulator.app.centre
    plans = [p for p in centre.day_plans(PAST_DAY) if p.last_change_ms > p.end_ms]
    assert plans
    plan = plans[0]
    path = f"/api/v2/analytics/conversations/{plan.conversation_id}/details"
    httpx.post(f"{api.emulator.base_url}/emulator/clock", json={"now": iso_ms(plan.end_ms + 1)})
    before = api.get(path).json()
    httpx.post(f"{api.emulator.base_url}/emulator/clock", json={"now": iso_ms(plan.last_change_ms + 1)})
    after = api.get(path).json()
    assert before["conversationEnd"] == after["conversationEnd"]
    assert before != after


def test_truth_endpoint_matches_what_the_query_serves(api):
    interval = day_interval(PAST_DAY)
    truth = httpx.get(f"{api.emulator.base_url}/emulator/truth/conversations", params={"interval": interval}).json()
    assert truth["count"] == 300
    assert truth["conversationIds"] == [c["conversationId"] for c in api.query_all(interval)]


def test_command_line_starts_serves_and_stops(tmp_path):
    command = [sys.executable, "-m", "genesys_pipeline.local.emulator", "--port", "0", "--seed", "7",
               "--daily-volume", "50", "--now", "2024-05-10T12:00:00Z", "--clock-rate", "0", "--exact-total-hits"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        banner = process.stdout.readline()
        base_url = banner.split(" on ")[1].split(" ")[0]
        token = httpx.post(f"{base_url}/oauth/token", auth=("emulator-client-id", "emulator-client-secret"),
                           data={"grant_type": "client_credentials"}).json()["access_token"]
        body = {"interval": day_interval(PAST_DAY)}
        response = httpx.post(f"{base_url}{DETAILS}/query", json=body, headers={"Authorization": f"Bearer {token}"})
        assert response.json()["totalHits"] == 50
        assert "emulator-client-secret" not in banner
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=10) == 0


def test_command_line_rejects_bad_values():
    result = subprocess.run([sys.executable, "-m", "genesys_pipeline.local.emulator", "--fault-rate", "2"],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and "fault_rate" in result.stderr
    result = subprocess.run([sys.executable, "-m", "genesys_pipeline.local.emulator", "--now", "tomorrow"],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and "--now" in result.stderr


def test_watermark_moves_with_the_clock(api):
    before = api.get(f"{DETAILS}/jobs/availability").json()["dataAvailabilityDate"]
    api.emulator.app.clock.advance(3600)
    after = api.get(f"{DETAILS}/jobs/availability").json()["dataAvailabilityDate"]
    assert after == iso_ms(int((CLOCK + timedelta(hours=-5)).timestamp() * 1000)) and after > before
