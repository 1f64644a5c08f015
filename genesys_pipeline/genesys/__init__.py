"""The Genesys Cloud API client: the calls, its settings, the HTTP layer (token, retries, stats), the
throttle and the errors. Plain Python, no Dagster: `resources/genesys.py` wraps it as a Dagster
resource."""

from genesys_pipeline.genesys.client import GenesysClient
from genesys_pipeline.genesys.errors import (
    DetailJobError,
    GenesysApiError,
    GenesysAuthError,
    GenesysBadResponse,
    GenesysError,
    GenesysRetriesExhausted,
    GenesysTransportError,
    JobResultCapExceeded,
    QueryCapExceeded,
)
from genesys_pipeline.genesys.retries import GenesysClientStats
from genesys_pipeline.genesys.settings import ClientSettings
from genesys_pipeline.genesys.throttle import RequestThrottle

__all__ = [
    "ClientSettings",
    "DetailJobError",
    "DetailJobStream",
    "DetailsQueryStream",
    "GenesysApiError",
    "GenesysAuthError",
    "GenesysBadResponse",
    "GenesysClient",
    "GenesysClientStats",
    "GenesysError",
    "GenesysRetriesExhausted",
    "GenesysTransportError",
    "JobResultCapExceeded",
    "QueryCapExceeded",
    "RequestThrottle",
]
