"""The analyst views (contracts/views.py): created, or replaced by the current definition, on each load.

    CREATE OR REPLACE VIEW <view> AS SELECT CAST(<column> AS <type>) AS <COLUMN>, ... FROM (<the view's SELECT>)

Every column is cast to the contract's type, so the view's types are the documented ones on any engine.
The SELECT names the conversation tables fully qualified (database.schema.table): Snowflake resolves a
view's names when it is queried, and a reader's session may be in another schema.
"""

from __future__ import annotations

import string
from typing import Sequence

from genesys_pipeline.contracts.columns import Table
from genesys_pipeline.contracts.tables import TABLES
from genesys_pipeline.contracts.views import VIEWS, View
from genesys_pipeline.resources.warehouse import SnowflakeTarget
from genesys_pipeline.steps.snowflake_session import SnowflakeSession


def create_view_sql(view: View, name: str, table_names: dict[str, str]) -> str:
    casts = ",\n    ".join(
        f"CAST(v.{column.name} AS {column.snowflake_type}) AS {column.name.upper()}" for column in view.table.columns
    )
    return f"CREATE OR REPLACE VIEW {name} AS\nSELECT\n    {casts}\nFROM ({view.select_sql(table_names)}) v"


class ViewError(Exception):
    """A view could not be created; the message names it and what the role needs."""


def tables_read(view: View) -> set[str]:
    """The conversation tables the view's SELECT reads (its `{table}` placeholders)."""
    return {field for _, field, _, _ in string.Formatter().parse(view.select) if field}


def create_views(session: SnowflakeSession, target: SnowflakeTarget, tables: Sequence[Table] = TABLES) -> list[str]:
    """Create or replace every view whose tables are all among `tables` (GENESYS_TABLES: a view over a
    table left out is neither created nor replaced) in the session's target schema (resolved, with the
    tables in place: after `WarehouseLoader.prepare`); returns their qualified names. DDL: outside
    transactions."""
    table_names = {table.name: session.qualified(target.table_name(table.name)) for table in tables}
    created = []
    for view in VIEWS:
        if not tables_read(view) <= set(table_names):
            continue
        name = session.qualified(target.table_name(view.name))
        try:
            session.execute(create_view_sql(view, name, table_names))
        except Exception as error:
            raise ViewError(
                f"Could not create the view {name}: {error}. The pipeline's role needs CREATE VIEW on the "
                f"schema {session.database}.{session.schema} (see docs/snowflake-setup.md)"
            ) from error
        created.append(name)
    return created
