"""`ClientSettings`: everything a `GenesysClient` needs to know, as frozen plain values.

The client takes these rather than the Dagster resource so that `genesys/` stays plain Python:
`GenesysResource` validates its config and builds them in `get_client()`; a script or test may
build them directly. No defaults here on purpose: the resource's fields are the one place that
says what the defaults are.
"""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True, kw_only=True)
class ClientSettings:
    api_base_url: str  # where /api/v2/... is served, without a trailing slash
    login_base_url: str  # where /oauth/token is served, without a trailing slash
    client_id: str
    # repr=False: the settings end up in reprs, logs and tracebacks; the secret must not.
    client_secret: str = dataclasses.field(repr=False)
    connect_timeout_seconds: float
    read_timeout_seconds: float
    query_page_size: int
    job_page_size: int
    lookup_page_size: int
    multiget_chunk_size: int
    query_result_cap: int
    job_result_cap: int
    max_attempts: int  # per request, first try included
    backoff_base_seconds: float
    backoff_cap_seconds: float
    requests_per_minute: int  # the throttle's budget when no shared throttle is given
    job_poll_interval_seconds: float
    job_poll_max_interval_seconds: float
    job_timeout_seconds: float
    job_slot_wait_seconds: float  # how long a job submission waits for a free detail-job slot
    detail_jobs_at_once: int  # detail jobs the client runs at once (fewer if the org's limits say so)
