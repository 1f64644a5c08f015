"""Bad configuration fails when the definitions load, with the variable or field, the value and what is
allowed in the message; values that only look right (a trailing newline) are refused too."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from genesys_pipeline.resources.warehouse import S3Publishing, SnowflakeTarget
from genesys_pipeline.settings import SettingsError, load_settings
from genesys_pipeline_tests.conftest import PRODUCTION_PLACEHOLDERS


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("GENESYS_PARTITION_TIMEZONE", "Mars/Olympus", "IANA time zone"),
        ("GENESYS_PARTITION_START_DATE", "2024-13-01", "a date as YYYY-MM-DD"),
        ("GENESYS_PIPELINE_ENV", "staging", "one of local, production"),
        ("GENESYS_SCHEDULE_HOUR", "24", "between 0 and 23"),
        ("GENESYS_ONGOING_REFRESH_DAYS", "91", "between 0 and 90"),
        ("GENESYS_LATE_RELOAD_DAYS_BACK", "-1", "between 0 and 90"),
        ("GENESYS_S3_FILE_FORMAT", "json", "one of parquet, csv"),
        ("GENESYS_S3_SSE", "none", "one of AES256, aws:kms"),
        ("GENESYS_SNOWFLAKE_CONNECTION_ARGS", "{not json", "JSON object"),
    ],
)
def test_a_bad_setting_names_the_variable_and_the_value(name: str, value: str, message: str) -> None:
    with pytest.raises(SettingsError, match=f"^{name} must be .*{message}.*") as raised:
        load_settings({name: value})
    assert value in str(raised.value) or name == "GENESYS_SNOWFLAKE_CONNECTION_ARGS"  # the JSON error says where


def test_the_code_location_refuses_to_load_with_a_bad_setting() -> None:
    env = dict(os.environ, GENESYS_PARTITION_TIMEZONE="Mars/Olympus")
    done = subprocess.run([sys.executable, "-W", "ignore", "-c", "import genesys_pipeline.definitions"], env=env,
                          capture_output=True, text=True, timeout=120, cwd=Path(__file__).resolve().parents[1])  # fmt: skip
    assert done.returncode != 0
    assert "SettingsError: GENESYS_PARTITION_TIMEZONE must be an IANA time zone" in done.stderr
    assert "'Mars/Olympus'" in done.stderr


@pytest.mark.parametrize(
    ("build", "field"),
    [
        (lambda: SnowflakeTarget(storage_integration="I", table_prefix="GENESYS_\n"), "SnowflakeTarget.table_prefix"),
        (lambda: SnowflakeTarget(storage_integration="I", stage="MY_STAGE\n"), "SnowflakeTarget.stage"),
        (lambda: S3Publishing(bucket="my-bucket\n"), "S3Publishing.bucket"),
        (lambda: S3Publishing(bucket="my-bucket", prefix="genesys/conversations\n"), "S3Publishing.prefix"),
    ],
)
def test_a_trailing_newline_is_not_a_valid_name(build, field: str) -> None:
    with pytest.raises(ValueError, match=field.replace(".", r"\.")):
        build()


# ##### PRODUCTION: CHECKED WHEN THE DEFINITIONS LOAD


def test_production_fails_at_load_naming_every_missing_variable_and_never_a_secret_value() -> None:
    from genesys_pipeline.defs.resources import (
        REQUIRED_IN_PRODUCTION,
        check_production_environment,
    )

    with pytest.raises(SettingsError) as raised:
        check_production_environment({})
    for name in REQUIRED_IN_PRODUCTION:
        assert f"{name} is not set" in str(raised.value)
    secret = "a-distinctive-client-secret-4711"
    bad = {**PRODUCTION_PLACEHOLDERS, "GENESYS_REGION": "moon.pure.cloud", "GENESYS_S3_BUCKET": "Bad Bucket",
           "GENESYS_SNOWFLAKE_STORAGE_INTEGRATION": "GENESYS-S3", "GENESYS_WORKING_DIR": "s3://",
           "GENESYS_CLIENT_SECRET": secret}  # fmt: skip
    with pytest.raises(SettingsError) as raised:
        check_production_environment(bad)
    message = str(raised.value)
    assert "GENESYS_REGION must be a Genesys Cloud region" in message and "'moon.pure.cloud'" in message
    assert "GENESYS_S3_BUCKET: S3Publishing.bucket is not a valid S3 bucket name: 'Bad Bucket'" in message
    assert "GENESYS_SNOWFLAKE_STORAGE_INTEGRATION: " in message and "'GENESYS-S3'" in message
    assert "GENESYS_WORKING_DIR: WorkingStorage.root 's3://' has no bucket name" in message
    assert secret not in message and "not set" not in message
    check_production_environment(PRODUCTION_PLACEHOLDERS)  # complete and well-formed: no error


def test_dagster_definitions_validate_fails_on_a_bad_production_region() -> None:
    env = {**os.environ, **PRODUCTION_PLACEHOLDERS, "GENESYS_REGION": "moon.pure.cloud"}
    done = subprocess.run([str(Path(sys.executable).parent / "dagster"), "definitions", "validate", "-m",
                           "genesys_pipeline.definitions"], env=env, capture_output=True, text=True, timeout=180)  # fmt: skip
    assert done.returncode != 0
    assert "GENESYS_REGION must be a Genesys Cloud region" in done.stdout + done.stderr


def test_every_tunable_field_has_its_variable_and_bad_values_name_it(monkeypatch: pytest.MonkeyPatch) -> None:
    from genesys_pipeline.defs.resources import resources_for

    monkeypatch.delenv("GENESYS_CLIENT_ID", raising=False)
    settings = load_settings({"GENESYS_REQUESTS_PER_MINUTE": "150", "GENESYS_JOB_TIMEOUT_SECONDS": "600.5",
                              "GENESYS_SNOWFLAKE_LOCK_TIMEOUT_SECONDS": "60"})  # fmt: skip
    resources = resources_for(settings)
    assert resources["genesys"].requests_per_minute == 150 and resources["genesys"].job_timeout_seconds == 600.5
    assert resources["snowflake_target"].lock_timeout_seconds == 60
    with pytest.raises(SettingsError, match="^GENESYS_MAX_ATTEMPTS must be a whole number, got 'six'$"):
        load_settings({"GENESYS_MAX_ATTEMPTS": "six"})
    with pytest.raises(SettingsError, match="^GENESYS_REQUESTS_PER_MINUTE: Input should be greater than or equal to 1, got 0$"):
        resources_for(load_settings({"GENESYS_REQUESTS_PER_MINUTE": "0"}))
    with pytest.raises(SettingsError, match=r"must not exceed .*\(set by GENESYS_SNOWFLAKE_LOCK_TIMEOUT_SECONDS, "
                                            r"GENESYS_SNOWFLAKE_STATEMENT_TIMEOUT_SECONDS\)"):  # fmt: skip
        resources_for(load_settings({"GENESYS_SNOWFLAKE_LOCK_TIMEOUT_SECONDS": "600",
                                     "GENESYS_SNOWFLAKE_STATEMENT_TIMEOUT_SECONDS": "60"}))  # fmt: skip


def test_an_emulator_started_with_other_credentials_is_usable_locally(monkeypatch: pytest.MonkeyPatch) -> None:
    import dagster as dg

    from genesys_pipeline.defs.resources import resources_for

    monkeypatch.setenv("GENESYS_CLIENT_ID", "my-emulator-client")
    monkeypatch.setenv("GENESYS_CLIENT_SECRET", "my-emulator-secret")
    genesys = resources_for(load_settings({}))["genesys"]
    assert genesys.client_id == dg.EnvVar("GENESYS_CLIENT_ID") and genesys.client_secret == dg.EnvVar("GENESYS_CLIENT_SECRET")


def test_production_takes_a_proxy_or_private_endpoint_instead_of_a_region() -> None:
    from genesys_pipeline.defs.resources import check_production_environment

    urls = {"GENESYS_API_BASE_URL": "https://genesys-proxy.example.com", "GENESYS_LOGIN_BASE_URL": "https://login-proxy.example.com"}
    without_region = {k: v for k, v in PRODUCTION_PLACEHOLDERS.items() if k != "GENESYS_REGION"}
    check_production_environment({**without_region, **urls})
    for environ, message in (
        ({**without_region, "GENESYS_API_BASE_URL": urls["GENESYS_API_BASE_URL"]}, "go together"),
        ({**PRODUCTION_PLACEHOLDERS, **urls}, "exclude each other"),
        ({**without_region, **urls, "GENESYS_API_BASE_URL": "ftp://x"}, "GENESYS_API_BASE_URL: "),
        (without_region, "GENESYS_REGION is not set (or, for a proxy, both GENESYS_API_BASE_URL and GENESYS_LOGIN_BASE_URL)"),
    ):
        with pytest.raises(SettingsError, match=re.escape(message)):
            check_production_environment(environ)


def test_asset_owners_are_e_mail_addresses_or_teams() -> None:
    assert load_settings({"GENESYS_ASSET_OWNERS": "team:cc-data, ana@example.com"}).asset_owners == ("team:cc-data", "ana@example.com")
    with pytest.raises(SettingsError, match="^GENESYS_ASSET_OWNERS must list e-mail addresses or team:<name>.*'bob'"):
        load_settings({"GENESYS_ASSET_OWNERS": "team:cc-data,bob"})
