"""SQL files: named binds, statement splitting, migrations; every file parses for both engines."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlglot

from flows.anonymise.columns import person_column_lists
from flows.sql_files import (
    SqlScript,
    bind_named,
    load_sql,
    sql_root,
    versioned_migrations,
)


def test_named_binds_become_positional_in_order() -> None:
    sql, values = bind_named("select * from t where a = :a and b = :b or c = :a", {"a": 1, "b": 2})
    assert sql == "select * from t where a = ? and b = ? or c = ?"
    assert values == [1, 2, 1]


def test_colons_in_strings_and_comments_are_not_binds() -> None:
    sql, values = bind_named("select ':x' as s, 1 -- :y\nfrom t where a = :a", {"a": 5})
    assert sql == "select ':x' as s, 1 -- :y\nfrom t where a = ?"
    assert values == [5]


def test_a_missing_bind_value_is_an_error() -> None:
    with pytest.raises(KeyError, match="run_id"):
        bind_named("delete from t where run_id = :run_id", {})


def test_statements_split_at_line_end_semicolons() -> None:
    script = SqlScript("x.sql", "-- header\ncreate schema a;\n\ncreate schema b; -- why\n")
    assert script.statements() == ["-- header\ncreate schema a", "create schema b"]
    with pytest.raises(ValueError, match="2 statements"):
        script.bind()


def test_migrations_are_versioned_and_ordered() -> None:
    migrations = versioned_migrations()
    assert [m.version_label for m in migrations] == sorted(
        (m.version_label for m in migrations), key=lambda label: tuple(int(p) for p in label.split("."))
    )
    assert migrations[0].script.name == "migrations/V1_0__create_layer_schemas.sql"


def test_the_run_trend_counts_are_integers_and_its_rates_doubles(tmp_path: Path) -> None:
    import duckdb

    from flows.warehouse.duckdb_warehouse import DuckDBWarehouse

    with DuckDBWarehouse(tmp_path / "warehouse.duckdb") as warehouse:
        warehouse.migrate()
    with duckdb.connect(str(tmp_path / "warehouse.duckdb"), read_only=True) as connection:
        types = dict(
            connection.execute(
                "select column_name, data_type from duckdb_columns() where table_name = 'run_trend'"
            ).fetchall()
        )
    rates = {"quarantine_rate", "duplicate_record_rate", "max_null_rate", "hours_since_last_merge"}
    rates |= {"quarantine_rate_change"}
    assert {name for name, kind in types.items() if kind == "DOUBLE"} == rates
    assert {name for name, kind in types.items() if kind == "BIGINT"} == set(types) - rates - {
        "run_id",
        "measured_at",
    }


def all_sql_files() -> list[str]:
    """The pipeline's own SQL (the dbt models under sql/dbt are Jinja: dbt compiles and tests them)."""
    return sorted(
        str(path.relative_to(sql_root()))
        for path in sql_root().rglob("*.sql")
        if not path.is_relative_to(sql_root() / "dbt")
    )


@pytest.mark.parametrize("name", all_sql_files())
def test_every_sql_file_parses_for_duckdb_and_snowflake(name: str) -> None:
    dialects = [name.split(".")[-2]] if name.count(".") == 2 else ["duckdb", "snowflake"]
    samples = {
        "table": "landing.persons",
        "staged_file": "@landing.landed_files/r1/b1.persons.parquet",
        "local_path": "/tmp/b1.persons.parquet",
        "stage": "landing.landed_files",
        "stage_dir": "r1",
        "target": "staging.persons",
    }
    for statement in load_sql(name).expanded(person_column_lists()).statements():
        text, _ = bind_named(statement.format(**samples) if "{" in statement else statement, _AnyValue())
        for dialect in dialects:
            assert sqlglot.parse(text, read=dialect), (name, dialect)


class _AnyValue(dict):  # type: ignore[type-arg]
    def __contains__(self, key: object) -> bool:
        return True

    def __getitem__(self, key: object) -> None:
        return None
