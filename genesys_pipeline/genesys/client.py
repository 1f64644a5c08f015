"""The Genesys Cloud API calls the pipeline makes, on top of `GenesysTransport`.

In the pipeline, get a client from `GenesysResource.get_client()`; elsewhere, build one from
`ClientSettings` and use it as a context manager. All methods are safe to call from several
threads at once: they share one keep-alive connection pool, one token and one request budget.

The calls sit by family, each in a module of its own: details_query.py (the synchronous details
query and conversations by id), detail_jobs.py (the async detail job, from its slot to its
cancellation), org_limits.py (the org's limits), lookups.py (the id -> name listings); session.py
holds what they share. The records come back as the streams of streams.py.
"""

from __future__ import annotations

from genesys_pipeline.genesys.detail_jobs import DetailJobCalls
from genesys_pipeline.genesys.details_query import DetailsQueryCalls
from genesys_pipeline.genesys.lookups import LookupCalls


class GenesysClient(DetailsQueryCalls, DetailJobCalls, LookupCalls):
    """Genesys Cloud analytics and lookup calls. See `GenesysResource` for the settings.

    The throttle holds the client to `settings.requests_per_minute` unless a shared `throttle` is
    given. Close the client (or leave its `with` block) to close its connections and log its stats.
    """
