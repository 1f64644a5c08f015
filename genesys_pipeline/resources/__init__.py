"""Dagster resources of the pipeline."""

from .genesys import GENESYS_REGIONS, GenesysResource
from .genesys_client import DetailJobStream, DetailsQueryStream, GenesysClient
from .genesys_errors import (
    DetailJobError,
    GenesysApiError,
    GenesysAuthError,
    GenesysError,
    GenesysRetriesExhausted,
    GenesysTransportError,
    JobResultCapExceeded,
    QueryCapExceeded,
)
from .genesys_http import GenesysClientStats, RequestThrottle

__all__ = [
    "GENESYS_REGIONS",
    "DetailJobError",
    "DetailJobStream",
    "DetailsQueryStream",
    "GenesysApiError",
    "GenesysAuthError",
    "GenesysClient",
    "GenesysClientStats",
    "GenesysError",
    "GenesysResource",
    "GenesysRetriesExhausted",
    "GenesysTransportError",
    "JobResultCapExceeded",
    "QueryCapExceeded",
    "RequestThrottle",
]
