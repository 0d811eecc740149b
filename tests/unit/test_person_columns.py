"""The published person columns are declared once (OUTPUT_COLUMNS): the SQL files name them through
placeholders that `Warehouse.sql` fills in, no file spells the list by hand, and the migrated tables agree."""

from __future__ import annotations

import re
from pathlib import Path

import duckdb
import pytest
import sqlglot
from sqlglot import exp

from flows.anonymise.columns import MERGE_KEY, person_column_lists
from flows.anonymise.policy import OUTPUT_COLUMNS
from flows.sql_files import SqlScript, bind_named, sql_root
from flows.warehouse.base import Warehouse
from flows.warehouse.duckdb_warehouse import DuckDBWarehouse
from flows.warehouse.snowflake_warehouse import SnowflakeWarehouse

NAMES = tuple(column.name for column in OUTPUT_COLUMNS)
CHANGEABLE = tuple(name for name in NAMES if name != MERGE_KEY)
# The statements that list the person columns (stems, as the warehouse asks for them).
LISTING = (
    "staging/merge_into_persons",
    "staging/insert_persons_from_rebuild",
    "landing/insert_persons",
    "landing/select_batch_persons",
)


def warehouses(tmp_path: Path) -> list[Warehouse]:
    """One warehouse per engine, never connected: only their `sql` is used."""
    return [DuckDBWarehouse(tmp_path / "w.duckdb"), SnowflakeWarehouse({})]


class _AnyValue(dict):  # type: ignore[type-arg]
    def __contains__(self, key: object) -> bool:
        return True

    def __getitem__(self, key: object) -> None:
        return None


def parsed(warehouse: Warehouse, stem: str) -> exp.Expression:
    """The warehouse's statement, as the engine would receive it, parsed in its dialect."""
    script = warehouse.sql(stem)
    statements = script.statements()
    assert len(statements) == 1, stem
    text, _ = bind_named(statements[0].format(target="staging.persons"), _AnyValue())
    return sqlglot.parse_one(text, read=warehouse.dialect)


def names(expressions: list[exp.Expression], table: str | None = None) -> tuple[str, ...]:
    """The column names of a column list (of `table`'s columns where given), in order."""
    found = []
    for expression in expressions:
        assert isinstance(expression, exp.Column | exp.Identifier), expression
        if isinstance(expression, exp.Column):
            assert expression.table == (table or ""), expression
        found.append(expression.name)
    return tuple(found)


def person_prefix(found: tuple[str, ...], expected: tuple[str, ...] = NAMES) -> tuple[str, ...]:
    """The person columns at the head of a list; the rest must be metadata, never a person column again."""
    assert not set(found[len(expected) :]) & set(NAMES), found
    return found[: len(expected)]


def test_the_fragments_follow_the_declaration() -> None:
    lists = person_column_lists()
    assert lists["person_columns"].split(", ") == list(NAMES)
    assert lists["batch_person_columns"].split(", ") == [f"batch.{name}" for name in NAMES]
    assert lists["person_changed"].split(" or ") == [f"staged.{name} <> batch.{name}" for name in CHANGEABLE]
    assert lists["person_updates"].split(", ") == [f"{name} = batch.{name}" for name in CHANGEABLE]
    assert all(re.fullmatch(r"[a-z_]+", name) for name in lists), "the sqlfluff param_regex reads [a-z_]+"


def test_the_merge_names_the_declared_columns_in_order(tmp_path: Path) -> None:
    for warehouse in warehouses(tmp_path):
        merge = parsed(warehouse, "staging/merge_into_persons")
        assert isinstance(merge, exp.Merge)
        source = merge.args["using"].this
        assert person_prefix(tuple(e.alias_or_name for e in source.expressions)) == NAMES
        matched, not_matched = merge.args["whens"].expressions
        changes = list(matched.args["condition"].unnest().flatten())
        assert all(isinstance(change, exp.NEQ) for change in changes), changes
        assert [(c.this.table, c.this.name, c.expression.table, c.expression.name) for c in changes] == [
            ("staged", name, "batch", name) for name in CHANGEABLE
        ]
        update = matched.args["then"]
        assigned = tuple(e.this.name for e in update.expressions)
        assert person_prefix(assigned, CHANGEABLE) == CHANGEABLE
        values = update.expressions[: len(CHANGEABLE)]
        assert [(e.expression.table, e.expression.name) for e in values] == [("batch", n) for n in CHANGEABLE]
        insert = not_matched.args["then"]
        assert person_prefix(names(insert.this.expressions)) == NAMES
        assert person_prefix(names(insert.expression.expressions, "batch")) == NAMES


