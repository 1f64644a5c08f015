"""The docs keep up with the code: every environment variable the package reads is in
docs/configuration.md, and no page links outside the repository."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# How the package reads a variable: os.environ.get("X"), os.environ["X"], dg.EnvVar("X"), and
# settings.py's readers, which take the environment first: _text(environ, "X", ...).
READS = re.compile(r'(?:environ\.get\(|environ\[|EnvVar\(|\(environ, )\s*"([A-Z][A-Z0-9_]+)"')


def _variables_read() -> dict[str, str]:
    found: dict[str, str] = {}
    for path in sorted((ROOT / "genesys_pipeline").rglob("*.py")):
        for name in READS.findall(path.read_text()):
            found.setdefault(name, str(path.relative_to(ROOT)))
    return found


def test_every_variable_the_code_reads_is_documented_in_configuration_md() -> None:
    read = _variables_read()
    assert {"GENESYS_PIPELINE_ENV", "GENESYS_CLIENT_SECRET", "GENESYS_STEP_RETRIES"} <= set(read)  # the scan works
    documented = set(re.findall(r"`([A-Z][A-Z0-9_]+)`", (ROOT / "docs" / "configuration.md").read_text()))
    missing = {name: where for name, where in read.items() if name not in documented}
    assert not missing, f"read by the code but not in docs/configuration.md: {missing}"


def test_no_page_links_outside_the_repository() -> None:
    pages = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
    for page in pages:
        for target in re.findall(r"\]\(([^)#]+)", page.read_text()):
            if target.startswith(("http://", "https://", "mailto:")):
                continue
            resolved = (page.parent / target).resolve()
            assert resolved.is_relative_to(ROOT), f"{page.name} links outside the repository: {target}"
            assert resolved.exists(), f"{page.name} links to a missing file: {target}"


def test_every_tunable_resource_field_has_its_variable_documented() -> None:
    from genesys_pipeline.settings import (
        GENESYS_TUNABLE_FIELDS,
        SNOWFLAKE_TUNABLE_FIELDS,
        tuning_variable,
    )

    documented = set(re.findall(r"`([A-Z][A-Z0-9_]+)`", (ROOT / "docs" / "configuration.md").read_text()))
    variables = [tuning_variable(f, "GENESYS_") for f in GENESYS_TUNABLE_FIELDS]
    variables += [tuning_variable(f, "GENESYS_SNOWFLAKE_") for f in SNOWFLAKE_TUNABLE_FIELDS]
    assert [name for name in variables if name not in documented] == []
