"""`make bench`: the pipeline against the Faker twin at 30k and 1M persons, next to a naive script and a
download-only client, all in the same run, against the same twin, for the same pages.

Every measured command is a child process; wall time, CPU seconds and peak RSS come from the kernel
(`os.wait4`), the twin's CPU from /proc. Figures are medians over `--repeat` rounds; the machine is shared,
so ratios measured side by side mean more than any absolute number.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
REFERENCE_DATE = "2026-06-15"
PROCESSES = ("orchestrator", "raw_data_worker", "validation_gate")


@dataclass
class Measurement:
    """One child process run."""

    scenario: str
    persons: int
    wall_s: float
    cpu_s: float
    max_rss_mib: float
    twin_cpu_s: float
    detail: dict[str, Any] = field(default_factory=dict)


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def process_cpu(pid: int) -> float:
    """CPU seconds a running process has used."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def measure(
    scenario: str, persons: int, command: list[str], env: dict[str, str], twin_pid: int
) -> Measurement:
    """Run a command to completion; kernel-measured wall, CPU (with its children) and peak RSS."""
    twin_before = process_cpu(twin_pid)
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        started = time.perf_counter()
        process = subprocess.Popen(command, env=env, stdout=out, stderr=err)
        _, status, usage = os.wait4(process.pid, 0)  # the kernel's account of this child and its children
        wall = time.perf_counter() - started
        process.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read(), err.read()
    if process.returncode:
        sys.stderr.write(stderr.decode(errors="replace")[-4000:])
        raise SystemExit(f"{scenario} at {persons} persons failed with exit code {process.returncode}")
    detail = json.loads(stdout.decode().strip().splitlines()[-1]) if scenario != "pipeline" else {}
    return Measurement(
        scenario=scenario,
        persons=persons,
        wall_s=wall,
        cpu_s=usage.ru_utime + usage.ru_stime,
        max_rss_mib=usage.ru_maxrss / 1024,
        twin_cpu_s=process_cpu(twin_pid) - twin_before,
        detail=detail,
    )


