"""The official Genesys Python SDK (v269), pointed at the emulator, deserializes every endpoint's
responses with no field lost and no enum turned into `outdated_sdk_version`.

Each endpoint is called twice: once through the SDK (proving its HTTP, auth and model layers accept
our responses) and once raw, whose JSON `sdk_lost_fields` round-trips through the SDK's models.
"""

from __future__ import annotations

import time
from datetime import timedelta

import PureCloudPlatformClientV2 as sdk  # noqa: E402  (after sdk_fidelity, which isolates $HOME)
import pytest
from PureCloudPlatformClientV2.rest import ApiException  # noqa: E402

from genesys_pipeline.local.emulator import DEMO_CLIENT_ID, DEMO_CLIENT_SECRET
from genesys_pipeline_tests.conftest import CLOCK, PAST_DAY
from genesys_pipeline_tests.emulator.conftest import DETAILS, ApiSession, day_interval
from genesys_pipeline_tests.sdk_fidelity import sdk_lost_fields


@pytest.fixture(scope="module")
def client(module_emulator):
    sdk.configuration.host = module_emulator.base_url  # before ApiClient(): it copies the host
    return sdk.api_client.ApiClient().get_client_credentials_token(DEMO_CLIENT_ID, DEMO_CLIENT_SECRET)


@pytest.fixture(scope="module")
def raw(module_emulator):
    return ApiSession(module_emulator)


def test_details_query_pages(client, raw):
    analytics = sdk.AnalyticsApi(client)
    # A closed day (three full pages) and the current day, whose first page holds ongoing records.
    for interval, pages in ((day_interval(PAST_DAY), (1, 2, 3)), (day_interval(CLOCK.date()), (1,))):
        for page_number in pages:
            query = sdk.ConversationQuery()
            query.interval = interval
            query.paging = sdk.PagingSpec()
            query.paging.page_size, query.paging.page_number = 100, page_number
            model = analytics.post_analytics_conversations_details_query(query)
            body = {"interval": interval, "paging": {"pageSize": 100, "pageNumber": page_number}}
            payload = raw.post(f"{DETAILS}/query", body).json()
            assert [c.conversation_id for c in model.conversations] == [c["conversationId"] for c in payload["conversations"]]
            assert sdk_lost_fields(payload, "AnalyticsConversationQueryResponse") == []
    past_end = raw.post(f"{DETAILS}/query", {"interval": day_interval(PAST_DAY), "paging": {"pageSize": 100, "pageNumber": 9}}).json()
    assert sdk_lost_fields(past_end, "AnalyticsConversationQueryResponse") == []


def test_a_settled_day_with_every_later_report_survives_the_sdk(client, raw):
    """Two weeks back every restatement has happened: finished evaluations, surveys, first-contact
    resolutions (a week after the end), flows with outcomes, voice legs' media stats. A few records
    with each, read through the SDK (its models are slow to read: not the whole day)."""
    records = raw.query_all(day_interval(CLOCK.date() - timedelta(days=14)))

    def has_flow_outcomes(record):
        return any(s.get("flow", {}).get("outcomes") for p in record["participants"] for s in p["sessions"])

    kinds = {"evaluations": lambda r: "evaluations" in r, "surveys": lambda r: "surveys" in r,
             "resolutions": lambda r: "resolutions" in r, "flow outcomes": has_flow_outcomes}  # fmt: skip
    ids = list(dict.fromkeys(r["conversationId"] for has in kinds.values() for r in [r for r in records if has(r)][:3]))
    payload = raw.get(DETAILS, id=",".join(ids)).json()
    assert sdk_lost_fields(payload, "AnalyticsConversationWithoutAttributesMultiGetResponse") == []
    found = set()
    for conversation in sdk.AnalyticsApi(client).get_analytics_conversations_details(id=ids).conversations:
        found |= {key for key in ("evaluations", "surveys", "resolutions") if getattr(conversation, key)}
        if conversation.resolutions:
            assert conversation.resolutions[0].n_next_contact_avoided == 1
        if conversation.evaluations:
            assert conversation.evaluations[0].evaluation_status == "Finished"
        for participant in conversation.participants:
            for session in participant.sessions:
                if session.flow is not None and session.flow.outcomes:
                    found.add("flow outcomes")
                    assert session.flow.outcomes[0].flow_outcome_value in ("SUCCESS", "FAILURE")
                if session.media_endpoint_stats:
                    found.add("media stats")
                    assert session.media_endpoint_stats[0].discarded_packets is not None
    assert found == {*kinds, "media stats"}


