"""The Genesys Cloud API client: the calls, the HTTP layer (token, retries, throttle, stats) and the errors."""

from genesys_pipeline.genesys.client import DetailJobStream, DetailsQueryStream, GenesysClient
from genesys_pipeline.genesys.errors import (
    DetailJobError,
    GenesysApiError,
    GenesysAuthError,
    GenesysError,
    GenesysRetriesExhausted,
    GenesysTransportError,
    JobResultCapExceeded,
    QueryCapExceeded,
)
from genesys_pipeline.genesys.http import GenesysClientStats, RequestThrottle

__all__ = [
    "DetailJobError",
    "DetailJobStream",
    "DetailsQueryStream",
    "GenesysApiError",
    "GenesysAuthError",
    "GenesysClient",
    "GenesysClientStats",
    "GenesysError",
    "GenesysRetriesExhausted",
    "GenesysTransportError",
    "JobResultCapExceeded",
    "QueryCapExceeded",
    "RequestThrottle",
]
