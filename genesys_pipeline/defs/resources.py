"""Resource sets per environment, chosen by `GENESYS_PIPELINE_ENV` (`local` by default).

`local`, the embedded stack (no credentials; `make demo` and the local `dagster dev` set these):
    GENESYS_API_BASE_URL                 the Genesys emulator (default http://127.0.0.1:8765)
    GENESYS_WORKING_DIR                  working location (default data/working)
    GENESYS_S3_ENDPOINT_URL              moto's S3 server (default http://127.0.0.1:5000)
    GENESYS_S3_BUCKET                    default genesys-local
    GENESYS_S3_FILE_FORMAT               parquet (default) or csv
    GENESYS_SNOWFLAKE_CONNECTION_ARGS    JSON connection args of the fakesnow server
                                         (default host 127.0.0.1, port 8085, protocol http)

`production`, nothing but configuration:
    GENESYS_REGION, GENESYS_CLIENT_ID, GENESYS_CLIENT_SECRET      the Genesys Cloud OAuth client
    GENESYS_WORKING_DIR                  a local folder or s3://bucket/prefix
    AWS_REGION (+ the default AWS credential chain)
    GENESYS_S3_BUCKET, GENESYS_S3_PREFIX, GENESYS_S3_FILE_FORMAT, GENESYS_S3_SSE, GENESYS_S3_KMS_KEY_ID
    SNOWFLAKE_ACCOUNT, SNOWFLAKE_USER, SNOWFLAKE_DATABASE, SNOWFLAKE_SCHEMA, SNOWFLAKE_ROLE,
    SNOWFLAKE_WAREHOUSE, and key-pair auth: SNOWFLAKE_PRIVATE_KEY (PEM text) with an optional
    SNOWFLAKE_PRIVATE_KEY_PASSWORD; SNOWFLAKE_PASSWORD is used only when no private key is set
    GENESYS_SNOWFLAKE_STAGE, GENESYS_SNOWFLAKE_STORAGE_INTEGRATION
Values that are validated against a fixed list (format, encryption) are read with os.environ: Dagster
validates an EnvVar field by the variable's name when the resource is built.
"""

from __future__ import annotations

import json
import os
from typing import Any

import dagster as dg
from dagster_aws.s3 import S3Resource
from dagster_snowflake import SnowflakeResource

from genesys_pipeline.local.emulator.config import DEMO_CLIENT_ID, DEMO_CLIENT_SECRET
from genesys_pipeline.resources.genesys import GenesysResource
from genesys_pipeline.resources.warehouse import S3Publishing, SnowflakeTarget
from genesys_pipeline.resources.working_storage import WorkingStorage
from genesys_pipeline.local.stand_ins import s3_resource, snowflake_resource

ENVIRONMENTS = ("local", "production")
LOCAL_SNOWFLAKE = {"host": "127.0.0.1", "port": 8085, "protocol": "http", "network_timeout": 1,
                   "session_parameters": {"CLIENT_OUT_OF_BAND_TELEMETRY_ENABLED": False}}  # fmt: skip
LOCAL_DATABASE, LOCAL_SCHEMA = "GENESYS_LOCAL", "GENESYS"


def current_environment() -> str:
    environment = os.environ.get("GENESYS_PIPELINE_ENV") or "local"
    if environment not in ENVIRONMENTS:
        raise ValueError(f"GENESYS_PIPELINE_ENV must be one of {', '.join(ENVIRONMENTS)}, got {environment!r}")
    return environment


def _env(name: str, default: str) -> str:
    return os.environ.get(name) or default


def local_resources() -> dict[str, Any]:
    emulator_url = _env("GENESYS_API_BASE_URL", "http://127.0.0.1:8765")
    connection_args = json.loads(os.environ.get("GENESYS_SNOWFLAKE_CONNECTION_ARGS") or json.dumps(LOCAL_SNOWFLAKE))
    return {
        "genesys": GenesysResource(
            api_base_url=emulator_url,
            login_base_url=emulator_url,
            client_id=DEMO_CLIENT_ID,
            client_secret=DEMO_CLIENT_SECRET,
        ),
        "working_storage": WorkingStorage(root=_env("GENESYS_WORKING_DIR", "data/working")),
        "s3": s3_resource(_env("GENESYS_S3_ENDPOINT_URL", "http://127.0.0.1:5000")),
        "s3_publishing": S3Publishing(
            bucket=_env("GENESYS_S3_BUCKET", "genesys-local"), file_format=_env("GENESYS_S3_FILE_FORMAT", "parquet")
        ),
        "snowflake": snowflake_resource(connection_args, database=LOCAL_DATABASE, schema=LOCAL_SCHEMA),
        # The stand-in ignores stage credentials; fakesnow cannot COPY into temporary tables.
        "snowflake_target": SnowflakeTarget(
            stage_aws_key_id="testing", stage_aws_secret_key="testing", staging_tables="transient"
        ),
    }


def production_resources() -> dict[str, Any]:
    # Key-pair auth is the default; a password only when no private key is configured.
    if os.environ.get("SNOWFLAKE_PRIVATE_KEY") or not os.environ.get("SNOWFLAKE_PASSWORD"):
        credentials: dict[str, Any] = {"private_key": dg.EnvVar("SNOWFLAKE_PRIVATE_KEY")}
        if os.environ.get("SNOWFLAKE_PRIVATE_KEY_PASSWORD"):
            credentials["private_key_password"] = dg.EnvVar("SNOWFLAKE_PRIVATE_KEY_PASSWORD")
    else:
        credentials = {"password": dg.EnvVar("SNOWFLAKE_PASSWORD")}
    s3 = S3Resource(region_name=os.environ.get("AWS_REGION"))
    return {
        "genesys": GenesysResource(
            region=dg.EnvVar("GENESYS_REGION"),
            client_id=dg.EnvVar("GENESYS_CLIENT_ID"),
            client_secret=dg.EnvVar("GENESYS_CLIENT_SECRET"),
        ),
        # An s3:// working location (steps on several machines) uses the same S3 client settings.
        "working_storage": WorkingStorage(root=dg.EnvVar("GENESYS_WORKING_DIR"), s3=s3),
        "s3": s3,
        "s3_publishing": S3Publishing(
            bucket=dg.EnvVar("GENESYS_S3_BUCKET"),
            prefix=_env("GENESYS_S3_PREFIX", "genesys/conversations"),
            file_format=_env("GENESYS_S3_FILE_FORMAT", "parquet"),
            sse=_env("GENESYS_S3_SSE", "AES256"),
            kms_key_id=os.environ.get("GENESYS_S3_KMS_KEY_ID") or None,
        ),
        "snowflake": SnowflakeResource(
            account=dg.EnvVar("SNOWFLAKE_ACCOUNT"),
            user=dg.EnvVar("SNOWFLAKE_USER"),
            database=dg.EnvVar("SNOWFLAKE_DATABASE"),
            schema=dg.EnvVar("SNOWFLAKE_SCHEMA"),
            role=os.environ.get("SNOWFLAKE_ROLE"),
            warehouse=os.environ.get("SNOWFLAKE_WAREHOUSE"),
            **credentials,
        ),
        "snowflake_target": SnowflakeTarget(
            stage=_env("GENESYS_SNOWFLAKE_STAGE", "GENESYS_S3_STAGE"),
            storage_integration=dg.EnvVar("GENESYS_SNOWFLAKE_STORAGE_INTEGRATION"),
        ),
    }


def resources_for(environment: str) -> dict[str, Any]:
    return local_resources() if environment == "local" else production_resources()
