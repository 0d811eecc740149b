"""The dbt process: imports dbt and parses the project as soon as it starts, then runs commands on request.

Protocol: one JSON line per request on stdin ({"args": [...]}), one JSON line per reply on the original
stdout; dbt's own output goes to stderr (the caller's log file). The process exits at the end of stdin,
which also closes dbt's connections (DuckDB allows one writing process per file).
Never imports Prefect: it is a fresh interpreter that only runs dbt.
"""

from __future__ import annotations

import json
import os
import sys
import time
from typing import Any


def main() -> None:
    """Serve dbt commands until stdin closes."""
    replies = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)  # dbt prints to stdout: send it to the log
    from dbt.cli.main import dbtRunner  # noqa: PLC0415 - after the redirection, and it takes seconds

    runner = dbtRunner()
    replies.write(json.dumps({"ready": True}) + "\n")
    for line in sys.stdin:
        request: dict[str, Any] = json.loads(line)
        args = [str(arg) for arg in request["args"]]
        started = time.perf_counter()
        try:
            result = runner.invoke(args)
            success, error = result.success, (str(result.exception)[:500] if result.exception else None)
            if args[0] == "parse" and success:
                runner = dbtRunner(manifest=result.result)  # type: ignore[arg-type]  # parse returns a Manifest
        except Exception as exc:  # reported to the caller, who fails the run
            success, error = False, f"{type(exc).__name__}: {str(exc)[:500]}"
        reply = {"success": success, "error": error, "seconds": round(time.perf_counter() - started, 3)}
        replies.write(json.dumps(reply) + "\n")


if __name__ == "__main__":
    main()
