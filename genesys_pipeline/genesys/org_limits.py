"""The org's limits (`GET /api/v2/organizations/limits/namespaces/{namespace}`): read for the record
and to say how many detail-job slots a submission may wait for.

Apart from the detail jobs because reading them is optional: a client that may not read them (403)
or an org without the namespace (404) carries on without them.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from genesys_pipeline.genesys.errors import GenesysApiError
from genesys_pipeline.genesys.responses import log
from genesys_pipeline.genesys.session import ClientSession

LIMITS_PATH = "/api/v2/organizations/limits/namespaces"
JOB_SLOTS_KEY = "details.jobs.concurrent.access.max"


@dataclasses.dataclass(frozen=True)
class OrgLimits:
    """The org's effective limits of one namespace, or why they could not be read."""

    namespace: str
    values: dict[str, Any]  # limit key -> value, e.g. {"details.jobs.concurrent.access.max": 5}
    unavailable: str | None = None  # e.g. "HTTP 403 not.authorized: ..."; None when read

    @property
    def job_slots(self) -> int | None:
        """Detail jobs the org may run at once, if the limits say."""
        value = self.values.get(JOB_SLOTS_KEY)
        return value if isinstance(value, int) else None


class OrgLimitCalls(ClientSession):
    """`get_analytics_limits`, and the limits it last read."""

    limits: OrgLimits | None = None  # the latest `get_analytics_limits()`

    def get_analytics_limits(self, namespace: str = "analytics") -> OrgLimits:
        """The org's effective limits (`GET /api/v2/organizations/limits/namespaces/{namespace}`),
        for the record and to say how many detail-job slots a submission waits for. Which namespace
        holds the detail-job keys is UNCONFIRMED, hence the parameter. A 403 (the OAuth client may
        not read limits) or 404 (no such namespace) comes back as `unavailable`, not raised: the
        limits inform, the extraction does not need them."""
        try:
            payload = self._json("GET", f"{LIMITS_PATH}/{namespace}")
        except GenesysApiError as error:
            if error.status not in (403, 404):
                raise
            reason = f"HTTP {error.status} {error.code or ''}: {error.message}".replace(" :", ":")
            if error.status == 403:
                reason += "; the OAuth client may lack the permission to read them"
            self.limits = OrgLimits(namespace, {}, unavailable=reason)
            log.info("Genesys %s limits of the org could not be read (%s); carrying on without them", namespace, reason)
            return self.limits
        entities = [e for e in payload.get("entities") or [] if isinstance(e, dict) and "key" in e]
        self.limits = OrgLimits(namespace, {str(e["key"]): e.get("value") for e in entities})
        self.job_slots.limit_to(self.limits.job_slots)
        log.info("Genesys %s limits of the org: %s", namespace, self.limits.values)
        return self.limits
