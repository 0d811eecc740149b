"""The environment a child process starts with: what it needs to run, never the pipeline's secrets.

A child process inherits its parent's environment by default, and the pipeline's environment may hold the
person_key key, the Snowflake password and cloud keys. Every process the pipeline starts (the raw-data worker,
the validation gate, the identity keyer, dbt, the local Prefect server) gets an allow-listed environment
instead, plus what its caller hands it on purpose (the raw-data worker receives the key over its
authenticated socket, dbt its credentials as `DBT_ENV_SECRET_*`, which dbt masks).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping

# What any Python child needs to start and behave: the interpreter's paths, locale, time zone, temporary
# folder, certificates, allocator tuning, where the pipeline's SQL and suites live; and the benchmark's
# tag, by which it counts every process of a run (bench/sampler.py).
RUNTIME_VARIABLES = (
    "PATH",
    "HOME",
    "USER",
    "LOGNAME",
    "LANG",
    "LANGUAGE",
    "TZ",
    "TMPDIR",
    "TEMP",
    "TMP",
    "PYTHONPATH",
    "PYTHONHOME",
    "PYTHONDONTWRITEBYTECODE",
    "PYTHONUNBUFFERED",
    "PYTHONHASHSEED",
    "VIRTUAL_ENV",
    "SSL_CERT_FILE",
    "SSL_CERT_DIR",
    "DO_NOT_TRACK",
    "MALLOC_ARENA_MAX",
    "ARROW_DEFAULT_MEMORY_POOL",
    "PERSONS_SQL_DIR",
    "PERSONS_EXPECTATIONS_DIR",
    "PERSONS_BENCH_TAG",
)
RUNTIME_PREFIXES = ("LC_",)
# How a client reaches the network (the raw-data worker's HTTP client honours them).
PROXY_VARIABLES = tuple(
    name for base in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY") for name in (base, base.lower())
)


def child_environment(
    keep: Iterable[str] = (),
    keep_prefixes: Iterable[str] = (),
    extra: Mapping[str, str] | None = None,
    source: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """The runtime variables of `source` (default: this process's environment), the names in `keep` and those
    starting with `keep_prefixes`, then `extra` on top."""
    environ = os.environ if source is None else source
    names = {*RUNTIME_VARIABLES, *keep}
    prefixes = (*RUNTIME_PREFIXES, *keep_prefixes)
    chosen = {name: value for name, value in environ.items() if name in names or name.startswith(prefixes)}
    return {**chosen, **(extra or {})}
