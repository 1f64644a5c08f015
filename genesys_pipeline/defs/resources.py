"""The resource set of the environment the code location runs in (`GENESYS_PIPELINE_ENV`).

`production` is configuration alone: secrets and required values are `dg.EnvVar`s, which Dagster
resolves when a run starts and never displays; the optional knobs come from genesys_pipeline/settings.py.
`local` (the default) points at the Genesys emulator and the S3/Snowflake stand-ins; it is built by
genesys_pipeline/local/resources.py, imported only here and only then, so a production code location
never loads the emulator or the stand-ins. The variables: docs/configuration.md.
"""

from __future__ import annotations

import os
from typing import Any, Callable, Mapping

import dagster as dg
from dagster_aws.s3 import S3Resource
from dagster_snowflake import SnowflakeResource

import genesys_pipeline.settings as settings_module
from genesys_pipeline.contracts.columns import Table
from genesys_pipeline.contracts.personal_data import HASH_KEY_VARIABLE
from genesys_pipeline.contracts.tables import TABLES_BY_NAME
from genesys_pipeline.genesys.regions import GENESYS_REGIONS, region_domain
from genesys_pipeline.resources.genesys import GenesysResource
from genesys_pipeline.resources.personal_data import PersonalDataProtection
from genesys_pipeline.resources.warehouse import S3Publishing, SnowflakeTarget
from genesys_pipeline.resources.working_storage import WorkingStorage
from genesys_pipeline.settings import SETTINGS, Settings, SettingsError, tuning_variable

BASE_URL_VARIABLES = ("GENESYS_API_BASE_URL", "GENESYS_LOGIN_BASE_URL")
# What a production run cannot start without. Their values stay EnvVars (Dagster resolves them at run
# start and never shows them), but `check_production_environment` reads them when the definitions load.
REQUIRED_IN_PRODUCTION = (
    "GENESYS_CLIENT_ID", "GENESYS_CLIENT_SECRET", "GENESYS_WORKING_DIR", "GENESYS_S3_BUCKET",
    "SNOWFLAKE_ACCOUNT", "SNOWFLAKE_USER", "SNOWFLAKE_DATABASE", "SNOWFLAKE_SCHEMA",
    "GENESYS_SNOWFLAKE_STORAGE_INTEGRATION",
)  # fmt: skip


def selected_tables() -> tuple[Table, ...]:
    """The tables of GENESYS_TABLES, in contracts/tables.py's order: the ones the steps write, publish,
    load and count. Read when called (a step's run, a definition's metadata), from the parsed settings."""
    return tuple(TABLES_BY_NAME[name] for name in settings_module.SETTINGS.tables)


def _snowflake_credentials() -> dict[str, Any]:
    # Key-pair auth is the default; a password only when no private key is configured. Only the
    # variables' presence is looked at here: their values stay EnvVars.
    if os.environ.get("SNOWFLAKE_PRIVATE_KEY") or not os.environ.get("SNOWFLAKE_PASSWORD"):
        credentials: dict[str, Any] = {"private_key": dg.EnvVar("SNOWFLAKE_PRIVATE_KEY")}
        if os.environ.get("SNOWFLAKE_PRIVATE_KEY_PASSWORD"):
            credentials["private_key_password"] = dg.EnvVar("SNOWFLAKE_PRIVATE_KEY_PASSWORD")
        return credentials
    return {"password": dg.EnvVar("SNOWFLAKE_PASSWORD")}


def personal_data_protection(settings: Settings = SETTINGS) -> PersonalDataProtection | None:
    """The GENESYS_PII_* settings as the Genesys resource's `personal_data`; None when all is kept. The
    hash key stays an EnvVar, and only when something is hashed: otherwise it is not needed at all."""
    policy = settings.personal_data
    if policy.keeps_everything:
        return None
    key = dg.EnvVar(HASH_KEY_VARIABLE) if policy.hashes else None
    return PersonalDataProtection(**policy.as_dict(), hash_key=key)


