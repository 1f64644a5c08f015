"""The lookup endpoints (queues, wrap-up codes, users, divisions, flow outcomes: a listing each and
one entity by id) and the org's limits.

Apart from the conversation endpoints because these serve the contact centre's directory, not its
conversations; the listings' envelope and filters are built in lookups.py.
"""

from __future__ import annotations

import re
from typing import Any

from .config import EmulatorConfig
from .errors import ApiError, not_found
from .lookups import filter_entities, listing, lookup_entities
from .messages import Handler, Request
from .synthetic import ContactCentre


class LookupEndpoints:
    """The handlers of the lookups and the org's limits; each takes the request and its route's
    match."""

    def __init__(self, config: EmulatorConfig, centre: ContactCentre) -> None:
        self.config = config
        self.centre = centre

    def lookup(self, kind: str) -> Handler:
        def lookup_listing(request: Request, _: re.Match[str]) -> dict[str, Any]:
            entities = lookup_entities(self.centre, kind, self.config.list_default_wrapup_code)
            entities = filter_entities(kind, entities, request.params)
            return listing(request.path, entities, request.params, self.config.lookup_max_page_size,
                           omit_next_uri=self.config.lookup_omit_next_uri)

        lookup_listing.__name__ = f"list_{kind}"
        return lookup_listing

    def lookup_one(self, kind: str) -> Handler:
        def lookup_entity(_: Request, match: re.Match[str]) -> dict[str, Any]:
            for entity in lookup_entities(self.centre, kind, self.config.list_default_wrapup_code):
                if entity["id"] == match["id"]:
                    return entity
            raise not_found()

        lookup_entity.__name__ = f"get_{kind}"
        return lookup_entity

    def org_limits(self, _: Request, match: re.Match[str]) -> dict[str, Any]:
        """The org's effective limits of a namespace (`LimitsEntityListing`, genesys-api-more.md s5):
        this emulator's own configured limits under the key names public code uses. Only `analytics`
        is served; the real keys' namespaces are UNCONFIRMED. Documented as needing no permission."""
        if self.config.limits_forbidden:
            raise ApiError(403, "not.authorized", "You are not authorized to perform the requested action.")
        if match["namespace"] != "analytics":
            raise not_found()
        values = {
            "details.jobs.concurrent.access.max": self.config.max_concurrent_jobs,
            "client.credentials.token.rate.per.minute": self.config.rate_limit_per_minute,
            "token.rate.per.minute": self.config.rate_limit_per_minute,
            "request.bytes.max": self.config.max_request_bytes,
        }
        return {"entities": [{"key": key, "namespace": "analytics", "value": value} for key, value in values.items()]}
