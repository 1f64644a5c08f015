"""Every knob of the emulator in one place.

Limits that `shared/reference/genesys-api.md` marks UNCONFIRMED are fields here, so that tests can set
them low and a user who learns the real value can set it without touching code.
"""

from __future__ import annotations

import dataclasses
from datetime import datetime, timezone

# Documented demo credentials: the emulator is a local stand-in, these guard nothing real.
DEMO_CLIENT_ID = "emulator-client-id"
DEMO_CLIENT_SECRET = "emulator-client-secret"


@dataclasses.dataclass
class EmulatorConfig:
    # --- network and identity ---
    host: str = "127.0.0.1"
    port: int = 0  # 0 = any free port
    client_id: str = DEMO_CLIENT_ID
    client_secret: str = DEMO_CLIENT_SECRET

    # --- the synthetic contact centre ---
    seed: int = 7
    daily_volume: int = 2000  # conversations starting on each UTC day
    site_timezone: str = "America/Chicago"  # local time of the diurnal volume curve
    # Shapes a real org has, on by default so that every test and the demo meet them (shapes.py); each
    # can be turned off, which leaves every other conversation as it was.
    campaign_calls: bool = True  # outbound campaign (dialer) calls; unanswered attempts wrapped up by the dialer
    agentless_calls: bool = True  # agentless campaign calls: no agent; the dialer's leg wraps up
    direct_user_calls: bool = True  # calls to a user (not a queue), who wraps up; some transferred by an agent
    digital_open_for_days: bool = True  # some email and message conversations stay open 2-20 days
    # A media type newer than SDK v269 on every session of one conversation in 20 (by id). Not a real
    # type, so off (""): an option for testing how a client copes with a type it does not know.
    newer_media_type: str = ""
    # One made-up field at record, participant, session and segment level and a made-up metric on
    # every conversation (probes.py). Not real behaviour, so off: for testing schema-drift detection.
    unknown_fields: bool = False

    # --- the clock ---
    # The emulator's "now". None = the real time at start-up. The clock then moves at `clock_rate`
    # emulated seconds per real second (0 freezes it, which makes responses byte-for-byte repeatable).
    now: datetime | None = None
    clock_rate: float = 1.0

    # --- platform limits ---
    rate_limit_per_minute: int = 300  # per token, sliding 60 s window
    token_lifetime_seconds: int = 86400  # UNCONFIRMED exact default (86399 vs 86400)
    max_request_bytes: int = 512_000

    # --- injected faults: share of API requests answered with a 429/503/504 or a connection reset ---
    fault_rate: float = 0.0
    fault_retry_after_seconds: int = 1
    # A 200 whose body is broken, as a proxy or gateway in front of the service may answer (not
    # documented Genesys behaviour, so off): the share of 200s of /api/v2 (`bad_body_rate`) and of
    # /oauth/token (`token_bad_body_rate`) whose JSON is cut short or replaced by an HTML page.
    bad_body_rate: float = 0.0
    token_bad_body_rate: float = 0.0
    bad_body_kinds: str = "truncated,html"  # comma-separated, drawn from: truncated, html

    # --- synchronous details query ---
    query_max_page_size: int = 100  # UNCONFIRMED (100 vs 200)
    query_pagination_cap: int = 100_000  # "Pagination may not exceed 100000 results."
    query_max_days_unfiltered: int = 7
    query_max_days_filtered: int = 31
    multiget_max_ids: int = 100  # UNCONFIRMED

    # --- async detail jobs ---
    job_result_cap: int = 400_000  # "Pagination may not exceed 400000 results"
    job_default_page_size: int = 1000  # UNCONFIRMED
    job_max_page_size: int = 1000  # UNCONFIRMED
    job_max_interval_days: int = 31  # UNCONFIRMED
    job_queued_seconds: float = 0.5  # real seconds in QUEUED, UNCONFIRMED
    job_pending_seconds: float = 1.0  # real seconds in PENDING before FULFILLED, UNCONFIRMED
    job_ttl_seconds: float = 3600.0  # results expire this long after completion, UNCONFIRMED
    max_concurrent_jobs: int = 5  # QUEUED+PENDING jobs per client; over it -> 429, UNCONFIRMED
    # Another integration holding every detail-job slot of the org: for this many real seconds after
    # the first job submission, every submission gets the concurrent-jobs 429. 0 = never.
    jobs_busy_seconds: float = 0.0
    # GET /api/v2/organizations/limits/... answers 403 (documented as needing no permission; an option)
    limits_forbidden: bool = False
    job_failure_rate: float = 0.0  # share of jobs that end FAILED
    data_availability_lag_seconds: float = 6 * 3600  # watermark = now - lag, UNCONFIRMED
    # Jobs leave out conversations not ended at the watermark. UNCONFIRMED either way; off because the
    # only public evidence (a jobs-only extractor that models a missing conversationEnd) says they are served.
    jobs_omit_open_at_watermark: bool = False

    # --- lookups ---
    lookup_max_page_size: int = 500  # UNCONFIRMED
    # Documented: nextUri is absent on the last page. Whether it can also be missing on earlier pages
    # is UNCONFIRMED; this leaves it out of every page, so only pageNumber/pageCount say where the end is.
    lookup_omit_next_uri: bool = False
    # Public integrations add the Default Wrap-up Code themselves because the listing lacks it; UNCONFIRMED
    # as a Genesys statement, and some orgs may list it. This lists it (and serves it by id).
    list_default_wrapup_code: bool = False

    # --- query behaviour ---
    # "Live drift": each query page is computed as if a few new records had been inserted before it,
    # so records shift across page boundaries and reappear (as the real API does on live data).
    live_drift: bool = False
    # The details query's totalHits is the exact count instead of the real API's estimate, which is a
    # few per cent off (`querying.approximate_total_hits`). For tests that assert on exact totals.
    exact_total_hits: bool = False

    # --- the emulator's own cost ---
    # Keep the JSON of the records served (render_cache.py), so a record served again is not rendered
    # again. The bytes served are the same either way; off only to measure or to compare.
    render_cache: bool = True

    def __post_init__(self) -> None:
        if self.now is not None and self.now.tzinfo is None:
            raise ValueError(f"EmulatorConfig.now must be timezone-aware, got {self.now!r}")
        if self.daily_volume < 0:
            raise ValueError(f"EmulatorConfig.daily_volume must be >= 0, got {self.daily_volume}")
        if not 0.0 <= self.fault_rate <= 1.0:
            raise ValueError(f"EmulatorConfig.fault_rate must be within [0, 1], got {self.fault_rate}")
        for name in ("bad_body_rate", "token_bad_body_rate"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"EmulatorConfig.{name} must be within [0, 1], got {getattr(self, name)}")
        unknown = set(self.bad_body_kinds.split(",")) - {"truncated", "html"}
        if unknown:
            raise ValueError(
                f"EmulatorConfig.bad_body_kinds takes truncated and/or html, got {self.bad_body_kinds!r}"
            )
        if not 0.0 <= self.job_failure_rate <= 1.0:
            raise ValueError(
                f"EmulatorConfig.job_failure_rate must be within [0, 1], got {self.job_failure_rate}"
            )
        if self.rate_limit_per_minute < 1:
            raise ValueError(
                f"EmulatorConfig.rate_limit_per_minute must be >= 1, got {self.rate_limit_per_minute}"
            )
        if self.newer_media_type and not self.newer_media_type.isidentifier():
            raise ValueError(
                f"EmulatorConfig.newer_media_type must be a single word such as 'hologram', got {self.newer_media_type!r}"
            )
        if self.clock_rate < 0:
            raise ValueError(f"EmulatorConfig.clock_rate must be >= 0, got {self.clock_rate}")

    def start_time(self) -> datetime:
        return self.now if self.now is not None else datetime.now(timezone.utc)
