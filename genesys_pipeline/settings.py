"""Every setting the code location reads from its environment, parsed once and validated.

An invalid value fails when the definitions load, with an error that names the variable, the value and
what is allowed. Secrets and the values a production run must have (the Genesys OAuth client, the
Snowflake account, the bucket, the working location) are not read here: `defs/resources.py` hands them
to the resources as `dg.EnvVar`s, which Dagster resolves when a run starts and never shows.

    GENESYS_PIPELINE_ENV             local (default: the emulator and the stand-ins) or production
    GENESYS_PARTITION_START_DATE     first partition, YYYY-MM-DD (default 2024-01-01)
    GENESYS_PARTITION_TIMEZONE       IANA zone of the partition days and of the schedules (default UTC)
    GENESYS_SCHEDULE_HOUR            hour of the daily schedules, 0-23, in that zone (default 6)
    GENESYS_LOOKBACK_DAYS            days before yesterday that each daily tick reloads (default 3):
                                     Genesys restates conversations (late wrap-up codes, evaluations,
                                     surveys, long emails ending) for about three days after the fact
    GENESYS_BACKFILL_DAYS_PER_RUN    days per run of a backfill (default 7: a year is about 52 runs)
    GENESYS_API_COUNT_TOLERANCE_PERCENT
                                     how far (per cent of the conversations extracted, default 5) the
                                     API's own count of a day may lie from them before the
                                     api_count_close_to_extracted check warns: the details query's
                                     totalHits is documented as approximate
    GENESYS_TABLES                   the flattened tables written, published and loaded, comma-separated
                                     (default all; conversations always): a table left out is never
                                     written, published or touched in Snowflake
    GENESYS_STEP_RETRIES             retries of a failed step (default 2 in production, 0 in the local
                                     environment: the emulator and stand-ins have no outages to ride out,
                                     and a failure there should show at once)
    GENESYS_PII_PHONE_NUMBERS, GENESYS_PII_EMAIL_ADDRESSES, GENESYS_PII_CUSTOMER_NAMES,
    GENESYS_PII_EMPLOYEE_EMAILS, GENESYS_PII_FREE_TEXT
                                     keep (default), hash or drop each class of personal data
                                     (docs/privacy.md); hashing needs the secret GENESYS_PII_HASH_KEY,
                                     whose presence alone is checked here
    GENESYS_S3_PREFIX, GENESYS_S3_FILE_FORMAT, GENESYS_S3_SSE, GENESYS_S3_KMS_KEY_ID,
    GENESYS_SNOWFLAKE_STAGE, AWS_REGION, SNOWFLAKE_ROLE, SNOWFLAKE_WAREHOUSE
                                     optional knobs of the production resources (docs/configuration.md)

Only in the local environment (`make demo` and `make dev` set them; each has a default):
    GENESYS_API_BASE_URL, GENESYS_WORKING_DIR, GENESYS_S3_ENDPOINT_URL, GENESYS_S3_BUCKET,
    GENESYS_S3_FILE_FORMAT, GENESYS_SNOWFLAKE_CONNECTION_ARGS (JSON)
"""

from __future__ import annotations

import dataclasses
import json
import os
from datetime import date
from typing import Any, Mapping, Optional
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from genesys_pipeline.contracts.personal_data import (
    CLASSES,
    HASH,
    HASH_KEY_VARIABLE,
    MODES,
    PersonalDataPolicy,
)
from genesys_pipeline.contracts.tables import CONVERSATIONS, TABLES

ENVIRONMENTS = ("local", "production")


class SettingsError(ValueError):
    """An environment variable holds a value the pipeline cannot use; the message names it."""


def _text(environ: Mapping[str, str], name: str, default: str) -> str:
    # An empty variable counts as unset: `FOO=` in a .env file means "no value".
    return (environ.get(name) or "").strip() or default


def _optional(environ: Mapping[str, str], name: str) -> Optional[str]:
    return (environ.get(name) or "").strip() or None


