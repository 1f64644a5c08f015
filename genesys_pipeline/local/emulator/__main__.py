"""`python -m genesys_pipeline.local.emulator --host 127.0.0.1 --port 8765 --seed 7 --daily-volume 2000`

Every field of `EmulatorConfig` is an option (`--field-name`), so each UNCONFIRMED limit can be set
from the command line. Stops cleanly on Ctrl-C or SIGTERM.
"""

from __future__ import annotations

import argparse
import dataclasses
import signal
import sys
from datetime import datetime
from typing import Any

from .clock import parse_iso
from .config import EmulatorConfig
from .server import EmulatorServer

HELP = {
    "host": "interface to listen on",
    "port": "port to listen on (0 = any free port)",
    "client_id": "OAuth client id the login path accepts (a documented demo default)",
    "client_secret": "OAuth client secret the login path accepts (a documented demo default)",
    "seed": "seed of the synthetic contact centre: same seed and clock give the same bytes",
    "daily_volume": "conversations starting on each UTC day",
    "site_timezone": "time zone of the contact centre's diurnal volume curve",
    "campaign_calls": "outbound campaign (dialer) calls, 5%% of a day; --no-campaign-calls leaves them out",
    "agentless_calls": "agentless campaign calls, 2%% of a day; --no-agentless-calls leaves them out",
    "direct_user_calls": "calls to a user rather than a queue, 3%% of a day; --no-direct-user-calls leaves them out",
    "digital_open_for_days": "one email or message conversation in 25 stays open 2-20 days; "
    "--no-digital-open-for-days leaves them out",
    "newer_media_type": "a media type newer than the SDK's (e.g. hologram) on one conversation in 20 (default: none)",
    "unknown_fields": "add a made-up field at record, participant, session and segment level and a made-up "
    "metric (tEmulatorProbe) to every conversation, to test schema-drift detection",
    "now": "the emulator's clock at start-up, ISO-8601 with zone (default: the real time)",
    "clock_rate": "emulated seconds per real second (0 freezes the clock)",
    "rate_limit_per_minute": "requests per token in a sliding 60 s window before a 429",
    "token_lifetime_seconds": "expires_in of issued tokens",
    "max_request_bytes": "largest accepted request body (413 above it)",
    "fault_rate": "share of API requests answered with an injected 429/503/504/connection reset",
    "fault_retry_after_seconds": "Retry-After of injected 429s",
    "bad_body_rate": "share of /api/v2 200s whose body is cut-short JSON or an HTML page (a proxy's doing)",
    "token_bad_body_rate": "share of /oauth/token 200s whose body is cut-short JSON or an HTML page",
    "bad_body_kinds": "the bad bodies drawn from, comma-separated: truncated, html",
    "query_max_page_size": "largest paging.pageSize of the details query (UNCONFIRMED)",
    "query_pagination_cap": "pageSize*pageNumber above this is a 400 (100000 on the real API)",
    "query_max_days_unfiltered": "longest details-query interval without filters",
    "query_max_days_filtered": "longest details-query interval with filters",
    "multiget_max_ids": "most ids one multi-get accepts (UNCONFIRMED)",
    "job_result_cap": "most results one job can page through (400000 on the real API)",
    "job_default_page_size": "job results pageSize when none is given (UNCONFIRMED)",
    "job_max_page_size": "largest job results pageSize (UNCONFIRMED)",
    "job_max_interval_days": "longest job interval (UNCONFIRMED)",
    "job_queued_seconds": "real seconds a job stays QUEUED (UNCONFIRMED)",
    "job_pending_seconds": "real seconds a job stays PENDING before FULFILLED (UNCONFIRMED)",
    "job_ttl_seconds": "real seconds job results stay available after completion (UNCONFIRMED)",
    "max_concurrent_jobs": "QUEUED+PENDING jobs allowed at once; more is a 429 (UNCONFIRMED)",
    "job_failure_rate": "share of jobs that end FAILED",
    "data_availability_lag_seconds": "how far dataAvailabilityDate lags the clock (UNCONFIRMED)",
    "jobs_busy_seconds": "another integration holds every detail-job slot for this many seconds after the first "
    "submission (concurrent-jobs 429)",
    "limits_forbidden": "GET /api/v2/organizations/limits/... answers 403 (documented as needing no permission)",
    "jobs_omit_open_at_watermark": "detail jobs leave out conversations not ended at the watermark (UNCONFIRMED)",
    "lookup_max_page_size": "largest pageSize of the lookup listings (UNCONFIRMED)",
    "lookup_omit_next_uri": "leave nextUri out of every lookup page, not only the last (UNCONFIRMED)",
    "list_default_wrapup_code": "list the Default Wrap-up Code among the wrap-up codes (left out by default)",
    "live_drift": "shift query pages as live data does, serving some records twice",
    "exact_total_hits": "details-query totalHits is the exact count, not the real API's estimate (a few %% off)",
    "render_cache": "keep the JSON of records served, so one served again is not rendered again (same bytes); "
    "--no-render-cache renders every time",
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m genesys_pipeline.local.emulator",
        description="Genesys Cloud API emulator over a deterministic synthetic contact centre.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    defaults = EmulatorConfig()
    for field in dataclasses.fields(EmulatorConfig):
        flag = "--" + field.name.replace("_", "-")
        default = getattr(defaults, field.name)
        if field.name == "now":
            parser.add_argument(flag, type=_instant, default=None, help=HELP[field.name])
        elif default is True:  # a shape a real org has, on by default: --no-<name> turns it off
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, default=True, help=HELP[field.name])
        elif isinstance(default, bool):
            parser.add_argument(flag, action="store_true", help=HELP[field.name])
        else:
            parser.add_argument(flag, type=type(default), default=default, help=HELP[field.name])
    parser.set_defaults(port=8765)
    return parser


def _instant(text: str) -> datetime:
    try:
        return parse_iso(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(f"--now: {error} (example: 2024-05-01T12:00:00Z)")


def _interrupt(*_: object) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    values: dict[str, Any] = vars(args)
    try:
        config = EmulatorConfig(**values)
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    server = EmulatorServer(config)
    signal.signal(signal.SIGTERM, _interrupt)
    print(
        f"Genesys Cloud emulator on {server.base_url} (login: {server.base_url}/oauth/token, "
        f"API: {server.base_url}/api/v2), seed {config.seed}, {config.daily_volume} conversations/day, "
        f"clock {server.app.clock.now().isoformat()}, client id {config.client_id!r}",
        flush=True,
    )
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
