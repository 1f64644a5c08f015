"""`GenesysResource`: the Genesys Cloud API client as a Dagster resource.

Configuration is validated when the resource is built (definitions load, and again when Dagster
resolves `EnvVar`s at run start), so a typo in a region or URL fails before any run does. The HTTP
client is created per use by `get_client()`, from the frozen `ClientSettings` the config turns
into: Dagster resources are immutable pydantic models and are copied between processes, while an
httpx connection pool, a cached token and a throttle are live state that belongs to one unit of
work.

    genesys = GenesysResource(
        region="mypurecloud.de",
        client_id=dg.EnvVar("GENESYS_CLIENT_ID"),
        client_secret=dg.EnvVar("GENESYS_CLIENT_SECRET"),
    )

    @dg.asset
    def conversations(genesys: GenesysResource) -> dg.MaterializeResult:
        with genesys.get_client() as client:
            for conversation in client.query_conversation_details(start, end):
                ...
        return dg.MaterializeResult(metadata=client.stats.snapshot())
"""

from __future__ import annotations

import contextlib
import dataclasses
from typing import Any, Iterator, Optional
from urllib.parse import urlsplit

import dagster as dg
from pydantic import ConfigDict, Field, model_validator

from genesys_pipeline.genesys import regions
from genesys_pipeline.genesys.client import GenesysClient
from genesys_pipeline.genesys.regions import GENESYS_REGIONS
from genesys_pipeline.genesys.settings import ClientSettings
from genesys_pipeline.genesys.throttle import RequestThrottle
from genesys_pipeline.resources.personal_data import PersonalDataProtection