class Services:
    """The twin and a Prefect server, started for the benchmark and stopped afterwards."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.processes: list[subprocess.Popen[bytes]] = []

    def start(self) -> tuple[str, int, str]:
        """(twin API URL, twin pid, Prefect API URL)."""
        port_file = self.workdir / "twin.port"
        twin = self._spawn(
            [str(BIN / "persons-pipeline"), "twin", "--port", "0", "--port-file", str(port_file)], {}
        )
        deadline = time.monotonic() + 60
        while not port_file.exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        twin_url = f"http://127.0.0.1:{port_file.read_text().strip()}/api/v2"
        prefect_port = free_port()
        server_env = {
            "PREFECT_HOME": str(self.workdir / "prefect-server"),
            "PREFECT_LOGGING_LEVEL": "WARNING",
        }
        self._spawn(
            [str(BIN / "prefect"), "server", "start", "--host", "127.0.0.1", "--port", str(prefect_port)],
            server_env,
        )
        api_url = f"http://127.0.0.1:{prefect_port}/api"
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{api_url}/health", timeout=2).status_code == 200:
                    return twin_url, twin.pid, api_url
            except httpx.HTTPError:
                time.sleep(0.5)
        raise SystemExit("the Prefect server did not start")

    def _spawn(self, command: list[str], extra_env: dict[str, str]) -> subprocess.Popen[bytes]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")} | extra_env
        log = (self.workdir / f"{Path(command[0]).name}-{len(self.processes)}.log").open("wb")
        process = subprocess.Popen(
            command, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        self.processes.append(process)
        return process

    def stop(self) -> None:
        """Terminate everything started here."""
        for process in reversed(self.processes):
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
                try:
                    process.wait(20)
                except subprocess.TimeoutExpired:
                    os.killpg(process.pid, signal.SIGKILL)


def run_round(
    sizes: list[int], twin_url: str, twin_pid: int, api_url: str, workdir: Path, naive: bool
) -> list[Measurement]:
    """One measurement of every scenario at every size."""
    results = []
    base_env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    # The client-side rate limit protects the public API; against the local twin it would only measure itself.
    base_env.setdefault("PERSONS_RATE_LIMIT_PER_S", "0")
    for persons in sizes:
        download = [
            str(BIN / "python"),
            "-m",
            "bench.download",
            "--api-url",
            twin_url,
            "--total",
            str(persons),
        ]
        results.append(measure("download", persons, download, base_env, twin_pid))
        if naive:
            command = [
                str(BIN / "python"),
                "-m",
                "bench.naive",
                "--api-url",
                twin_url,
                "--total",
                str(persons),
                "--reference-date",
                REFERENCE_DATE,
            ]
            results.append(measure("naive", persons, command, base_env, twin_pid))
        data_dir = workdir / f"data-{persons}"
        shutil.rmtree(data_dir, ignore_errors=True)
        report = data_dir / "report.json"
        command = [
            str(BIN / "persons-pipeline"),
            "run",
            "--api-url",
            twin_url,
            "--total",
            str(persons),
            "--data-dir",
            str(data_dir),
            "--reference-date",
            REFERENCE_DATE,
            "--report-json",
            str(report),
        ]
        env = base_env | {"PREFECT_API_URL": api_url, "PREFECT_HOME": str(workdir / "prefect-client")}
        measurement = measure("pipeline", persons, command, env, twin_pid)
        measurement.detail = json.loads(report.read_text())
        results.append(measurement)
        shutil.rmtree(data_dir, ignore_errors=True)
    return results


def median(values: list[float]) -> float:
    """Median of measured values."""
    return statistics.median(values) if values else float("nan")


def summarise(results: list[Measurement], sizes: list[int]) -> dict[str, Any]:
    """Medians per scenario and size, and the ratios the targets are stated in."""
    table: dict[str, Any] = {}
    for persons in sizes:
        for scenario in ("download", "naive", "pipeline"):
            rows = [r for r in results if r.scenario == scenario and r.persons == persons]
            if not rows:
                continue
            entry = {
                "runs": len(rows),
                "wall_s": median([r.wall_s for r in rows]),
                "cpu_s": median([r.cpu_s for r in rows]),
                "max_rss_mib": median([r.max_rss_mib for r in rows]),
                "twin_cpu_s": median([r.twin_cpu_s for r in rows]),
            }
            if scenario == "pipeline":
                runs = [r.detail["run"] for r in rows]
                stages = sorted({stage for run in runs for stage in run["stages"]})
                entry["stages_s"] = {
                    stage: median([run["stages"].get(stage, 0.0) for run in runs]) for stage in stages
                }
                for part in PROCESSES:
                    entry[f"{part}_cpu_s"] = median([run["resources"][part]["cpu_seconds"] for run in runs])
                    entry[f"{part}_max_rss_mib"] = median(
                        [run["resources"][part]["max_rss_mib"] for run in runs]
                    )
                entry["sum_of_peaks_rss_mib"] = median(
                    [sum(run["resources"][part]["max_rss_mib"] for part in PROCESSES) for run in runs]
                )
                entry["total_persons"] = rows[0].detail["total_persons"]
            table[f"{scenario}@{persons}"] = entry
    ratios = {}
    for persons in sizes:
        pipeline, naive, download = (table.get(f"{s}@{persons}") for s in ("pipeline", "naive", "download"))
        if pipeline and naive:
            ratios[f"naive_over_pipeline_wall@{persons}"] = naive["wall_s"] / pipeline["wall_s"]
        if pipeline and download:
            ratios[f"pipeline_over_download_wall@{persons}"] = pipeline["wall_s"] / download["wall_s"]
    if len(sizes) > 1 and f"pipeline@{sizes[0]}" in table:
        small, large = table[f"pipeline@{sizes[0]}"], table[f"pipeline@{sizes[-1]}"]
        for key in [f"{part}_max_rss_mib" for part in PROCESSES] + ["sum_of_peaks_rss_mib"]:
            ratios[f"{key}_{sizes[-1]}_over_{sizes[0]}"] = large[key] / small[key]
    return {"table": table, "ratios": ratios}


def render(summary: dict[str, Any]) -> str:
    """The figures as a readable table."""
    lines = [f"{'scenario':<22}{'wall s':>9}{'cpu s':>9}{'peak RSS MiB':>14}{'twin cpu s':>12}", "-" * 66]
    for name, entry in summary["table"].items():
        lines.append(
            f"{name:<22}{entry['wall_s']:>9.2f}{entry['cpu_s']:>9.2f}{entry['max_rss_mib']:>14.0f}"
            f"{entry['twin_cpu_s']:>12.2f}"
        )
        if "stages_s" in entry:
            stages = ", ".join(f"{k} {v:.2f}" for k, v in entry["stages_s"].items())
            lines.append(f"    stages (s, summed over batches): {stages}")
            for part in PROCESSES:
                lines.append(
                    f"    {part}: cpu {entry[f'{part}_cpu_s']:.1f} s, "
                    f"peak RSS {entry[f'{part}_max_rss_mib']:.0f} MiB"
                )
            lines.append(f"    sum of the processes' peaks: {entry['sum_of_peaks_rss_mib']:.0f} MiB")
    lines.append("")
    lines += [f"{name}: {value:.2f}" for name, value in summary["ratios"].items()]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Start the services, measure, print and save the figures."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", default="30000,1000000", help="comma-separated person counts")
    parser.add_argument("--repeat", type=int, default=3, help="rounds; medians are reported")
    parser.add_argument("--no-naive", action="store_true", help="skip the naive baseline (it is slow)")
    parser.add_argument("--output", type=Path, default=REPO / "bench" / "results")
    args = parser.parse_args(argv)
    sizes = [int(size) for size in args.sizes.split(",")]
    workdir = Path(tempfile.mkdtemp(prefix="persons-bench-"))
    services = Services(workdir)
    results: list[Measurement] = []
    try:
        twin_url, twin_pid, api_url = services.start()
        print(f"twin {twin_url}, Prefect server {api_url}; {args.repeat} round(s) of {sizes}", flush=True)
        for round_number in range(1, args.repeat + 1):
            for measurement in run_round(sizes, twin_url, twin_pid, api_url, workdir, not args.no_naive):
                results.append(measurement)
                print(
                    f"round {round_number}: {measurement.scenario}@{measurement.persons}: "
                    f"{measurement.wall_s:.2f} s wall, {measurement.cpu_s:.2f} s cpu, "
                    f"{measurement.max_rss_mib:.0f} MiB",
                    flush=True,
                )
    finally:
        services.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    summary = summarise(results, sizes)
    print()
    print(render(summary))
    args.output.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    path = args.output / f"bench-{stamp}.json"
    path.write_text(
        json.dumps({"summary": summary, "runs": [asdict(r) for r in results]}, indent=2, default=str)
    )
    print(f"\nsaved {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
