"""The deployment files run what they say: the image's command serves the code location, a webserver
reads it through the deployment's workspace file, bad production settings stop the code server at start,
and the Helm values, the Dagster+ file, the Compose recipe and `.env.example` name what the code uses.

No container engine or cluster is available to the tests, so the image is not built: its command runs
here, in this checkout's environment, with the environment the Dockerfile sets.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shlex
import subprocess
import sys
import time
import tomllib
from pathlib import Path
from typing import Any, Iterator

import pytest
import yaml

from genesys_pipeline.local.processes import (
    free_port,
    graphql,
    start_session,
    stop_session,
)
from genesys_pipeline_tests.conftest import PRODUCTION_PLACEHOLDERS

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent

def _dockerfile() -> tuple[dict[str, str], list[str]]:
    """The Dockerfile's ENV (one multi-line instruction or several) and its CMD (exec form)."""
    text = (ROOT / "Dockerfile").read_text().replace("\\\n", " ")
    env: dict[str, str] = {}
    for line in re.findall(r"^ENV (.+)$", text, re.MULTILINE):
        env.update(dict(item.split("=", 1) for item in shlex.split(line)))
    (cmd,) = re.findall(r"^CMD (\[.*\])$", text, re.MULTILINE)
    return env, json.loads(cmd)


def _pyproject_location() -> tuple[str, str]:
    dagster = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["dagster"]
    return dagster["module_name"], dagster["code_location_name"]


def _option(args: list[str], name: str) -> str:
    return args[args.index(name) + 1]


def _image_environment(tmp_path: Path, **extra: str) -> dict[str, str]:
    """This process's environment, as the image sets it: the Dockerfile's ENV (DAGSTER_HOME moved to a
    temporary folder with no dagster.yaml: the code server does not need the Postgres instance) and the
    production placeholders. No GENESYS_* variable of the test run leaks in."""
    image_env, _ = _dockerfile()
    environment = {k: v for k, v in os.environ.items() if not k.startswith(("GENESYS_", "SNOWFLAKE_"))}
    dagster_home = tmp_path / "dagster_home"
    dagster_home.mkdir(exist_ok=True)
    return {
        **environment,
        **image_env,
        "DAGSTER_HOME": str(dagster_home),
        "PATH": f"{BIN}{os.pathsep}{environment.get('PATH', '')}",
        **PRODUCTION_PLACEHOLDERS,
        **extra,
    }


def _image_command(port: int) -> list[str]:
    _, cmd = _dockerfile()
    cmd = list(cmd)
    cmd[cmd.index("--port") + 1] = str(port)
    cmd[cmd.index("--host") + 1] = "127.0.0.1"
    return cmd


@contextlib.contextmanager
def _code_server(tmp_path: Path, **extra: str) -> Iterator[int]:
    """The image's command, running on a free port with the image's environment and `extra`; its port
    once it answers health checks."""
    port = free_port("127.0.0.1")
    log_path = tmp_path / "code_server.log"
    with log_path.open("wb") as log:
        server = start_session(_image_command(port), cwd=ROOT, env=_image_environment(tmp_path, **extra),
                               stdout=log, stderr=log)  # fmt: skip
        try:
            deadline = time.monotonic() + 180
            while subprocess.run([str(BIN / "dagster"), "api", "grpc-health-check", "--port", str(port)],
                                 capture_output=True).returncode:  # fmt: skip
                assert server.poll() is None, log_path.read_text()[-3000:]
                assert time.monotonic() < deadline, "the code server did not answer health checks within 180 s"
                time.sleep(1)
            yield port
        finally:
            stop_session(server, "code server")


