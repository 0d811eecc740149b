"""The floor of a warm runner: `persons-pipeline run` called again and again inside one Python process.

A long-lived process that kept Prefect, GX, pandas and DuckDB imported and took runs from the CLI would save
each run its interpreter start and imports, and nothing else. Calling the CLI's own `main` several times in
one process measures what such a runner could reach at best: the first call pays the imports, the later ones
are what a daily run would cost with a warm runner (the raw-data worker and the GX context are still made
per run, as they are today). Same arguments as the bench's pipeline runs: one data folder, the seeds of the
rounds in order. Prints one JSON line: the wall and CPU seconds (with finished children) of every call.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import resource
import sys
import time


def cpu_seconds() -> float:
    """CPU of this process and of its children that have been waited for."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def main(argv: list[str] | None = None) -> int:
    """Run the CLI once per seed in this process; print the figures of every call."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--api-url", required=True)
    parser.add_argument("--total", type=int, required=True)
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--reference-date", required=True)
    parser.add_argument("--seeds", required=True, help="comma-separated: one run per seed, in order")
    args = parser.parse_args(argv)
    runs = []
    started, cpu = time.perf_counter(), cpu_seconds()
    from flows.cli import main as pipeline  # noqa: PLC0415 - the import is part of the first call's cost

    for seed in (int(seed) for seed in args.seeds.split(",")):
        arguments = ["run", "--api-url", args.api_url, "--total", str(args.total)]
        arguments += ["--data-dir", args.data_dir, "--reference-date", args.reference_date]
        arguments += ["--seed", str(seed)]
        with contextlib.redirect_stdout(io.StringIO()):  # the run's summary: stdout is for the figures
            code = pipeline(arguments)
        now, now_cpu = time.perf_counter(), cpu_seconds()
        runs.append({"seed": seed, "exit_code": code, "wall_s": now - started, "cpu_s": now_cpu - cpu})
        started, cpu = now, now_cpu
        if code:
            break
    print(json.dumps({"runs": runs}))
    return 0 if all(run["exit_code"] == 0 for run in runs) else 1


if __name__ == "__main__":
    sys.exit(main())
