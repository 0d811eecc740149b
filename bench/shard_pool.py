"""A local process work pool that serves the shard deployment, with N process workers.

What `make deploy ENV=local` (the `shard` deployment of prefect.yaml) and `make worker` give a user, made
directly for the bench and the tests: a pool of their own, the deployment pointed at this checkout, workers
started in sessions of their own and stopped (with whatever they run) together.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def register_shard_deployment(pool: str, name: str = "shard", env: dict[str, str] | None = None) -> str:
    """Create the process pool if missing and (re)apply `persons-shard/<name>` on it; its full name."""
    from prefect.client.orchestration import get_client  # noqa: PLC0415 - the caller chose the API first
    from prefect.client.schemas.actions import WorkPoolCreate  # noqa: PLC0415
    from prefect.exceptions import ObjectAlreadyExists  # noqa: PLC0415

    from flows.run.shard import SHARD_FLOW, persons_shard  # noqa: PLC0415

    with get_client(sync_client=True) as client, suppress(ObjectAlreadyExists):
        client.create_work_pool(WorkPoolCreate(name=pool, type="process"))
    deployment = persons_shard.to_deployment(
        name=name, work_pool_name=pool, job_variables={"working_dir": str(REPO), "env": env or {}}
    )
    deployment.apply()  # type: ignore[union-attr]  # sync here: Prefect's sync/async dispatch types both
    return f"{SHARD_FLOW}/{name}"


def register_in_subprocess(env: dict[str, str], pool: str, name: str = "shard") -> None:
    """`register_shard_deployment` against the API in `env` (this process keeps its own Prefect settings)."""
    code = f"from bench.shard_pool import register_shard_deployment as r; r({pool!r}, {name!r})"
    subprocess.run([sys.executable, "-c", code], env=env, check=True, cwd=REPO, capture_output=True)


def stop_session(process: subprocess.Popen[bytes], timeout_s: float = 15.0) -> None:
    """SIGTERM to the process's session (the worker and the flow runs it started), SIGKILL if it stays."""
    with suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        with suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=timeout_s)


def start_worker(pool: str, env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    """`prefect worker start --pool <pool> --type process --limit 1` in a session of its own."""
    command = [str(BIN / "prefect"), "worker", "start", "--pool", pool, "--type", "process", "--limit", "1"]
    with log.open("ab") as output:
        return subprocess.Popen(
            command, env=env, cwd=REPO, stdout=output, stderr=subprocess.STDOUT, start_new_session=True
        )


@contextmanager
def process_workers(
    pool: str, count: int, env: dict[str, str], log_dir: Path
) -> Iterator[list[subprocess.Popen[bytes]]]:
    """`count` process workers on `pool` while the block runs (each takes one flow run at a time)."""
    workers = [start_worker(pool, env, log_dir / f"worker-{number}.log") for number in range(count)]
    try:
        time.sleep(1.0)
        yield workers
    finally:
        for worker in workers:
            stop_session(worker)
