"""`make worker ENV=local`: a process worker on the environment's pool, and the Faker twin its runs use.

When the environment's PERSONS_API_URL is on this machine (local.env: http://127.0.0.1:4210/api/v2), the twin
is made to serve there first: a twin already answering there is reused (another worker's, `make twin`, or one
a killed worker left), else one is started that ends with the worker (Linux: even when the worker is
killed). Then this process becomes `prefect worker start --pool <pool> --type process [extra options]`.
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(ROOT))

from deployments.deploy import api_refusal, deploy_values, twin_address  # noqa: E402

BIN = Path(sys.executable).parent
TWIN_START_TIMEOUT_S = 30.0
_LIBC = ctypes.CDLL(None)  # loaded here: the twin's pre-exec step must not import
_DIRECT = urllib.request.build_opener(
    urllib.request.ProxyHandler({})
)  # a proxy must not answer for 127.0.0.1


class TwinProblem(Exception):
    """The twin cannot serve at the configured address; the message says why and what to do."""


def twin_answers(host: str, port: int) -> bool:
    """Whether a Faker twin answers at host:port (its control endpoint, not just any server)."""
    try:
        with _DIRECT.open(f"http://{host}:{port}/__twin/stats", timeout=2) as response:
            return isinstance(json.loads(response.read()), dict)
    except (OSError, ValueError):
        return False


def _ends_with(parent: int) -> Callable[[], None]:
    """For the twin's process before it starts: SIGTERM when `parent` ends, however it ends (Linux)."""

    def arrange() -> None:
        prctl = getattr(_LIBC, "prctl", None)
        if prctl is None:  # not Linux: a twin left behind is reused by the next worker
            return
        prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
        if os.getppid() != parent:  # the parent ended before the line above: end now
            os._exit(0)

    return arrange


def start_twin(host: str, port: int, log: Path) -> subprocess.Popen[bytes]:
    """A twin on host:port that ends with this process; TwinProblem if it cannot listen there."""
    command = [str(BIN / "faker-twin"), "--host", host, "--port", str(port)]
    if not Path(command[0]).exists():
        raise TwinProblem(f"the Faker twin is not installed in {BIN.parent} (make install)")
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as out:
        twin = subprocess.Popen(  # noqa: S603 - our own CLI
            command,
            stdout=out,
            stderr=subprocess.STDOUT,
            preexec_fn=_ends_with(os.getpid()),  # noqa: PLW1509 - no thread has started in this process yet
        )
    deadline = time.monotonic() + TWIN_START_TIMEOUT_S
    while time.monotonic() < deadline:
        if twin_answers(host, port):
            return twin
        if twin.poll() is not None:
            break
        time.sleep(0.2)
    twin.kill()
    twin.wait()
    if twin_answers(host, port):  # another worker started one at the same moment: use it
        return twin
    raise TwinProblem(
        f"no Faker twin could listen on {host}:{port} (another program uses the port? see {log}); "
        "set PERSONS_API_URL to another port in deployments/environments/local.env, then make deploy again"
    )


def ensure_twin(api_url: str, log: Path) -> str | None:
    """Make a twin serve at api_url if that is on this machine; what was done, in words (None: not local)."""
    address = twin_address(api_url)
    if address is None:
        return None
    host, port = address
    if twin_answers(host, port):
        return f"the Faker twin already serving at {api_url} is used (it is left running)"
    start_twin(host, port, log)
    return f"the Faker twin serves at {api_url} until the worker stops (its log: {log})"


def main(argv: list[str] | None = None) -> int:
    """Start or reuse the twin, then become the Prefect worker."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--env", default="local", choices=["local", "dev", "prod"])
    args, worker_options = parser.parse_known_args(argv)  # the rest goes to `prefect worker start`
    values = deploy_values(args.env, os.environ)
    pool, kind = values["PERSONS_WORK_POOL"], values["PERSONS_WORK_POOL_TYPE"]
    if kind != "process":
        print(
            f"worker: {pool} is an {kind} pool: start its worker where it can reach ECS "
            f"(prefect worker start --pool {pool} --type {kind})",
            file=sys.stderr,
        )
        return 2
    if problem := api_refusal("worker"):
        print(problem, file=sys.stderr)
        return 2
    log = Path(values["PERSONS_DATA_DIR"]) / "logs" / "faker-twin.log"
    try:
        twin = ensure_twin(values["PERSONS_API_URL"], log)
    except TwinProblem as problem:
        print(f"worker: {problem}", file=sys.stderr)
        return 1
    if twin:
        print(f"worker: {twin}", flush=True)
    command = [str(BIN / "prefect"), "worker", "start", "--pool", pool, "--type", "process", *worker_options]
    os.execv(command[0], command)  # noqa: S606 - the twin's parent stays this process, now the worker


if __name__ == "__main__":
    sys.exit(main())
