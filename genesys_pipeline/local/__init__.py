"""Local tooling: the Genesys emulator, the S3/Snowflake stand-ins, `make demo` and `make dev`.

Never imported by the production code location."""
