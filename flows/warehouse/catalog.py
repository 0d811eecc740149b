"""The catalog repository: what lineage reads of the warehouse (a run's batch rows, the layers' columns, a
relation's row count)."""

from __future__ import annotations

from typing import Any

from flows.sql_files import load_sql
from flows.warehouse.base import Cursor, Warehouse


def run_batch_rows(warehouse: Warehouse, cursor: Cursor, run_id: str) -> list[tuple[Any, ...]]:
    """The run's batches as landing.batches holds them."""
    return cursor.execute(warehouse.sql("lineage/select_run_batches"), run_id=run_id)


def layer_columns(warehouse: Warehouse, cursor: Cursor) -> list[tuple[Any, ...]]:
    """(schema, relation, column, type) of every relation in the five layers."""
    return cursor.execute(warehouse.sql("lineage/select_layer_columns"))


def count_rows(cursor: Cursor, quoted_relation: str) -> int:
    """Rows in one relation, named as quoted schema.table identifiers."""
    count = load_sql("lineage/count_relation_rows.sql").statements()[0]
    return int(cursor.run(count.format(table=quoted_relation))[0][0])
