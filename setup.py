from setuptools import find_packages, setup

# The dagster family is pinned exactly: an unpinned install resolves dagster-aws/-snowflake to 2021
# releases (0.11.x) that import `dagster.core` and fail, while `pip check` reports nothing wrong.
DAGSTER_FAMILY = [
    "dagster==1.13.27",
    "dagster-webserver==1.13.27",
    "dagster-aws==0.29.27",
    "dagster-snowflake==0.29.27",
]

LOCAL_STACK = [
    "fakesnow==0.12.1",
    "moto[server]==5.2.5",
    "fsspec==2026.9.0",  # fakesnow's DuckDB reads s3:// through an fsspec filesystem we register
]

# Dagster's own storage (runs, events, schedules) in Postgres, for more than one machine
# (deploy/dagster-postgres.yaml); on the dagster family's release line, like the integrations above.
POSTGRES_STORAGE = ["dagster-postgres==0.29.27"]

setup(
    name="genesys_pipeline",
    version="0.1.0",
    description="Genesys Cloud conversation analytics into Snowflake, with Dagster",
    python_requires=">=3.11,<3.12",
    packages=find_packages(exclude=["genesys_pipeline_tests", "genesys_pipeline_tests.*"]),
    install_requires=[
        *DAGSTER_FAMILY,
        "httpx==0.28.1",
        # orjson: 5-10x faster JSON on the extraction hot path (pages of 1000 records in and out).
        "orjson==3.13.0",
        "pyarrow==26.0.1",
    ],
    extras_require={
        # The local stack: stand-ins that speak the real S3 and Snowflake wire protocols. Pinned
        # exactly: the S3 shim in genesys_pipeline/local/stand_ins.py patches a fakesnow internal.
        "local": LOCAL_STACK,
        "postgres": POSTGRES_STORAGE,
        "dev": [
            *LOCAL_STACK,
            *POSTGRES_STORAGE,  # genesys_pipeline_tests/test_postgres_storage.py
            "pytest==9.2.0",
            "pytest-timeout==2.4.0",
            # The official SDK, only to prove the emulator's responses deserialize without loss.
            "purecloudplatformclientv2==269.0.0",
            # The real-browser test of the local mode (genesys_pipeline_tests/test_browser.py). Only the
            # Python driver: the test runs Debian's chromium (/usr/bin/chromium, via executable_path), so
            # `playwright install` (which downloads a browser) is never needed.
            "playwright==1.65.2",
        ],
    },
)
