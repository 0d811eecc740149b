"""The sharded speed-up (issue 21): a run with `--shards 1` and one with `--shards 2`, the same pages, on two
process workers of a pool of the bench's own, against a twin with a per-request latency (so that fetching
dominates, as it does against the real API), each run after a small warm-up run in its own data folder (the
dbt models built). Printed: both wall times, their ratio against the 1.6x target, whether the reports agree,
and the workers' summed peak memory (two shard flow runs at a time: what two Fargate tasks need).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.sampler import TAG_VARIABLE
from bench.shard_pool import process_workers, register_in_subprocess

SPEEDUP_TARGET = 1.6
POOL = "bench-shards"
WARM_UP_PERSONS = 2000


@dataclass
class ShardedRound:
    """The two runs of one round."""

    persons: int
    latency_ms: int
    one_s: float
    two_s: float
    reports_equal: bool
    workers_peak_mib: float
    load: tuple[float, ...]

    @property
    def speedup(self) -> float:
        return self.one_s / self.two_s if self.two_s else 0.0


def sharded_line(rounds: list[ShardedRound]) -> str:
    """The target's line: the median speed-up over the rounds, with its figures."""
    if not rounds:
        return "sharded 1M (2 shards on 2 process workers) >= 1.6x faster than 1: not measured"
    ordered = sorted(rounds, key=lambda found: found.speedup)
    middle = ordered[len(ordered) // 2]
    verdict = "met" if middle.speedup >= SPEEDUP_TARGET and middle.reports_equal else "MISSED"
    return (
        f"sharded {middle.persons:,} at {middle.latency_ms} ms a request: 2 shards {middle.two_s:.1f} s "
        f"against 1 shard {middle.one_s:.1f} s = {middle.speedup:.2f}x (target >= {SPEEDUP_TARGET}x), "
        f"reports {'equal' if middle.reports_equal else 'DIFFERENT'}; the 2 workers with their shards peaked "
        f"at {middle.workers_peak_mib:.0f} MiB summed RSS: {verdict}"
    )


def run_once(command: list[str], env: dict[str, str]) -> float:
    started = time.perf_counter()
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    if done.returncode:
        raise RuntimeError(f"{' '.join(command[:3])}: exit {done.returncode}: {done.stdout[-2000:]}")
    return time.perf_counter() - started


def warm_then_measure(
    workdir: Path, twin_url: str, persons: int, shards: int, env: dict[str, str], bin_dir: Path
) -> tuple[float, dict[str, Any]]:
    """A warm-up run (the models built), then the measured one, in a fresh folder: (wall s, report)."""
    data_dir = workdir / f"data-sharded-{shards}"
    shutil.rmtree(data_dir, ignore_errors=True)
    half = str(-(-persons // 1000 // 2))  # pages per shard: two shards
    base = [str(bin_dir / "persons-pipeline"), "run", "--api-url", twin_url, "--data-dir", str(data_dir)]
    base += ["--reference-date", "2026-06-15", "--shards", str(shards), "--shard-pages", half]
    run_once([*base, "--total", str(WARM_UP_PERSONS), "--seed", "7"], env)
    report = data_dir / "report.json"
    wall = run_once([*base, "--total", str(persons), "--seed", "42", "--report-json", str(report)], env)
    document = json.loads(report.read_text())
    document.pop("run")
    return wall, document


def measure_sharded(
    workdir: Path, twin_url: str, api_url: str, persons: int, latency_ms: int, tag: str, bin_dir: Path
) -> ShardedRound:
    """One round: warm up and measure `--shards 1`, then `--shards 2` (two shards), same pages."""
    from bench.sampler import TreeSampler  # noqa: PLC0415

    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_") and k != TAG_VARIABLE}
    env |= {
        "PREFECT_API_URL": api_url,
        "PREFECT_HOME": str(workdir / "prefect-home-sharded"),
        "PERSONS_RATE_LIMIT_PER_S": "0",
        "PERSONS_ALLOW_DEMO_SECRET": "true",
        "PERSONS_PAGES_SERVER": "false",
        "PERSONS_SHARD_DEPLOYMENT": "persons-shard/shard",
    }
    register_in_subprocess(env, POOL)  # in a subprocess: this one keeps Prefect unloaded
    reports: list[dict[str, Any]] = []
    walls: list[float] = []
    worker_tag = f"{tag}-shard-workers"
    sampler = TreeSampler(worker_tag).start()
    # Workers ask for new flow runs every 2 s (Prefect's default, 10 s, can keep a shard waiting that long;
    # docs/operations/scaling.md recommends the same for a shard pool).
    workers_env = env | {TAG_VARIABLE: worker_tag, "PREFECT_WORKER_QUERY_SECONDS": "2"}
    with process_workers(POOL, 2, workers_env, workdir):
        for shards in (1, 2):
            wall, report = warm_then_measure(workdir, twin_url, persons, shards, env, bin_dir)
            walls.append(wall)
            reports.append(report)
    profile = sampler.stop()
    return ShardedRound(
        persons,
        latency_ms,
        walls[0],
        walls[1],
        reports[0] == reports[1],
        profile.peak_sum_mib,
        os.getloadavg(),
    )
