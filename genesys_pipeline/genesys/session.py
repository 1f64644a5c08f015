"""What every family of the client's calls shares: its settings, one transport (one keep-alive
connection pool, one token, one request budget), its stats and its detail-job slots.

`GenesysClient` (client.py) is this session with the calls of details_query.py, detail_jobs.py,
org_limits.py and lookups.py; each family sits in a module of its own so that one can be read
without the others.
"""

from __future__ import annotations

from typing import Any, Self

from genesys_pipeline.genesys.http import GenesysTransport
from genesys_pipeline.genesys.job_slots import JobSlotLimiter
from genesys_pipeline.genesys.responses import log
from genesys_pipeline.genesys.retries import GenesysClientStats
from genesys_pipeline.genesys.settings import ClientSettings
from genesys_pipeline.genesys.throttle import RequestThrottle


class ClientSession:
    """The state a client's calls share, and its lifetime: close it (or leave its `with` block) to
    close its connections and log its stats.

    The throttle holds the client to `settings.requests_per_minute` unless a shared `throttle` is
    given.
    """

    def __init__(self, settings: ClientSettings, *, throttle: RequestThrottle | None = None) -> None:
        self._settings = settings
        self.stats = GenesysClientStats()
        self._transport = GenesysTransport(
            settings, throttle or RequestThrottle(settings.requests_per_minute), self.stats
        )
        # Detail jobs of this client at once (all threads): the org's limit once read, at most the setting.
        self.job_slots = JobSlotLimiter(settings.detail_jobs_at_once)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(api_base_url={self._settings.api_base_url!r})"

    def close(self) -> None:
        log.info("Genesys client stats: %s", self.stats.snapshot())
        self._transport.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def _json(self, method: str, path: str, *, where: str | None = None, **kwargs: Any) -> dict[str, Any]:
        """The endpoint's JSON object; a 2xx that is not one is retried, then fails saying `where`."""
        return self._transport.request_json(method, path, where=where, **kwargs)
