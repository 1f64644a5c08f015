"""The package's layout rules, checked from the code itself.

- The production code location imports nothing of `genesys_pipeline.local` (the emulator, the stand-ins,
  the demo) and none of the stand-ins' libraries.
- The import graph of `genesys_pipeline` has no cycle.
- Only `defs/` uses Dagster's decorators; `genesys/` and `contracts/` import no Dagster at all.
"""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

from genesys_pipeline_tests.conftest import PRODUCTION_PLACEHOLDERS

PACKAGE = Path(__file__).resolve().parents[1] / "genesys_pipeline"

_PROBE = """
import json, sys
import genesys_pipeline.definitions as location
location.defs.get_repository_def()  # build everything the code server would
print(json.dumps(sorted(name for name in sys.modules
                        if name.startswith("genesys_pipeline.local") or name.split(".")[0] in ("fakesnow", "moto"))))
"""


def _imported_in(environment: str) -> list[str]:
    env = {**os.environ, **PRODUCTION_PLACEHOLDERS, "GENESYS_PIPELINE_ENV": environment}
    done = subprocess.run([sys.executable, "-W", "ignore", "-c", _PROBE], env=env, capture_output=True, text=True,
                          timeout=180, cwd=PACKAGE.parent)  # fmt: skip
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_the_production_code_location_imports_nothing_of_the_local_tooling() -> None:
    assert _imported_in("production") == []


def test_the_local_code_location_does_load_the_local_tooling() -> None:
    # The other side of the probe above: it would pass vacuously if it could not see these modules.
    loaded = _imported_in("local")
    assert "genesys_pipeline.local.resources" in loaded and "genesys_pipeline.local.stand_ins" in loaded


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> list[tuple[str, bool]]:
    """(module, when the file is imported?) for every `genesys_pipeline` module a file imports. Imports
    inside functions run later (the lazy import of the local tooling); module-level ones, including
    those under `if TYPE_CHECKING:`, are part of the import graph."""
    tree = ast.parse(path.read_text())
    found = []

    def visit(node: ast.AST, at_load: bool) -> None:
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
        elif isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        else:
            names = []
        found.extend((name, at_load) for name in names if name.startswith("genesys_pipeline"))
        inside_function = isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
        for child in ast.iter_child_nodes(node):
            visit(child, at_load and not inside_function)

    visit(tree, True)
    return found


def _graph() -> dict[str, set[str]]:
    modules = {_module_name(path): path for path in PACKAGE.rglob("*.py")}
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        for target, at_top in _imports(path):
            if at_top and target in modules and target != name:
                graph[name].add(target)
    return graph


def test_the_package_import_graph_has_no_cycle() -> None:
    graph = _graph()
    assert len(graph) > 40  # the walk found the package
    state: dict[str, str] = {}
    cycles: list[list[str]] = []

    def visit(node: str, trail: list[str]) -> None:
        state[node] = "open"
        for nxt in sorted(graph[node]):
            if state.get(nxt) == "open":
                cycles.append(trail[trail.index(nxt):] + [nxt])
            elif nxt not in state:
                visit(nxt, trail + [nxt])
        state[node] = "done"

    for start in sorted(graph):
        if start not in state:
            visit(start, [start])
    assert cycles == []


def _dagster_usage(path: Path) -> tuple[bool, list[str]]:
    """Whether the file imports dagster, and the dagster decorators it applies."""
    tree = ast.parse(path.read_text())
    imports = any(
        (isinstance(n, ast.Import) and any(a.name.split(".")[0] == "dagster" for a in n.names))
        or (isinstance(n, ast.ImportFrom) and (n.module or "").split(".")[0] == "dagster")
        for n in ast.walk(tree)
    )
    decorators = []
    for node in ast.walk(tree):
        for decorator in getattr(node, "decorator_list", []):
            target = decorator.func if isinstance(decorator, ast.Call) else decorator
            text = ast.unparse(target)
            if text.startswith("dg."):
                decorators.append(f"{path.name}:{node.lineno} @{text}")
    return imports, decorators


def test_only_defs_applies_dagster_decorators_and_the_api_client_and_contracts_import_no_dagster() -> None:
    outside_defs = [p for p in PACKAGE.rglob("*.py") if "defs" not in p.relative_to(PACKAGE).parts]
    decorated = [d for p in outside_defs for d in _dagster_usage(p)[1]]
    assert decorated == []
    plain = [p for sub in ("genesys", "contracts") for p in (PACKAGE / sub).rglob("*.py")]
    assert plain, "genesys/ and contracts/ hold modules"
    assert [str(p.relative_to(PACKAGE)) for p in plain if _dagster_usage(p)[0]] == []
