"""The published person columns as SQL text, derived from `OUTPUT_COLUMNS` (never written out by hand).

The SQL files under `sql/` name these columns through `{placeholders}` that `Warehouse.sql` fills in
(`flows.sql_files.SqlScript.expanded`); `tests/unit/test_person_columns.py` checks that no file spells the
list out again. The migrations keep their literal DDL (checksummed history); the same test ties the migrated
tables to the declaration.
"""

from __future__ import annotations

from flows.anonymise.policy import OUTPUT_COLUMNS

# The column the merge matches on: never updated, so not in the change test nor in the update list.
MERGE_KEY = "person_key"


def person_column_lists() -> dict[str, str]:
    """SQL fragments, by placeholder name, that list the published person columns in declaration order.

    `person_columns`: the bare names; `batch_person_columns`: the names on the merge's source alias `batch`;
    `person_changed`: the merge's change test, target alias `staged` against `batch`, every column but the
    merge key; `person_updates`: the merge's `update set` assignments, every column but the merge key.
    """
    names = [column.name for column in OUTPUT_COLUMNS]
    if MERGE_KEY not in names:
        raise ValueError(f"the merge key {MERGE_KEY} is not an output column")
    changeable = [name for name in names if name != MERGE_KEY]
    return {
        "person_columns": ", ".join(names),
        "batch_person_columns": ", ".join(f"batch.{name}" for name in names),
        "person_changed": " or ".join(f"staged.{name} <> batch.{name}" for name in changeable),
        "person_updates": ", ".join(f"{name} = batch.{name}" for name in changeable),
    }