def _location_entries(tmp_path: Path, code_server_port: int) -> list[dict[str, Any]]:
    """The workspace as a webserver reading deploy/workspace-grpc.yaml sees it, once it has loaded."""
    web_port = free_port("127.0.0.1")
    environment = _image_environment(
        tmp_path, DAGSTER_CODE_SERVER_HOST="127.0.0.1", DAGSTER_CODE_SERVER_PORT=str(code_server_port)
    )
    workspace = ROOT / "deploy" / "workspace-grpc.yaml"
    query = """{ workspaceOrError { ... on Workspace { locationEntries { name loadStatus locationOrLoadError {
        __typename ... on PythonError { message causes { message } }
        ... on RepositoryLocation { repositories { jobs { name } } } } } } } }"""
    log_path = tmp_path / "webserver.log"
    with log_path.open("wb") as log:
        webserver = start_session(
            [str(BIN / "dagster-webserver"), "--host", "127.0.0.1", "--port", str(web_port), "--workspace", str(workspace)],
            cwd=tmp_path, env=environment, stdout=log, stderr=log,
        )  # fmt: skip
        try:
            deadline = time.monotonic() + 180
            while True:
                try:
                    entries = graphql(f"http://127.0.0.1:{web_port}", query, timeout=10)["workspaceOrError"]["locationEntries"]
                except OSError:
                    entries = []
                if entries and entries[0]["loadStatus"] == "LOADED":
                    return entries
                assert webserver.poll() is None, log_path.read_text()[-3000:]
                assert time.monotonic() < deadline, "the webserver did not load the workspace within 180 s"
                time.sleep(1)
        finally:
            stop_session(webserver, "webserver")


@pytest.mark.slow
def test_the_image_command_serves_the_code_location_to_a_webserver(tmp_path: Path) -> None:
    with _code_server(tmp_path) as port:
        entries = _location_entries(tmp_path, port)
    _, location_name = _pyproject_location()
    assert [entry["name"] for entry in entries] == [location_name]
    location = entries[0]["locationOrLoadError"]
    assert location["__typename"] == "RepositoryLocation", location
    jobs = {job["name"] for repo in location["repositories"] for job in repo["jobs"]}
    assert {"genesys_conversations", "genesys_dimensions"} <= jobs


@pytest.mark.slow
def test_a_bad_production_setting_shows_in_the_ui_naming_the_variable(tmp_path: Path) -> None:
    # Dagster's code server keeps serving a definitions error rather than exiting, so that the UI can show
    # it: the user reads it on the code location, with the variable and the value.
    with _code_server(tmp_path, GENESYS_PARTITION_TIMEZONE="Mars/Olympus") as port:
        (entry,) = _location_entries(tmp_path, port)
    error = entry["locationOrLoadError"]
    assert error["__typename"] == "PythonError", error
    # Dagster wraps the definitions' error ("Error occurred during the loading of Dagster definitions");
    # ours is its cause, shown below it in the UI.
    messages = "\n".join([error["message"], *(cause["message"] for cause in error["causes"])])
    assert "GENESYS_PARTITION_TIMEZONE" in messages and "Mars/Olympus" in messages


def test_helm_values_and_dagster_plus_name_the_code_location_the_code_defines() -> None:
    module, location_name = _pyproject_location()
    _, cmd = _dockerfile()
    assert (_option(cmd, "--module-name"), _option(cmd, "--location-name")) == (module, location_name)

    values = yaml.safe_load((ROOT / "deploy" / "helm" / "values.yaml").read_text())
    (deployment,) = values["dagster-user-deployments"]["deployments"]
    args = deployment["codeServerArgs"]
    assert (_option(args, "--module-name"), _option(args, "--location-name")) == (module, location_name)

    (location,) = yaml.safe_load((ROOT / "dagster_cloud.yaml").read_text())["locations"]
    assert location["location_name"] == location_name
    assert location["code_source"]["module_name"] == module


