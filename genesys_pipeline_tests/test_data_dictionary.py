"""docs/data-dictionary.md cannot drift from the contracts.

Each table's and view's section (description, key, and every column with its Snowflake type and
definition) is rendered here from contracts/ (tables.py, views.py, dimension_tables.py) and must appear
in the document exactly, between its markers. After changing a contract, rewrite those sections with

    .venv/bin/python -m genesys_pipeline_tests.test_data_dictionary

and review the diff. The prose around the sections, and the diagram, are written by hand; the tests
check that the diagram and the load-history table name exactly the tables and columns there are.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Mapping, Optional

from genesys_pipeline.contracts.columns import Table
from genesys_pipeline.contracts.dimension_tables import DIMENSIONS
from genesys_pipeline.contracts.tables import TABLES
from genesys_pipeline.contracts.views import VIEWS
from genesys_pipeline.steps.snowflake_sql import LOAD_HISTORY_COLUMNS

DICTIONARY = Path(__file__).resolve().parents[1] / "docs" / "data-dictionary.md"
_BLOCK = re.compile(r"<!-- generated from contracts: (\w+) -->\n(.*?)<!-- end generated -->\n", re.S)


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def render(table: Table, kind: str, sources: Optional[Mapping[str, tuple[str, ...]]] = None) -> str:
    """A table's section body: what it is, its key, and one row per column."""
    key = ", ".join(f"`{name}`" for name in table.key)
    scope = "unique within a snapshot" if kind == "dimension" else "unique within a partition_date"
    lines = [
        f"{kind.capitalize()} `{table.name.upper()}`. {table.description}",
        "",
        f"Key: {key} ({scope}).",
        "",
        "| column | type | definition |",
        "|---|---|---|",
    ]
    for column in table.columns:
        definition = column.description
        if sources and column.name in sources:  # a dimension column: the listing entity's field
            field = "`" + ".".join(sources[column.name]) + "`"
            definition = f"{field}: {definition}" if definition else field
        not_null = " NOT NULL" if not column.nullable else ""
        lines.append(f"| `{column.name}` | {column.snowflake_type}{not_null} | {_cell(definition)} |")
    return "\n".join(lines) + "\n"


def expected_blocks() -> dict[str, str]:
    blocks = {table.name: render(table, "table") for table in TABLES}
    blocks |= {view.name: render(view.table, "view") for view in VIEWS}
    blocks |= {dim.name: render(dim.table, "dimension", dim.sources) for dim in DIMENSIONS}
    return blocks


def documented_blocks(text: str) -> dict[str, str]:
    found = _BLOCK.findall(text)
    blocks = dict(found)
    assert len(blocks) == len(found), "a table's section appears twice"
    return blocks


def rewrite(path: Path = DICTIONARY) -> None:
    """Replace each generated section with the contracts' current one (the markers must be there)."""
    expected = expected_blocks()

    def current(match: re.Match[str]) -> str:
        return f"<!-- generated from contracts: {match[1]} -->\n{expected[match[1]]}<!-- end generated -->\n"

    path.write_text(_BLOCK.sub(current, path.read_text()))


# ##### THE TESTS


def test_every_table_and_view_has_its_section_exactly_as_the_contracts_say() -> None:
    documented, expected = documented_blocks(DICTIONARY.read_text()), expected_blocks()
    assert sorted(documented) == sorted(expected), "tables without a section, or sections without a table"
    stale = [name for name in expected if documented[name] != expected[name]]
    assert not stale, f"sections out of date: {stale}; run python -m genesys_pipeline_tests.test_data_dictionary"


def test_every_column_has_a_definition() -> None:
    tables = [*TABLES, *(view.table for view in VIEWS)]
    undefined = [f"{t.name}.{c.name}" for t in tables for c in t.columns if not c.description.strip()]
    undefined += [
        f"{d.name}.{c.name}" for d in DIMENSIONS for c in d.table.columns
        if not c.description.strip() and c.name not in d.sources
    ]  # fmt: skip
    assert undefined == []


def test_the_diagram_shows_every_table_and_view() -> None:
    text = DICTIONARY.read_text()
    (diagram,) = re.findall(r"```mermaid\nerDiagram\n(.*?)```", text, re.S)
    entities = set(re.findall(r"^\s*(\w+) \{", diagram, re.M))
    names = {t.name.upper() for t in TABLES} | {v.name.upper() for v in VIEWS} | {d.name.upper() for d in DIMENSIONS}
    assert entities == names
    related = set(re.findall(r"^\s*(\w+) [|}{o]{2}--[|}{o]{2} (\w+)", diagram, re.M))
    assert {name for pair in related for name in pair} == names, "every entity joins something"


def test_the_load_history_table_lists_its_columns() -> None:
    section = DICTIONARY.read_text().split("## GENESYS_LOAD_HISTORY", 1)[1].split("\n## ", 1)[0]
    rows = re.findall(r"^\| `(\w+)` \| ([^|]+) \|", section, re.M)
    assert [(name, kind.strip()) for name, kind in rows] == list(LOAD_HISTORY_COLUMNS)


def test_the_renderer_notices_a_change() -> None:
    """A column added to a contract changes its section, so the first test would fail."""
    import dataclasses

    from genesys_pipeline.contracts.columns import number

    table = TABLES[0]
    wider = dataclasses.replace(table, columns=(*table.columns, number("new_metric_ms", "a new sum")))
    assert render(wider, "table") != render(table, "table")
    assert "| `new_metric_ms` | NUMBER(38,0) | a new sum |" in render(wider, "table")


if __name__ == "__main__":
    rewrite(Path(sys.argv[1]) if len(sys.argv) > 1 else DICTIONARY)
