"""A table's columns with their Arrow and Snowflake types: the one vocabulary of every table schema."""

from __future__ import annotations

import dataclasses

import pyarrow as pa

# Genesys sends millisecond UTC instants; Snowflake keeps the offset (TIMESTAMP_TZ).
TIMESTAMP = pa.timestamp("ms", tz="UTC")


@dataclasses.dataclass(frozen=True)
class Column:
    name: str
    arrow_type: pa.DataType
    snowflake_type: str
    nullable: bool = True
    description: str = ""


@dataclasses.dataclass(frozen=True)
class Table:
    name: str
    key: tuple[str, ...]  # unique within a partition (or, for a dimension, within the snapshot)
    columns: tuple[Column, ...]
    description: str

    @property
    def arrow_schema(self) -> pa.Schema:
        return pa.schema([pa.field(c.name, c.arrow_type, nullable=c.nullable) for c in self.columns])

    @property
    def column_names(self) -> list[str]:
        return [column.name for column in self.columns]


def text(name: str, description: str = "", nullable: bool = True) -> Column:
    return Column(name, pa.string(), "VARCHAR", nullable, description)


def number(name: str, description: str = "", nullable: bool = True) -> Column:
    return Column(name, pa.int64(), "NUMBER(38,0)", nullable, description)


def timestamp(name: str, description: str = "", nullable: bool = True) -> Column:
    return Column(name, TIMESTAMP, "TIMESTAMP_TZ", nullable, description)


def flag(name: str, description: str = "", nullable: bool = True) -> Column:
    return Column(name, pa.bool_(), "BOOLEAN", nullable, description)


def json_list(name: str, description: str) -> Column:
    """A list value: JSON array text in Parquet and CSV, a VARIANT array in Snowflake."""
    return Column(name, pa.string(), "VARIANT", True, description + " (JSON array)")
