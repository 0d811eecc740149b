"""The dbt project: where it is, its fingerprint, and the profile a build uses (generated, no credentials)."""

from __future__ import annotations

import hashlib
from importlib.metadata import version
from pathlib import Path
from typing import Any

import orjson

from flows.sql_files import sql_root
from flows.warehouse.dbt_targets import (
    DBT_DUCKDB_SETTINGS,
    PROFILE,
    SNOWFLAKE_PASSWORD_VARIABLE,
    SNOWFLAKE_PRIVATE_KEY_VARIABLE,
    DbtTarget,
    duckdb_target,
    snowflake_target,
)

# What a build reads: the models, seeds, macros, tests and the project file (never target/ or logs/).
PROJECT_FOLDERS = ("models", "seeds", "macros", "tests")


def project_dir() -> Path:
    """`sql/dbt`."""
    return sql_root() / "dbt"


def project_files(root: Path | None = None) -> list[Path]:
    """Every file a build depends on, in a stable order."""
    base = root or project_dir()
    files = [base / "dbt_project.yml"]
    for folder in PROJECT_FOLDERS:
        files += sorted(path for path in (base / folder).rglob("*") if path.is_file())
    return files


def dbt_vars(k_anonymity: int) -> dict[str, Any]:
    """The project variables a build passes (the settings' values)."""
    return {"k_anonymity": k_anonymity}


def fingerprint(engine: str, k_anonymity: int, root: Path | None = None) -> str:
    """Hash of what the built views depend on: project files, variables, engine and dbt's version."""
    base = root or project_dir()
    digest = hashlib.sha256()
    header = {"engine": engine, "vars": dbt_vars(k_anonymity), "dbt": version("dbt-core")}
    digest.update(orjson.dumps(header, option=orjson.OPT_SORT_KEYS))
    for path in project_files(base):
        digest.update(path.relative_to(base).as_posix().encode() + b"\0")
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()


__all__ = [
    "DBT_DUCKDB_SETTINGS",
    "PROFILE",
    "SNOWFLAKE_PASSWORD_VARIABLE",
    "SNOWFLAKE_PRIVATE_KEY_VARIABLE",
    "DbtTarget",
    "dbt_vars",
    "duckdb_target",
    "fingerprint",
    "project_dir",
    "project_files",
    "snowflake_target",
]