def check_production_environment(environ: Mapping[str, str] = os.environ) -> None:
    """Every variable a production run needs is set and well-formed, checked when the definitions load
    (the code server, `dagster definitions validate`): bad configuration stops the code location at once
    with one message naming every variable at fault, instead of failing each run at its start, after
    retries. The values are only validated here (the resources keep their EnvVars); a secret's value never
    appears in the message."""
    problems = [f"{name} is not set" for name in REQUIRED_IN_PRODUCTION if not environ.get(name, "").strip()]
    base_urls = [environ.get(name, "").strip() for name in BASE_URL_VARIABLES]
    if any(base_urls) and not all(base_urls):
        problems.append(f"{' and '.join(BASE_URL_VARIABLES)} go together (a proxy or private endpoint), got only one")
    elif all(base_urls) and environ.get("GENESYS_REGION", "").strip():
        problems.append(f"GENESYS_REGION and {' + '.join(BASE_URL_VARIABLES)} exclude each other: set one or the other")
    elif not any(base_urls) and not environ.get("GENESYS_REGION", "").strip():
        problems.append("GENESYS_REGION is not set (or, for a proxy, both " + " and ".join(BASE_URL_VARIABLES) + ")")
    if not (environ.get("SNOWFLAKE_PRIVATE_KEY", "").strip() or environ.get("SNOWFLAKE_PASSWORD", "").strip()):
        problems.append("SNOWFLAKE_PRIVATE_KEY is not set (key-pair authentication; SNOWFLAKE_PASSWORD only as a fallback)")
    region = environ.get("GENESYS_REGION", "").strip()
    if region and region_domain(region) is None:
        problems.append(f"GENESYS_REGION must be a Genesys Cloud region, one of {', '.join(GENESYS_REGIONS)} (or "
                        f"its SDK key such as eu_central_1), got {region!r}")  # fmt: skip
    checks: dict[str, Callable[[str], Any]] = {
        # Each base URL is checked with a well-formed other one (the resource wants both or neither).
        "GENESYS_API_BASE_URL": lambda value: GenesysResource(
            api_base_url=value, login_base_url="https://login.example", client_id="-", client_secret="-"),
        "GENESYS_LOGIN_BASE_URL": lambda value: GenesysResource(
            api_base_url="https://api.example", login_base_url=value, client_id="-", client_secret="-"),
        "GENESYS_WORKING_DIR": lambda value: WorkingStorage(root=value),
        "GENESYS_S3_BUCKET": lambda value: S3Publishing(bucket=value),
        "GENESYS_SNOWFLAKE_STORAGE_INTEGRATION": lambda value: SnowflakeTarget(storage_integration=value),
    }
    for name, build in checks.items():
        value = environ.get(name, "").strip()
        try:
            if value:
                build(value)
        except ValueError as error:  # pydantic's ValidationError: the resource's own rule, which names the value
            details = error.errors() if hasattr(error, "errors") else [{"msg": str(error)}]
            problems.append(f"{name}: " + "; ".join(detail["msg"].removeprefix("Value error, ") for detail in details))
    if problems:
        raise SettingsError("The production settings are incomplete or wrong (docs/configuration.md): " + "; ".join(problems))


def tuned(resource_type: type[Any], tuning: dict[str, Any], prefix: str, **fields: Any) -> Any:
    """`resource_type(**fields, **tuning)`; a tuned value the resource refuses fails naming its variable."""
    try:
        return resource_type(**fields, **tuning)
    except ValueError as error:
        if not tuning or not hasattr(error, "errors"):
            raise
        named = []
        for detail in error.errors():
            message = detail["msg"].removeprefix("Value error, ")
            if detail.get("loc") and detail["loc"][0] in tuning:  # one field's own range
                named.append(f"{tuning_variable(str(detail['loc'][0]), prefix)}: {message}, got {detail.get('input')!r}")
            elif not detail.get("loc"):  # a rule between fields (never echoing the inputs, which may hold secrets)
                named.append(f"{message} (set by {', '.join(tuning_variable(f, prefix) for f in tuning)})")
        if not named:
            raise
        raise SettingsError("; ".join(named)) from None


