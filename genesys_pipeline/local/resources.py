"""The local resource set: the Genesys emulator and the S3/Snowflake stand-ins, no credentials.

Used by the code location when `GENESYS_PIPELINE_ENV` is `local` (the default), by `make demo` and by
the tests. The emulator's demo client id and secret are not secrets: the emulator accepts nothing else.
"""

from __future__ import annotations

from typing import Any, Optional

from genesys_pipeline.local.emulator.config import DEMO_CLIENT_ID, DEMO_CLIENT_SECRET
from genesys_pipeline.local.stand_ins import s3_resource, snowflake_resource
from genesys_pipeline.resources.genesys import GenesysResource
from genesys_pipeline.resources.personal_data import PersonalDataProtection
from genesys_pipeline.resources.warehouse import S3Publishing, SnowflakeTarget
from genesys_pipeline.resources.working_storage import WorkingStorage
from genesys_pipeline.settings import LocalEndpoints

LOCAL_DATABASE, LOCAL_SCHEMA = "GENESYS_LOCAL", "GENESYS"


def local_resources(endpoints: LocalEndpoints, personal_data: Optional[PersonalDataProtection] = None) -> dict[str, Any]:
    return {
        "genesys": GenesysResource(
            api_base_url=endpoints.genesys_url,
            login_base_url=endpoints.genesys_url,  # the emulator serves /oauth/token on the same port
            client_id=DEMO_CLIENT_ID,
            client_secret=DEMO_CLIENT_SECRET,
            personal_data=personal_data,  # the GENESYS_PII_* settings, as in production
        ),
        "working_storage": WorkingStorage(root=endpoints.working_dir),
        "s3": s3_resource(endpoints.s3_endpoint_url),
        "s3_publishing": S3Publishing(bucket=endpoints.s3_bucket, file_format=endpoints.s3_file_format),
        "snowflake": snowflake_resource(endpoints.snowflake_connection_args, database=LOCAL_DATABASE, schema=LOCAL_SCHEMA),
        # The stand-in ignores stage credentials; fakesnow cannot COPY into temporary tables.
        "snowflake_target": SnowflakeTarget(
            stage_aws_key_id="testing", stage_aws_secret_key="testing", staging_tables="transient"
        ),
    }