def test_single_and_multi_get(client, raw):
    analytics = sdk.AnalyticsApi(client)
    ids = raw.emulator.app.conversations_started(PAST_DAY)[:3]
    single = analytics.get_analytics_conversation_details(ids[0])
    assert single.conversation_id == ids[0]
    assert sdk_lost_fields(raw.get(f"/api/v2/analytics/conversations/{ids[0]}/details").json(),
                           "AnalyticsConversationWithoutAttributes") == []
    multi = analytics.get_analytics_conversations_details(id=ids)
    assert [c.conversation_id for c in multi.conversations] == ids
    assert sdk_lost_fields(raw.get(DETAILS, id=",".join(ids)).json(),
                           "AnalyticsConversationWithoutAttributesMultiGetResponse") == []


def test_jobs_lifecycle(client, raw):
    analytics = sdk.AnalyticsApi(client)
    body = sdk.AsyncConversationQuery()
    body.interval = day_interval(PAST_DAY)
    submitted = analytics.post_analytics_conversations_details_jobs(body)
    assert submitted.job_id
    for _ in range(200):
        status = analytics.get_analytics_conversations_details_job(submitted.job_id)
        if status.state == "FULFILLED":
            break
        time.sleep(0.02)
    assert status.state == "FULFILLED" and status.completion_date is not None
    assert sdk_lost_fields(raw.get(f"{DETAILS}/jobs/{submitted.job_id}").json(), "AsyncQueryStatus") == []
    cursor, seen = None, 0
    while True:
        kwargs = {"page_size": 100, **({"cursor": cursor} if cursor else {})}
        page = analytics.get_analytics_conversations_details_job_results(submitted.job_id, **kwargs)
        payload = raw.get(f"{DETAILS}/jobs/{submitted.job_id}/results", pageSize=100, **({"cursor": cursor} if cursor else {})).json()
        assert sdk_lost_fields(payload, "AnalyticsConversationAsyncQueryResponse") == []
        assert page.data_availability_date is not None
        seen += len(page.conversations)
        cursor = page.cursor
        if not cursor:
            break
    assert seen >= 300
    availability = analytics.get_analytics_conversations_details_jobs_availability()
    assert availability.data_availability_date is not None
    assert sdk_lost_fields(raw.get(f"{DETAILS}/jobs/availability").json(), "DataAvailabilityResponse") == []
    analytics.delete_analytics_conversations_details_job(submitted.job_id)
    assert analytics.get_analytics_conversations_details_job(submitted.job_id).state == "CANCELLED"


@pytest.mark.parametrize(
    ("api_class", "method", "path", "model", "extra"),
    [
        ("RoutingApi", "get_routing_queues", "/api/v2/routing/queues", "QueueEntityListing", {}),
        ("RoutingApi", "get_routing_wrapupcodes", "/api/v2/routing/wrapupcodes", "WrapupCodeEntityListing", {}),
        ("UsersApi", "get_users", "/api/v2/users", "UserEntityListing", {"state": "any"}),
        ("AuthorizationApi", "get_authorization_divisions", "/api/v2/authorization/divisions", "AuthzDivisionEntityListing", {}),
        ("ArchitectApi", "get_flows_outcomes", "/api/v2/flows/outcomes", "FlowOutcomeListing", {}),
    ],
)
def test_lookup_listings(client, raw, api_class, method, path, model, extra):
    listing = getattr(getattr(sdk, api_class)(client), method)(page_size=100, **extra)
    payload = raw.get(path, pageSize=100, **extra).json()
    assert [e.id for e in listing.entities] == [e["id"] for e in payload["entities"]]
    assert listing.total == payload["total"] and listing.page_count == payload["pageCount"]
    assert sdk_lost_fields(payload, model) == []
    entity_model = model.removesuffix("EntityListing").removesuffix("Listing")
    for entity in payload["entities"][:5]:
        single = raw.get(f"{path}/{entity['id']}").json()
        assert sdk_lost_fields(single, entity_model) == []


def test_error_bodies(raw):
    for response in (
        raw.get("/api/v2/routing/queues/00000000-0000-4000-8000-000000000000"),
        raw.post(f"{DETAILS}/query", {"interval": "nonsense"}),
        raw.http.get("/api/v2/users"),
    ):
        assert response.status_code >= 400
        assert sdk_lost_fields(response.json(), "ErrorBody") == []


def test_sdk_raises_api_exception_on_error_status(client):
    with pytest.raises(ApiException) as raised:
        sdk.RoutingApi(client).get_routing_queue("00000000-0000-4000-8000-000000000000")
    assert raised.value.status == 404
