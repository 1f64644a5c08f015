"""Lookup listings over HTTP: the page-number envelope, filters, users' state, 404s."""

from __future__ import annotations


def test_listing_envelope_and_paging(api):
    first = api.get("/api/v2/routing/queues", pageSize=5).json()
    total = first["total"]
    assert total >= 10 and first["pageNumber"] == 1 and first["pageSize"] == 5
    assert first["pageCount"] == -(-total // 5)
    assert first["firstUri"] == "/api/v2/routing/queues?pageSize=5&pageNumber=1"
    assert first["nextUri"] == "/api/v2/routing/queues?pageSize=5&pageNumber=2"
    assert "previousUri" not in first
    entities, uri = [], "/api/v2/routing/queues?pageSize=5&pageNumber=1"
    while uri:  # follow nextUri as a client does
        page = api.http.get(uri, headers=api._auth()).json()
        entities.extend(page["entities"])
        uri = page.get("nextUri")
    assert len(entities) == total == len({e["id"] for e in entities})
    assert page["pageNumber"] == page["pageCount"] and page["previousUri"]
    past = api.get("/api/v2/routing/queues", pageSize=5, pageNumber=page["pageCount"] + 1).json()
    assert past["entities"] == [] and "nextUri" not in past


def test_next_uri_can_be_left_out_of_every_page_while_page_count_says_where_the_end_is(start_emulator):
    from genesys_pipeline_tests.emulator.conftest import ApiSession

    session = ApiSession(start_emulator(lookup_omit_next_uri=True))
    first = session.get("/api/v2/routing/queues", pageSize=5).json()
    assert first["pageCount"] > 1 and "nextUri" not in first
    entities = []
    for number in range(1, first["pageCount"] + 1):  # page by pageCount, as the envelope's contract says
        page = session.get("/api/v2/routing/queues", pageSize=5, pageNumber=number).json()
        assert "nextUri" not in page and page["pageCount"] == first["pageCount"] and page["lastUri"]
        entities.extend(page["entities"])
    assert len(entities) == first["total"] == len({e["id"] for e in entities})
    session.http.close()


DEFAULT_WRAPUP_CODE = "7fb334b0-0e9e-11e4-9191-0800200c9a66"


def test_the_default_wrapup_code_is_left_out_of_the_listing_unless_configured(api, start_emulator):
    from genesys_pipeline_tests.emulator.conftest import ApiSession

    codes = api.get("/api/v2/routing/wrapupcodes", pageSize=100).json()["entities"]
    assert codes and DEFAULT_WRAPUP_CODE not in {c["id"] for c in codes}
    assert api.get(f"/api/v2/routing/wrapupcodes/{DEFAULT_WRAPUP_CODE}").status_code == 404
    listed = ApiSession(start_emulator(list_default_wrapup_code=True))
    page = listed.get("/api/v2/routing/wrapupcodes", pageSize=100).json()
    (default,) = [c for c in page["entities"] if c["id"] == DEFAULT_WRAPUP_CODE]
    assert default["name"] == "Default Wrap-up Code" and page["total"] == len(codes) + 1
    assert [c["name"] for c in page["entities"]] == sorted(c["name"] for c in page["entities"])
    assert listed.get(f"/api/v2/routing/wrapupcodes/{DEFAULT_WRAPUP_CODE}").json() == default
    listed.http.close()


def test_users_default_to_active_and_state_any_includes_deleted(api):
    active = api.get("/api/v2/users", pageSize=500).json()["entities"]
    everyone = api.get("/api/v2/users", pageSize=500, state="any").json()["entities"]
    deleted = api.get("/api/v2/users", pageSize=500, state="deleted").json()["entities"]
    assert {u["state"] for u in active} == {"active"}
    assert deleted and {u["state"] for u in deleted} == {"deleted"}
    assert len(everyone) > len(active) + len(deleted) - 1
    assert {u["state"] for u in everyone} >= {"active", "inactive", "deleted"}


def test_id_filter_accepts_comma_joined_and_repeated_values(api):
    codes = api.get("/api/v2/routing/wrapupcodes", pageSize=100).json()["entities"]
    wanted = [codes[0]["id"], codes[2]["id"]]
    joined = api.get("/api/v2/routing/wrapupcodes", id=",".join(wanted)).json()["entities"]
    repeated = api.http.get("/api/v2/routing/wrapupcodes", params=[("id", wanted[0]), ("id", wanted[1])],
                            headers=api._auth()).json()["entities"]
    assert {e["id"] for e in joined} == {e["id"] for e in repeated} == set(wanted)


def test_get_by_id_and_404(api):
    division = api.get("/api/v2/authorization/divisions").json()["entities"][0]
    assert api.get(f"/api/v2/authorization/divisions/{division['id']}").json() == division
    missing = api.get("/api/v2/routing/queues/00000000-0000-4000-8000-000000000000")
    assert missing.status_code == 404 and missing.json()["code"] == "not.found"


def test_page_size_over_the_maximum_is_rejected(start_emulator):
    from genesys_pipeline_tests.emulator.conftest import ApiSession

    session = ApiSession(start_emulator(lookup_max_page_size=50))
    response = session.get("/api/v2/users", pageSize=51)
    assert response.status_code == 400 and "pageSize" in response.json()["message"]


def test_null_fields_are_omitted_everywhere(api):
    for path in ("/api/v2/routing/queues", "/api/v2/routing/wrapupcodes", "/api/v2/users", "/api/v2/authorization/divisions"):
        assert "null" not in api.get(path, pageSize=100, state="any").text.replace('"null', "")
