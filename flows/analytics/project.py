"""The dbt project: where it is, its fingerprint, and the profile a build uses (generated, no credentials)."""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path
from typing import Any

import orjson

from flows.sql_files import sql_root

PROFILE = "persons"
# What a build reads: the models, seeds, macros, tests and the project file (never target/ or logs/).
PROJECT_FOLDERS = ("models", "seeds", "macros", "tests")
SNOWFLAKE_PASSWORD_VARIABLE = "DBT_ENV_SECRET_SNOWFLAKE_PASSWORD"  # noqa: S105 - a name; dbt masks DBT_ENV_SECRET_*
SNOWFLAKE_PRIVATE_KEY_VARIABLE = "DBT_ENV_SECRET_SNOWFLAKE_PRIVATE_KEY"


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


@dataclass(frozen=True)
class DbtTarget:
    """One dbt output: the profile's fields (names, paths, hosts) and the secrets passed by environment."""

    engine: str
    fields: dict[str, Any]
    secret_env: dict[str, str]

    def profile_yaml(self) -> bytes:
        """profiles.yml as JSON (valid YAML): secrets appear only as env_var() references."""
        profile = {PROFILE: {"target": self.engine, "outputs": {self.engine: self.fields}}}
        return orjson.dumps(profile, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS)


# dbt's `unique` test filters `person_key is not null`: DuckDB then guesses the persons side of
# trf_persons_protected's join to be the smaller one and builds its hash table on 10,000,000 persons instead
# of on the published combinations, which ran out of the build's 1GB (measured; without the filter, or with
# this optimizer off, the same test passes in 6.4 s). The models' joins name their smaller side on the right.
DBT_DUCKDB_SETTINGS = {"disabled_optimizers": "build_side_probe_side"}


def duckdb_target(path: Path, threads: int, memory_limit: str) -> DbtTarget:
    """dbt-duckdb on the warehouse file (the database is named after the file: `warehouse`)."""
    fields = {
        "type": "duckdb",
        "path": str(path),
        "schema": "main",
        "threads": threads,
        "settings": {"threads": threads, "memory_limit": memory_limit, **DBT_DUCKDB_SETTINGS},
    }
    return DbtTarget("duckdb", fields, {})


def snowflake_target(arguments: dict[str, Any], threads: int) -> DbtTarget:
    """dbt-snowflake from the connector arguments of the warehouse adapter (secrets by environment only)."""
    fields: dict[str, Any] = {
        "type": "snowflake",
        "account": arguments["account"],
        "user": arguments["user"],
        "database": arguments["database"],
        "warehouse": arguments["warehouse"],
        "schema": "staging",
        "threads": threads,
        "query_tag": "persons-pipeline-dbt",
        "connect_timeout": arguments.get("login_timeout", 60),
    }
    secret_env: dict[str, str] = {}
    for name in ("role", "host", "port", "protocol"):
        if arguments.get(name):
            fields[name] = arguments[name]
    if arguments.get("password"):
        fields["password"] = "{{ env_var('" + SNOWFLAKE_PASSWORD_VARIABLE + "') }}"
        secret_env[SNOWFLAKE_PASSWORD_VARIABLE] = str(arguments["password"])
    elif arguments.get("private_key"):
        # Key-pair authentication: the DER key, base64, by environment (dbt-snowflake's `private_key`).
        fields["private_key"] = "{{ env_var('" + SNOWFLAKE_PRIVATE_KEY_VARIABLE + "') }}"
        secret_env[SNOWFLAKE_PRIVATE_KEY_VARIABLE] = base64.b64encode(arguments["private_key"]).decode()
    return DbtTarget("snowflake", fields, secret_env)
