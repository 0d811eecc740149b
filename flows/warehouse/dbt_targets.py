"""How dbt reaches a warehouse: the profile's output for each engine, built by the engine's adapter from its
own connection (secrets by environment only). The dbt project itself is `flows.analytics`."""

from __future__ import annotations

import base64
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

PROFILE = "persons"
SNOWFLAKE_PASSWORD_VARIABLE = "DBT_ENV_SECRET_SNOWFLAKE_PASSWORD"  # noqa: S105 - a name; dbt masks DBT_ENV_SECRET_*
SNOWFLAKE_PRIVATE_KEY_VARIABLE = "DBT_ENV_SECRET_SNOWFLAKE_PRIVATE_KEY"


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