class GenesysResource(dg.ConfigurableResource):
    """Genesys Cloud API access for the extraction and the lookups: an OAuth client-credentials client
    (its id and secret), the org's region (or, for a proxy or private endpoint, both base URLs),
    retries with backoff on 429s and server errors, and the request budget the client keeps to (300 a
    minute by default, the limit of one OAuth client).
    """

    # For code: `get_client()` gives a `GenesysClient`.

    # Validation errors must not echo input values: they would include the client secret.
    model_config = ConfigDict(hide_input_in_errors=True)

    region: Optional[str] = Field(
        default=None,
        description=(
            "Genesys Cloud region as its domain, e.g. 'mypurecloud.com', 'usw2.pure.cloud', "
            "'mypurecloud.de' (the SDK key such as 'eu_central_1' is accepted too). The API and "
            "login hosts are api.DOMAIN and login.DOMAIN. Leave unset when giving base URLs."
        ),
    )
    api_base_url: Optional[str] = Field(
        default=None,
        description="Explicit API base URL (e.g. an emulator 'http://127.0.0.1:8765'); needs login_base_url.",
    )
    login_base_url: Optional[str] = Field(
        default=None,
        description="Explicit login base URL serving /oauth/token; needs api_base_url.",
    )
    client_id: str = Field(description="OAuth client-credentials client id (use dg.EnvVar).")
    client_secret: str = Field(
        description="OAuth client secret (use dg.EnvVar). Never logged or shown.", repr=False
    )
    connect_timeout_seconds: float = Field(default=10.0, gt=0, description="TCP/TLS connect timeout.")
    read_timeout_seconds: float = Field(
        default=60.0, gt=0, description="Read timeout per response; details queries can be slow."
    )
    query_page_size: int = Field(
        default=100,
        ge=1,
        le=200,
        description="paging.pageSize of the details query. 100 is the documented safe maximum.",
    )
    job_page_size: int = Field(default=1000, ge=1, le=1000, description="pageSize of detail job results.")
    lookup_page_size: int = Field(
        default=100, ge=1, le=500, description="pageSize of queue/wrap-up/user/division listings."
    )
    multiget_chunk_size: int = Field(
        default=100, ge=1, le=500, description="Conversation ids per multi-get request."
    )
    query_result_cap: int = Field(
        default=100_000,
        ge=1,
        description="Results a details query may page through ('Pagination may not exceed 100000 results').",
    )
    job_result_cap: int = Field(
        default=400_000, ge=1, description="Results a detail job may page through (400,000)."
    )
    max_attempts: int = Field(
        default=6,
        ge=1,
        le=50,
        description="Attempts per request (first try included) on 429, 502/503/504 and transport errors.",
    )
    backoff_base_seconds: float = Field(
        default=1.0, ge=0, description="Exponential backoff base: attempt n waits up to base * 2**(n-1)."
    )
    backoff_cap_seconds: float = Field(default=60.0, ge=0, description="Upper bound of one backoff wait.")
    requests_per_minute: int = Field(
        default=300,
        ge=1,
        description="Client-side request budget (the platform allows 300/min per token by default).",
    )
    job_poll_interval_seconds: float = Field(
        default=0.5,
        gt=0,
        description=(
            "First wait before polling a detail job; then each wait is half the time the job has run so "
            "far, so a job is seen done soon after it is, whether it takes a second or an hour."
        ),
    )
    job_poll_max_interval_seconds: float = Field(
        default=30.0, gt=0, description="Longest wait between two polls of a detail job."
    )
    job_timeout_seconds: float = Field(
        default=3600.0, gt=0, description="Give up (and cancel) a detail job not FULFILLED by then."
    )
    detail_jobs_at_once: int = Field(
        default=4,
        ge=1,
        le=50,
        description=(
            "Detail jobs the extraction runs at once (the days of a range and the pieces of a large day "
            "share them). Fewer when the org's limits allow fewer (details.jobs.concurrent.access.max)."
        ),
    )
    job_slot_wait_seconds: float = Field(
        default=900.0,
        ge=0,
        description=(
            "How long a detail-job submission waits while every detail-job slot of the org is taken "
            "(429), e.g. by another integration's jobs, before the run fails. Waits honour "
            "Retry-After and do not count against max_attempts; 0 fails at the first such 429."
        ),
    )
    # Here rather than a resource of its own: it applies to all that is read from Genesys, and every
    # asset that reads from Genesys already takes this resource.
    personal_data: Optional[PersonalDataProtection] = Field(
        default=None,
        description="What to keep, hash or drop of the personal data read (docs/privacy.md); unset keeps all.",
    )

    @model_validator(mode="before")
    @classmethod
    def _validate_endpoints(cls, data: Any) -> Any:
        # mode="before" sees the raw values, so fields given as dg.EnvVar (not resolved until a
        # run starts) can be told apart and skipped here; Dagster rebuilds the resource with the
        # resolved values at run start, and this validator then checks them too.
        if not isinstance(data, dict):
            return data
        data = dict(data)
        given = {name: _given(data.get(name)) for name in ("region", "api_base_url", "login_base_url")}
        if given["region"] and (given["api_base_url"] or given["login_base_url"]):
            raise ValueError(
                "region: give either region or api_base_url + login_base_url, not both"
            )
        if not given["region"]:
            if not given["api_base_url"] and not given["login_base_url"]:
                raise ValueError(
                    "region: set region (e.g. 'mypurecloud.com') or both api_base_url and login_base_url"
                )
            for name, other in (("api_base_url", "login_base_url"), ("login_base_url", "api_base_url")):
                if not given[name]:
                    raise ValueError(f"{name}: required together with {other}")
        for name in ("region", "api_base_url", "login_base_url"):
            value = data.get(name)
            if not given[name] or isinstance(value, dg.EnvVar):
                continue
            data[name] = _normalise_region(value) if name == "region" else _normalise_url(name, value)
        for name in ("client_id", "client_secret"):
            value = data.get(name)
            if isinstance(value, str) and not isinstance(value, dg.EnvVar) and not value.strip():
                raise ValueError(f"{name}: must not be empty")
        return data

    @property
    def resolved_api_base_url(self) -> str:
        """Where `/api/v2/...` is served."""
        return self.api_base_url or regions.api_base_url(self.region or "")

    @property
    def resolved_login_base_url(self) -> str:
        """Where `/oauth/token` is served."""
        return self.login_base_url or regions.login_base_url(self.region or "")

    def client_settings(self) -> ClientSettings:
        """This config as the client's frozen settings."""
        # Besides the two URLs, every setting is a field of the same name here.
        copied = {
            field.name: getattr(self, field.name)
            for field in dataclasses.fields(ClientSettings)
            if field.name not in ("api_base_url", "login_base_url")
        }
        return ClientSettings(
            api_base_url=self.resolved_api_base_url,
            login_base_url=self.resolved_login_base_url,
            **copied,
        )

    @contextlib.contextmanager
    def get_client(self, *, throttle: RequestThrottle | None = None) -> Iterator[GenesysClient]:
        """A `GenesysClient` on one keep-alive httpx connection pool, closed on exit.

        The client's throttle holds it to `requests_per_minute` across all threads using it.
        Pass one `RequestThrottle` to several `get_client()` calls to share one budget.
        """
        with GenesysClient(self.client_settings(), throttle=throttle) as client:
            yield client


def _given(value: Any) -> bool:
    return value is not None and not (isinstance(value, str) and not value.strip())


def _normalise_region(value: str) -> str:
    domain = regions.region_domain(value)
    if domain is None:
        raise ValueError(
            f"region: unknown Genesys Cloud region {value!r}; valid regions: "
            + ", ".join(GENESYS_REGIONS)
        )
    return domain


def _normalise_url(name: str, value: str) -> str:
    parts = urlsplit(value.strip())
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(f"{name}: must be an http(s) URL such as 'https://api.mypurecloud.com', got {value!r}")
    if parts.query or parts.fragment:
        raise ValueError(f"{name}: must not have a query string or fragment, got {value!r}")
    return value.strip().rstrip("/")
