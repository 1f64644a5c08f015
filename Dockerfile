# One image for every Dagster process of a deployment: the code server (the default command), the
# webserver and the daemon (deploy/compose/docker-compose.yaml overrides the command), and the run
# workers the code server launches. Build and run: docs/deployment.md.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    DAGSTER_HOME=/opt/dagster/dagster_home \
    GENESYS_PIPELINE_ENV=production

WORKDIR /opt/dagster/app

# Dependencies first, so a code change rebuilds only the last layers. The `postgres` extra is Dagster's
# Postgres storage (dagster-postgres, pinned with the dagster family).
COPY setup.py pyproject.toml README.md ./
COPY genesys_pipeline ./genesys_pipeline
RUN pip install '.[postgres]'

# Dagster reads its instance settings from $DAGSTER_HOME/dagster.yaml: Postgres storage, the queued run
# coordinator, the genesys_api pool. Its connection settings are DAGSTER_PG_* variables.
COPY deploy/dagster-postgres.yaml ${DAGSTER_HOME}/dagster.yaml
COPY deploy/workspace-grpc.yaml ./workspace.yaml

RUN useradd --create-home --uid 10001 dagster && chown -R dagster ${DAGSTER_HOME}
USER dagster

EXPOSE 4000
# The code server: loads the definitions once (a bad setting fails here, naming the variable) and
# launches runs. The webserver and the daemon reach it through workspace.yaml.
CMD ["dagster", "code-server", "start", "--host", "0.0.0.0", "--port", "4000", "--module-name", "genesys_pipeline.definitions", "--location-name", "genesys_pipeline"]
