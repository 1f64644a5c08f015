"""OAuth on the login path, bearer checks, the per-token rate limit and injected faults, over HTTP."""

from __future__ import annotations

import time

import httpx
import pytest

from genesys_pipeline.local.emulator import DEMO_CLIENT_ID, DEMO_CLIENT_SECRET
from genesys_pipeline_tests.emulator.conftest import DETAILS, ApiSession, basic

TOKEN_FORM = {"grant_type": "client_credentials"}


def test_token_with_basic_auth_and_form_body(emulator):
    response = httpx.post(
        f"{emulator.base_url}/oauth/token",
        headers={"Authorization": basic(DEMO_CLIENT_ID, DEMO_CLIENT_SECRET)},
        data=TOKEN_FORM,
    )
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"access_token", "token_type", "expires_in"}
    assert body["expires_in"] == 86400 and body["token_type"].lower() == "bearer"


def test_token_accepts_grant_type_as_query_parameter(emulator):
    response = httpx.post(
        f"{emulator.base_url}/oauth/token?grant_type=client_credentials",
        headers={"Authorization": basic(DEMO_CLIENT_ID, DEMO_CLIENT_SECRET)},
    )
    assert response.status_code == 200 and response.json()["access_token"]


@pytest.mark.parametrize(
    ("client_id", "secret", "description"),
    [(DEMO_CLIENT_ID, "wrong", "authentication failed"), ("nobody", DEMO_CLIENT_SECRET, "client not found")],
)
def test_bad_client_credentials_get_oauth_style_errors(emulator, client_id, secret, description):
    response = httpx.post(
        f"{emulator.base_url}/oauth/token", headers={"Authorization": basic(client_id, secret)}, data=TOKEN_FORM
    )
    assert response.status_code == 401
    assert response.json() == {"error": "invalid_client", "description": description, "error_description": description}


def test_missing_and_unsupported_grant_types(emulator):
    headers = {"Authorization": basic(DEMO_CLIENT_ID, DEMO_CLIENT_SECRET)}
    missing = httpx.post(f"{emulator.base_url}/oauth/token", headers=headers, data={})
    assert missing.status_code == 400 and missing.json()["error"] == "invalid_request"
    other = httpx.post(f"{emulator.base_url}/oauth/token", headers=headers, data={"grant_type": "password"})
    assert other.status_code == 400 and other.json()["error"] == "unsupported_grant_type"


def test_api_requires_a_valid_bearer_token(emulator):
    url = f"{emulator.base_url}/api/v2/routing/queues"
    missing = httpx.get(url)
    assert missing.status_code == 401
    body = missing.json()
    assert body["code"] == "authentication.required" and body["status"] == 401
    assert body["contextId"] == missing.headers["ININ-Correlation-Id"]
    forged = httpx.get(url, headers={"Authorization": "Bearer not-a-token"})
    assert forged.status_code == 401 and forged.json()["code"] == "bad.credentials"


def test_expired_token_is_rejected(start_emulator):
    emulator = start_emulator(token_lifetime_seconds=1)
    session = ApiSession(emulator)
    assert session.get("/api/v2/routing/queues").status_code == 200
    time.sleep(1.2)
    expired = session.get("/api/v2/routing/queues")
    assert expired.status_code == 401 and expired.json()["code"] == "bad.credentials"
    session.token = session.fetch_token()
    assert session.get("/api/v2/routing/queues").status_code == 200


def test_revoked_tokens_get_401(api):
    assert api.get("/api/v2/users").status_code == 200
    api.emulator.app.tokens.revoke_all()
    assert api.get("/api/v2/users").status_code == 401


def test_rate_limit_headers_on_every_api_response(api):
    first = api.get("/api/v2/routing/queues")
    second = api.get("/api/v2/routing/wrapupcodes")
    assert first.headers["inin-ratelimit-allowed"] == "300"
    assert int(second.headers["inin-ratelimit-count"]) == int(first.headers["inin-ratelimit-count"]) + 1
    assert 1 <= int(second.headers["inin-ratelimit-reset"]) <= 60
    assert second.headers["ININ-Correlation-Id"]


def test_429_with_retry_after_under_load(start_emulator):
    emulator = start_emulator(rate_limit_per_minute=20)
    session = ApiSession(emulator)
    statuses = [session.get("/api/v2/authorization/divisions") for _ in range(25)]
    limited = [r for r in statuses if r.status_code == 429]
    assert [r.status_code for r in statuses[:20]] == [200] * 20
    assert len(limited) == 5
    for response in limited:
        retry_after = int(response.headers["Retry-After"])
        assert 1 <= retry_after <= 60
        body = response.json()
        assert body["code"] == "too.many.requests.retry.after" and body["status"] == 429
        assert body["message"] == f"Rate limit exceeded the maximum. Retry the request in [{retry_after}] seconds"
        assert body["details"] == [] and body["errors"] == []
    # The window is per token: a fresh token has its own budget.
    other = ApiSession(emulator)
    assert other.get("/api/v2/authorization/divisions").status_code == 200
    assert emulator.app.stats.snapshot()["rate_limited"] == 5