def _whole_number(environ: Mapping[str, str], name: str, default: int, minimum: int, maximum: int) -> int:
    text = _text(environ, name, str(default))
    try:
        value = int(text)
    except ValueError:
        raise SettingsError(f"{name} must be a whole number between {minimum} and {maximum}, got {text!r}") from None
    if not minimum <= value <= maximum:
        raise SettingsError(f"{name} must be between {minimum} and {maximum}, got {value}")
    return value


def _percent(environ: Mapping[str, str], name: str, default: float) -> float:
    text = _text(environ, name, str(default))
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not 0 <= value <= 100:  # also false for nan
        raise SettingsError(f"{name} must be a number of per cent between 0 and 100, got {text!r}")
    return value


def _one_of(environ: Mapping[str, str], name: str, default: str, allowed: tuple[str, ...]) -> str:
    value = _text(environ, name, default)
    if value not in allowed:
        raise SettingsError(f"{name} must be one of {', '.join(allowed)}, got {value!r}")
    return value


def _time_zone(environ: Mapping[str, str], name: str) -> str:
    value = _text(environ, name, "UTC")
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise SettingsError(f"{name} must be an IANA time zone such as 'UTC' or 'America/Chicago', got {value!r}") from None
    return value


def _day(environ: Mapping[str, str], name: str, default: str) -> str:
    value = _text(environ, name, default)
    try:
        date.fromisoformat(value)
    except ValueError:
        raise SettingsError(f"{name} must be a date as YYYY-MM-DD, got {value!r}") from None
    return value


# The GenesysResource fields a deployment may tune, each read from GENESYS_<FIELD IN CAPITALS> (e.g.
# GENESYS_REQUESTS_PER_MINUTE, for an org whose limit support has raised), and the SnowflakeTarget
# fields, from GENESYS_SNOWFLAKE_<FIELD>. Their ranges are the resources' own, checked when the
# definitions load (defs/resources.py).
GENESYS_TUNABLE_FIELDS: dict[str, type] = {
    "connect_timeout_seconds": float, "read_timeout_seconds": float, "query_page_size": int,
    "job_page_size": int, "lookup_page_size": int, "query_result_cap": int, "job_result_cap": int,
    "max_attempts": int, "backoff_base_seconds": float, "backoff_cap_seconds": float, "requests_per_minute": int,
    "job_poll_interval_seconds": float, "job_poll_max_interval_seconds": float, "job_timeout_seconds": float,
    "job_slot_wait_seconds": float, "detail_jobs_at_once": int,
}  # fmt: skip
SNOWFLAKE_TUNABLE_FIELDS: dict[str, type] = {"lock_timeout_seconds": int, "statement_timeout_seconds": int}


def tuning_variable(field: str, prefix: str) -> str:
    return prefix + field.upper()


def _tuning(environ: Mapping[str, str], fields: dict[str, type], prefix: str) -> dict[str, Any]:
    tuning: dict[str, Any] = {}
    for field, kind in fields.items():
        name = tuning_variable(field, prefix)
        text = _optional(environ, name)
        if text is None:
            continue
        try:
            tuning[field] = kind(text)
        except ValueError:
            raise SettingsError(
                f"{name} must be {'a whole number' if kind is int else 'a number'}, got {text!r}"
            ) from None
    return tuning


@dataclasses.dataclass(frozen=True)
class ProductionKnobs:
    """The optional, non-secret settings of the production resources (defaults as documented)."""

    s3_prefix: str
    s3_file_format: str
    s3_sse: str
    s3_kms_key_id: Optional[str]
    snowflake_stage: str
    aws_region: Optional[str]
    snowflake_role: Optional[str]
    snowflake_warehouse: Optional[str]


@dataclasses.dataclass(frozen=True)
class LocalEndpoints:
    """Where the local resource set finds the emulator and the stand-ins."""

    genesys_url: str
    working_dir: str
    s3_endpoint_url: str
    s3_bucket: str
    s3_file_format: str
    snowflake_connection_args: dict[str, Any]