def production_resources(settings: Settings = SETTINGS) -> dict[str, Any]:
    check_production_environment()
    knobs = settings.production
    s3 = S3Resource(region_name=knobs.aws_region)
    # A region, or both base URLs for a proxy or private endpoint (checked above).
    hosts = ({"api_base_url": dg.EnvVar("GENESYS_API_BASE_URL"), "login_base_url": dg.EnvVar("GENESYS_LOGIN_BASE_URL")}
             if os.environ.get("GENESYS_API_BASE_URL") else {"region": dg.EnvVar("GENESYS_REGION")})  # fmt: skip
    return {
        "genesys": tuned(
            GenesysResource, settings.genesys_tuning, "GENESYS_", **hosts,
            client_id=dg.EnvVar("GENESYS_CLIENT_ID"),
            client_secret=dg.EnvVar("GENESYS_CLIENT_SECRET"),
            personal_data=personal_data_protection(settings),
        ),  # fmt: skip
        # An s3:// working location (steps on several machines) uses the same S3 client settings.
        "working_storage": WorkingStorage(root=dg.EnvVar("GENESYS_WORKING_DIR"), s3=s3),
        "s3": s3,
        "s3_publishing": S3Publishing(
            bucket=dg.EnvVar("GENESYS_S3_BUCKET"),
            prefix=knobs.s3_prefix,
            file_format=knobs.s3_file_format,
            sse=knobs.s3_sse,
            kms_key_id=knobs.s3_kms_key_id,
        ),
        "snowflake": SnowflakeResource(
            account=dg.EnvVar("SNOWFLAKE_ACCOUNT"),
            user=dg.EnvVar("SNOWFLAKE_USER"),
            database=dg.EnvVar("SNOWFLAKE_DATABASE"),
            schema=dg.EnvVar("SNOWFLAKE_SCHEMA"),
            role=knobs.snowflake_role,
            warehouse=knobs.snowflake_warehouse,
            **_snowflake_credentials(),
        ),
        "snowflake_target": tuned(
            SnowflakeTarget, settings.snowflake_tuning, "GENESYS_SNOWFLAKE_",
            stage=knobs.snowflake_stage,
            storage_integration=dg.EnvVar("GENESYS_SNOWFLAKE_STORAGE_INTEGRATION"),
        ),  # fmt: skip
    }


def resources_for(settings: Settings = SETTINGS) -> dict[str, Any]:
    if settings.environment == "production":
        return production_resources(settings)
    from genesys_pipeline.local.resources import (
        local_resources,  # dev tooling: never in production
    )

    resources = local_resources(settings.local, personal_data_protection(settings))
    # The same tuning as in production, and credentials of an emulator started with others than the demo's.
    genesys = resources["genesys"]
    fields = dict(api_base_url=genesys.api_base_url, login_base_url=genesys.login_base_url,
                  client_id=genesys.client_id, client_secret=genesys.client_secret, personal_data=genesys.personal_data)  # fmt: skip
    for name in ("GENESYS_CLIENT_ID", "GENESYS_CLIENT_SECRET"):
        if os.environ.get(name):
            fields[name.removeprefix("GENESYS_").lower()] = dg.EnvVar(name)
    resources["genesys"] = tuned(GenesysResource, settings.genesys_tuning, "GENESYS_", **fields)
    target = resources["snowflake_target"]
    resources["snowflake_target"] = tuned(
        SnowflakeTarget, settings.snowflake_tuning, "GENESYS_SNOWFLAKE_", stage_aws_key_id=target.stage_aws_key_id,
        stage_aws_secret_key=target.stage_aws_secret_key, staging_tables=target.staging_tables,
    )  # fmt: skip
    return resources
