"""The configurable resources: Genesys access, the working location, S3 publishing and the Snowflake target."""