def test_injected_faults_cover_every_kind(start_emulator):
    emulator = start_emulator(fault_rate=1.0, fault_retry_after_seconds=3)
    session = ApiSession(emulator)
    seen: dict[str, int] = {}
    for _ in range(40):
        try:
            response = session.get("/api/v2/routing/queues")
            kind = str(response.status_code)
            if response.status_code == 429:
                assert response.headers["Retry-After"] == "3"
            assert response.json()["status"] == response.status_code
        except httpx.TransportError:
            kind = "reset"
            session.http = httpx.Client(base_url=emulator.base_url, timeout=30)
        seen[kind] = seen.get(kind, 0) + 1
    assert set(seen) == {"429", "503", "504", "reset"}
    stats = emulator.app.stats.snapshot()
    assert sum(stats.get(f"faults.{kind}", 0) for kind in ("429", "503", "504", "reset")) == 40


def test_fault_rate_is_a_share_of_requests(start_emulator):
    emulator = start_emulator(fault_rate=0.3)
    session = ApiSession(emulator)
    failures = 0
    for _ in range(200):
        try:
            failures += session.get("/api/v2/authorization/divisions").status_code != 200
        except httpx.TransportError:
            failures += 1
            session.http = httpx.Client(base_url=emulator.base_url, timeout=30)
    assert 30 <= failures <= 90  # 60 expected; a seeded draw, so this is stable


def test_bad_bodies_are_200s_cut_short_or_html_pages_on_the_api_and_the_login_path(start_emulator):
    """What a proxy in front of the service may send (an option, off by default): a 200 whose JSON
    stops halfway, or a 200 HTML page. Drawn from the seed, so the same run sees the same ones."""
    emulator = start_emulator(bad_body_rate=1.0, token_bad_body_rate=0.5)
    http = httpx.Client(base_url=emulator.base_url, timeout=30)
    token_bodies = [
        http.post("/oauth/token", headers={"Authorization": basic(DEMO_CLIENT_ID, DEMO_CLIENT_SECRET)}, data=TOKEN_FORM)
        for _ in range(20)
    ]
    assert all(response.status_code == 200 for response in token_bodies)
    good = [r.json()["access_token"] for r in token_bodies if r.headers["Content-Type"].startswith("application/json")
            and r.content.endswith(b"}")]  # fmt: skip
    assert 3 <= len(good) <= 17 and good
    kinds: set[str] = set()
    for _ in range(20):
        response = http.get("/api/v2/routing/queues", headers={"Authorization": f"Bearer {good[0]}"})
        assert response.status_code == 200
        with pytest.raises(ValueError):
            response.json()
        kinds.add("html" if response.headers["Content-Type"].startswith("text/html") else "truncated")
    assert kinds == {"html", "truncated"}
    stats = emulator.app.stats.snapshot()
    assert stats["faults.bad_body_html"] + stats["faults.bad_body_truncated"] == 20 + 20 - len(good)


def test_bad_bodies_are_off_by_default_and_the_kinds_can_be_chosen(start_emulator):
    assert ApiSession(start_emulator()).get("/api/v2/routing/queues").json()["entities"]
    session = ApiSession(start_emulator(bad_body_rate=1.0, bad_body_kinds="html"))
    assert all(session.get("/api/v2/routing/queues").text.startswith("<!DOCTYPE html>") for _ in range(5))
    with pytest.raises(ValueError, match="bad_body_kinds"):
        start_emulator(bad_body_kinds="garbage")


def test_unknown_path_and_wrong_method_are_error_bodies(api):
    missing = api.get("/api/v2/nothing/here")
    assert missing.status_code == 404 and missing.json()["code"] == "not.found"
    wrong = api.http.put(f"{DETAILS}/query", headers=api._auth(), json={})
    assert wrong.status_code == 405 and wrong.json()["status"] == 405


def test_non_json_body_is_415_and_bad_json_is_400(api):
    headers = {**api._auth(), "Content-Type": "text/plain"}
    assert api.http.post(f"{DETAILS}/query", headers=headers, content=b"interval=x").status_code == 415
    headers["Content-Type"] = "application/json"
    bad = api.http.post(f"{DETAILS}/query", headers=headers, content=b"{not json")
    assert bad.status_code == 400 and bad.json()["code"] == "bad.request"