@dataclasses.dataclass(frozen=True)
class Settings:
    environment: str
    partition_start_date: str
    partition_timezone: str
    schedule_hour: int
    lookback_days: int
    ongoing_refresh_days: int
    late_reload_days_back: int
    backfill_days_per_run: int
    step_retries: int
    api_count_tolerance_percent: float
    personal_data: PersonalDataPolicy
    genesys_tuning: dict[str, Any]  # GenesysResource field -> value, from GENESYS_<FIELD>
    alerts_configured: bool  # GENESYS_ALERT_WEBHOOK_URL is set (its value stays an EnvVar)
    dagster_ui_url: Optional[str]  # for links in alerts
    freshness_deadline_hour: int  # yesterday must be loaded by this hour (partition time zone)
    tables: tuple[str, ...]  # GENESYS_TABLES: the flattened tables of contracts/tables.py used, in its order
    asset_owners: tuple[str, ...]  # GENESYS_ASSET_OWNERS: e-mail addresses or team:<name>, shown in the UI
    snowflake_tuning: dict[str, Any]  # SnowflakeTarget field -> value, from GENESYS_SNOWFLAKE_<FIELD>
    production: ProductionKnobs
    local: LocalEndpoints


# The fakesnow server `make dev` starts when nothing else is said.
DEFAULT_LOCAL_SNOWFLAKE: dict[str, Any] = {
    "host": "127.0.0.1", "port": 8085, "protocol": "http", "network_timeout": 1,
    "session_parameters": {"CLIENT_OUT_OF_BAND_TELEMETRY_ENABLED": False},
}  # fmt: skip


def _connection_args(environ: Mapping[str, str], name: str) -> dict[str, Any]:
    text = _optional(environ, name)
    if text is None:
        return dict(DEFAULT_LOCAL_SNOWFLAKE)
    try:
        value = json.loads(text)
    except ValueError as error:
        raise SettingsError(f"{name} must be a JSON object of connection arguments: {error}") from None
    if not isinstance(value, dict):
        raise SettingsError(f"{name} must be a JSON object of connection arguments, got {type(value).__name__}")
    return value


def _owners(environ: Mapping[str, str], name: str) -> tuple[str, ...]:
    owners = tuple(owner.strip() for owner in (_optional(environ, name) or "").split(",") if owner.strip())
    for owner in owners:
        if not (owner.startswith("team:") and len(owner) > 5) and "@" not in owner:
            raise SettingsError(f"{name} must list e-mail addresses or team:<name>, comma-separated, got {owner!r}")
    return owners


TABLES_VARIABLE = "GENESYS_TABLES"


def _tables(environ: Mapping[str, str], name: str) -> tuple[str, ...]:
    """The tables named (case and spaces ignored), in contracts/tables.py's order, conversations always."""
    text = _optional(environ, name)
    if text is None:
        return tuple(table.name for table in TABLES)
    named = {part.strip().lower() for part in text.split(",") if part.strip()}
    allowed = [table.name for table in TABLES]
    unknown = sorted(named - set(allowed))
    if unknown:
        raise SettingsError(
            f"{name} must list tables, comma-separated, from {', '.join(allowed)} (conversations is always "
            f"included); got {text!r}, and {', '.join(repr(u) for u in unknown)} is not among them"
        )
    return tuple(table for table in allowed if table in named or table == CONVERSATIONS.name)


def _personal_data(environ: Mapping[str, str]) -> PersonalDataPolicy:
    policy = PersonalDataPolicy(**{c.name: _one_of(environ, c.variable, "keep", MODES) for c in CLASSES})
    if policy.hashes and _optional(environ, HASH_KEY_VARIABLE) is None:
        hashed = ", ".join(f"{c.variable}=hash" for c in CLASSES if policy.mode(c) == HASH)
        raise SettingsError(
            f"{HASH_KEY_VARIABLE} must be set when a class of personal data is hashed ({hashed}): a random "
            "secret of at least 32 characters, e.g. from `openssl rand -hex 32`"
        )
    return policy


