"""The contracts between the stages: table schemas, paths and manifests."""