@pytest.mark.parametrize(
    "stem", ["staging/insert_persons_from_rebuild", "landing/insert_persons", "landing/select_batch_persons"]
)
def test_inserts_and_the_batch_select_name_the_declared_columns_in_order(stem: str, tmp_path: Path) -> None:
    for warehouse in warehouses(tmp_path):
        if stem == "landing/insert_persons" and warehouse.dialect != "duckdb":
            continue  # Snowflake copies the staged Parquet file by column name (copy_into_landing)
        statement = parsed(warehouse, stem)
        select = statement if isinstance(statement, exp.Select) else statement.expression
        assert isinstance(select, exp.Select)
        assert person_prefix(tuple(e.alias_or_name for e in select.expressions[: len(NAMES)])) == NAMES
        if isinstance(statement, exp.Insert):
            assert person_prefix(names(statement.this.expressions)) == NAMES
        else:
            assert len(select.expressions) == len(NAMES)


def spelled_person_columns(text: str) -> list[str]:
    """The person columns a SQL text names as words, outside comments."""
    code = re.sub(r"--[^\n]*", "", text)
    return [name for name in NAMES if re.search(rf"\b{name}\b", code)]


def spells_the_list(text: str) -> bool:
    """A hand-written person column list: every column, or every column but one, named in one file."""
    return len(spelled_person_columns(text)) >= len(NAMES) - 1


def test_no_sql_file_spells_the_person_columns_by_hand(tmp_path: Path) -> None:
    root = sql_root()
    files = [
        path
        for path in sorted(root.rglob("*.sql"))
        if not (path.is_relative_to(root / "migrations") or path.is_relative_to(root / "dbt"))
    ]
    spelled = [str(path.relative_to(root)) for path in files if spells_the_list(path.read_text("utf-8"))]
    assert spelled == [], "use {person_columns} and its kin (flows.anonymise.columns) instead"
    # The check bites: the statements as the engine gets them do spell the list, and so do the migrations.
    house = DuckDBWarehouse(tmp_path / "w.duckdb")
    assert all(spells_the_list(house.sql(stem).text) for stem in LISTING)
    assert spells_the_list((root / "migrations" / "V1_1__create_landing_tables.sql").read_text("utf-8"))
    using = {str(p.relative_to(root)) for p in files if "{person_columns}" in p.read_text("utf-8")}
    assert using >= {f"{stem}.sql" for stem in LISTING if stem != "landing/insert_persons"}
    assert "landing/insert_persons.duckdb.sql" in using


def test_the_migrated_person_tables_hold_the_declared_columns_in_order(tmp_path: Path) -> None:
    house = DuckDBWarehouse(tmp_path / "warehouse.duckdb")
    house.migrate()
    engine_types = {"string": "VARCHAR", "date32[day]": "DATE"}
    declared = [(column.name, engine_types[str(column.type)]) for column in OUTPUT_COLUMNS]
    with duckdb.connect(str(house.path), read_only=True) as connection:
        for schema, table in (("landing", "persons"), ("staging", "persons"), ("staging", "persons_rebuild")):
            columns = connection.execute(
                "select column_name, data_type from duckdb_columns()"
                " where schema_name = ? and table_name = ? order by column_index",
                [schema, table],
            ).fetchall()
            assert columns[: len(declared)] == declared, (schema, table)
            assert not {name for name, _ in columns[len(declared) :]} & set(NAMES), (schema, table)


def test_expanding_fills_in_only_the_given_lists() -> None:
    script = SqlScript(
        "x.sql",
        "-- {person_columns} in a comment stays\n"
        "merge into {target} as staged using (select {person_columns}, '{person_columns}' as s"
        " from landing.persons where run_id = :run_id) as batch on {unknown}",
    )
    expanded = script.expanded({"person_columns": "a, b", "run_id": "no"})
    assert expanded.text == (
        "-- {person_columns} in a comment stays\n"
        "merge into {target} as staged using (select a, b, '{person_columns}' as s"
        " from landing.persons where run_id = :run_id) as batch on {unknown}"
    )
    assert expanded.name == script.name
    assert expanded.expanded({"person_columns": "c"}) == expanded
    assert script.expanded({}) is script


def test_migrations_are_never_expanded() -> None:
    migrations = sql_root() / "migrations"
    assert not [p.name for p in migrations.glob("*.sql") if re.search(r"\{[a-z_]+\}", p.read_text("utf-8"))]
