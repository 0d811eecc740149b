"""The SQL files in `sql/`: loading, named bind parameters and versioned migrations.

Values never enter SQL text: `:name` placeholders become the driver's positional markers and the values travel
separately as bind parameters.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

# Quoted strings and comments are matched first so a colon inside them is never taken for a placeholder.
_TOKEN = re.compile(r"'(?:[^']|'')*'|\"(?:[^\"])*\"|--[^\n]*|(?<![:\w]):([a-z_][a-z0-9_]*)")
# Likewise for `{name}` placeholders: never inside a quoted string or a comment.
_PLACEHOLDER = re.compile(r"'(?:[^']|'')*'|\"(?:[^\"])*\"|--[^\n]*|\{([a-z_][a-z0-9_]*)\}")
_STATEMENT_END = re.compile(r";[ \t]*(?:--[^\n]*)?$", re.MULTILINE)
_VERSIONED = re.compile(r"^V(?P<version>\d+(?:_\d+)*)__(?P<name>\w+)\.sql$")


def sql_root() -> Path:
    """The project's `sql/` folder (PERSONS_SQL_DIR overrides, e.g. in an installed image)."""
    configured = os.environ.get("PERSONS_SQL_DIR")
    return Path(configured) if configured else Path(__file__).resolve().parents[1] / "sql"


@dataclass(frozen=True)
class SqlScript:
    """One SQL file, possibly several statements."""

    name: str
    text: str

    @property
    def checksum(self) -> str:
        """Content hash, to notice an edited migration."""
        return hashlib.sha256(self.text.encode()).hexdigest()

    def expanded(self, lists: Mapping[str, str]) -> SqlScript:
        """The script with each `{name}` placeholder that `lists` names replaced by its text (a column list);
        any other `{name}` stays for the caller's `str.format`; `:name` binds, quoted strings and comments are
        untouched.
        Migrations are never expanded: their checksum is over the literal file."""

        def replace(match: re.Match[str]) -> str:
            name = match.group(1)
            return lists[name] if name is not None and name in lists else match.group(0)

        text = _PLACEHOLDER.sub(replace, self.text)
        return self if text == self.text else SqlScript(name=self.name, text=text)

    def statements(self) -> list[str]:
        """The file's statements (split at semicolons that end a line), without empty ones."""
        parts = _STATEMENT_END.split(self.text)
        return [part.strip() for part in parts if _strip_comments(part).strip()]

    def bind(self, **values: Any) -> tuple[str, list[Any]]:
        """(SQL with `?` markers, positional values) for a single-statement script."""
        statements = self.statements()
        if len(statements) != 1:
            raise ValueError(f"{self.name} holds {len(statements)} statements; bind needs exactly one")
        return bind_named(statements[0], values, self.name)


def _strip_comments(text: str) -> str:
    return re.sub(r"--[^\n]*", "", text)


def bind_named(statement: str, values: dict[str, Any], source: str = "statement") -> tuple[str, list[Any]]:
    """Replace :name placeholders by `?` and collect the values in order."""
    ordered: list[Any] = []
    missing: set[str] = set()

    def replace(match: re.Match[str]) -> str:
        name = match.group(1)
        if name is None:
            return match.group(0)
        if name not in values:
            missing.add(name)
            return match.group(0)
        ordered.append(values[name])
        return "?"

    sql = _TOKEN.sub(replace, statement)
    if missing:
        raise KeyError(f"{source}: no value for bind parameter(s) {sorted(missing)}")
    return sql, ordered


@cache
def load_sql(relative_path: str) -> SqlScript:
    """Read `sql/<relative_path>` once per process."""
    path = sql_root() / relative_path
    return SqlScript(name=relative_path, text=path.read_text(encoding="utf-8"))


def load_dialect_sql(relative_stem: str, dialect: str) -> SqlScript:
    """`<stem>.<dialect>.sql` where a dialect needs its own statement, else `<stem>.sql`."""
    specific = sql_root() / f"{relative_stem}.{dialect}.sql"
    if specific.exists():
        return load_sql(f"{relative_stem}.{dialect}.sql")
    return load_sql(f"{relative_stem}.sql")


@dataclass(frozen=True)
class Migration:
    """A versioned migration (V<version>__<name>.sql), applied once, in version order."""

    version: tuple[int, ...]
    script: SqlScript

    @property
    def version_label(self) -> str:
        """Dotted version, e.g. 1.2."""
        return ".".join(str(part) for part in self.version)


def versioned_migrations() -> list[Migration]:
    """All versioned migrations in order."""
    migrations = []
    for path in sorted((sql_root() / "migrations").glob("V*__*.sql")):
        match = _VERSIONED.match(path.name)
        if not match:
            raise ValueError(f"migration file {path.name} does not follow V<version>__<name>.sql")
        version = tuple(int(part) for part in match["version"].split("_"))
        migrations.append(Migration(version, load_sql(f"migrations/{path.name}")))
    return sorted(migrations, key=lambda migration: migration.version)
