"""Resource sets per environment, chosen by `GENESYS_PIPELINE_ENV` (`local` by default).

- `local`: the embedded stack. Genesys is the emulator at `GENESYS_API_BASE_URL` (default
  http://127.0.0.1:8765) with its documented demo credentials; files go under `GENESYS_WORKING_DIR`
  (default `./data/working`).
- `production`: the real Genesys Cloud region `GENESYS_REGION` with the OAuth client from
  `GENESYS_CLIENT_ID`/`GENESYS_CLIENT_SECRET`; the working location `GENESYS_WORKING_DIR` may be a
  local folder or an `s3://bucket/prefix`. Nothing but configuration.
"""

from __future__ import annotations

import os
from typing import Any

import dagster as dg

from .emulator.config import DEMO_CLIENT_ID, DEMO_CLIENT_SECRET
from .resources.genesys import GenesysResource
from .resources.working_storage import WorkingStorage

ENVIRONMENTS = ("local", "production")


def current_environment() -> str:
    environment = os.environ.get("GENESYS_PIPELINE_ENV", "local")
    if environment not in ENVIRONMENTS:
        raise ValueError(
            f"GENESYS_PIPELINE_ENV must be one of {', '.join(ENVIRONMENTS)}, got {environment!r}"
        )
    return environment


def local_resources() -> dict[str, Any]:
    emulator_url = os.environ.get("GENESYS_API_BASE_URL", "http://127.0.0.1:8765")
    return {
        "genesys": GenesysResource(
            api_base_url=emulator_url,
            login_base_url=emulator_url,
            client_id=DEMO_CLIENT_ID,
            client_secret=DEMO_CLIENT_SECRET,
        ),
        "working_storage": WorkingStorage(root=os.environ.get("GENESYS_WORKING_DIR", "data/working")),
    }


def production_resources() -> dict[str, Any]:
    return {
        "genesys": GenesysResource(
            region=dg.EnvVar("GENESYS_REGION"),
            client_id=dg.EnvVar("GENESYS_CLIENT_ID"),
            client_secret=dg.EnvVar("GENESYS_CLIENT_SECRET"),
        ),
        "working_storage": WorkingStorage(root=dg.EnvVar("GENESYS_WORKING_DIR")),
    }


def resources_for(environment: str) -> dict[str, Any]:
    return local_resources() if environment == "local" else production_resources()