def test_helm_values_carry_the_instance_limits_of_dagster_yaml() -> None:
    instance = yaml.safe_load((ROOT / "dagster.yaml").read_text())["concurrency"]
    helm = yaml.safe_load((ROOT / "deploy" / "helm" / "values.yaml").read_text())["concurrency"]
    assert helm["pools"] == {
        "defaultLimit": instance["pools"]["default_limit"],
        "granularity": instance["pools"]["granularity"],
        "opGranularityRunBuffer": instance["pools"]["op_granularity_run_buffer"],
    }
    assert helm["runs"]["maxConcurrentRuns"] == instance["runs"]["max_concurrent_runs"]
    assert helm["runs"]["tagConcurrencyLimits"] == instance["runs"]["tag_concurrency_limits"]
    coordinator = yaml.safe_load((ROOT / "dagster.yaml").read_text())["run_coordinator"]["config"]
    daemon = yaml.safe_load((ROOT / "deploy" / "helm" / "values.yaml").read_text())["dagsterDaemon"]
    queued = daemon["runCoordinator"]["config"]["queuedRunCoordinator"]
    assert queued == {"dequeueIntervalSeconds": coordinator["dequeue_interval_seconds"]}


def test_compose_points_the_webserver_and_daemon_at_the_code_server() -> None:
    compose = yaml.safe_load((ROOT / "deploy" / "compose" / "docker-compose.yaml").read_text())
    services = compose["services"]
    assert set(services) == {"postgres", "code-server", "webserver", "daemon"}
    workspace = yaml.safe_load((ROOT / "deploy" / "workspace-grpc.yaml").read_text())
    (grpc,) = [entry["grpc_server"] for entry in workspace["load_from"]]
    image_env = services["code-server"]["environment"]
    assert image_env[grpc["host"]["env"]] == "code-server"
    _, cmd = _dockerfile()
    assert image_env[grpc["port"]["env"]] == _option(cmd, "--port")
    # The Dockerfile installs deploy/workspace-grpc.yaml as ./workspace.yaml, which both commands read.
    assert "COPY deploy/workspace-grpc.yaml ./workspace.yaml" in (ROOT / "Dockerfile").read_text()
    for name in ("webserver", "daemon"):
        assert _option(services[name]["command"], "--workspace") == "workspace.yaml"


def _env_var_names(node: Any) -> set[str]:
    """Every `{env: NAME}` in a parsed YAML document."""
    if isinstance(node, dict):
        own = {node["env"]} if set(node) == {"env"} else set()
        return own.union(*(_env_var_names(value) for value in node.values()))
    if isinstance(node, list):
        return set().union(*(_env_var_names(value) for value in node))
    return set()


def test_env_example_names_every_variable_a_production_deployment_reads() -> None:
    listed = set(re.findall(r"^#?\s*([A-Z][A-Z0-9_]+)=", (ROOT / ".env.example").read_text(), re.MULTILINE))
    resources = (ROOT / "genesys_pipeline" / "defs" / "resources.py").read_text()
    env_vars = set(re.findall(r'EnvVar\("([A-Z0-9_]+)"\)', resources))
    instance = _env_var_names(yaml.safe_load((ROOT / "deploy" / "dagster-postgres.yaml").read_text()))
    assert env_vars and instance
    assert (env_vars | instance) - listed == set()
    assert listed - {"GENESYS_PIPELINE_ENV"} <= set(
        re.findall(r"`([A-Z][A-Z0-9_]+)`", (ROOT / "docs" / "configuration.md").read_text())
        + re.findall(r"\b(DAGSTER_PG_[A-Z]+)\b", (ROOT / "docs" / "deployment.md").read_text())
    )


def test_the_instance_of_dagster_yaml_dequeues_every_second_within_the_run_limits(tmp_path: Path) -> None:
    """The explicit run coordinator (for its 1 s dequeue) keeps the `concurrency:` run limits in force."""
    import dagster as dg
    from dagster._core.run_coordinator import QueuedRunCoordinator

    (tmp_path / "dagster.yaml").write_text((ROOT / "dagster.yaml").read_text())
    with dg.DagsterInstance.from_config(str(tmp_path)) as instance:
        assert isinstance(instance.run_coordinator, QueuedRunCoordinator)
        assert instance.run_coordinator.dequeue_interval_seconds == 1
        queue = instance.get_concurrency_config().run_queue_config
        assert queue.max_concurrent_runs == 4
        assert queue.tag_concurrency_limits == [{"key": "dagster/backfill", "limit": 2}]
        assert queue.op_concurrency_slot_buffer == 1