def load_settings(environ: Mapping[str, str] = os.environ) -> Settings:
    """Parse and validate the settings; raises `SettingsError` naming the first bad variable."""
    environment = _one_of(environ, "GENESYS_PIPELINE_ENV", "local", ENVIRONMENTS)
    file_format = _one_of(environ, "GENESYS_S3_FILE_FORMAT", "parquet", ("parquet", "csv"))
    return Settings(
        environment=environment,
        partition_start_date=_day(environ, "GENESYS_PARTITION_START_DATE", "2024-01-01"),
        partition_timezone=_time_zone(environ, "GENESYS_PARTITION_TIMEZONE"),
        schedule_hour=_whole_number(environ, "GENESYS_SCHEDULE_HOUR", 6, 0, 23),
        lookback_days=_whole_number(environ, "GENESYS_LOOKBACK_DAYS", 3, 0, 31),
        ongoing_refresh_days=_whole_number(environ, "GENESYS_ONGOING_REFRESH_DAYS", 30, 0, 90),
        late_reload_days_back=_whole_number(environ, "GENESYS_LATE_RELOAD_DAYS_BACK", 10, 0, 90),
        backfill_days_per_run=_whole_number(environ, "GENESYS_BACKFILL_DAYS_PER_RUN", 7, 1, 366),
        step_retries=_whole_number(environ, "GENESYS_STEP_RETRIES", 2 if environment == "production" else 0, 0, 10),
        api_count_tolerance_percent=_percent(environ, "GENESYS_API_COUNT_TOLERANCE_PERCENT", 5.0),
        personal_data=_personal_data(environ),
        genesys_tuning=_tuning(environ, GENESYS_TUNABLE_FIELDS, "GENESYS_"),
        alerts_configured=_optional(environ, "GENESYS_ALERT_WEBHOOK_URL") is not None,
        dagster_ui_url=_optional(environ, "GENESYS_DAGSTER_UI_URL"),
        freshness_deadline_hour=_whole_number(environ, "GENESYS_FRESHNESS_DEADLINE_HOUR", 10, 0, 23),
        tables=_tables(environ, TABLES_VARIABLE),
        asset_owners=_owners(environ, "GENESYS_ASSET_OWNERS"),
        snowflake_tuning=_tuning(environ, SNOWFLAKE_TUNABLE_FIELDS, "GENESYS_SNOWFLAKE_"),
        production=ProductionKnobs(
            s3_prefix=_text(environ, "GENESYS_S3_PREFIX", "genesys/conversations"),
            s3_file_format=file_format,
            s3_sse=_one_of(environ, "GENESYS_S3_SSE", "AES256", ("AES256", "aws:kms")),
            s3_kms_key_id=_optional(environ, "GENESYS_S3_KMS_KEY_ID"),
            snowflake_stage=_text(environ, "GENESYS_SNOWFLAKE_STAGE", "GENESYS_S3_STAGE"),
            aws_region=_optional(environ, "AWS_REGION"),
            snowflake_role=_optional(environ, "SNOWFLAKE_ROLE"),
            snowflake_warehouse=_optional(environ, "SNOWFLAKE_WAREHOUSE"),
        ),
        local=LocalEndpoints(
            genesys_url=_text(environ, "GENESYS_API_BASE_URL", "http://127.0.0.1:8765"),
            working_dir=_text(environ, "GENESYS_WORKING_DIR", "data/working"),
            s3_endpoint_url=_text(environ, "GENESYS_S3_ENDPOINT_URL", "http://127.0.0.1:5000"),
            s3_bucket=_text(environ, "GENESYS_S3_BUCKET", "genesys-local"),
            s3_file_format=file_format,
            snowflake_connection_args=_connection_args(environ, "GENESYS_SNOWFLAKE_CONNECTION_ARGS"),
        ),
    )


# Parsed once, when the code location loads.
SETTINGS = load_settings()
