"""Peak memory of a whole run: every process that carries the run's tag, sampled from /proc.

A run's processes are the command, its children, and anything it starts that outlives it (a local Prefect
server started on demand, detached into a session of its own). All of them inherit the environment, so the
harness gives the command a unique `PERSONS_BENCH_TAG` and counts every process whose environment holds it;
servers the harness starts itself get the same tag, so they count too. Every `interval_s` the resident set
sizes of the tagged processes are read and summed; the peak of that sum is the run's figure (shared pages
are counted once per process, as a sum of RSS does: an upper bound of what a container needs).
The processes' proportional set sizes are summed too (PSS: a page shared by n processes counts 1/n in each,
so the libraries that every Python process maps are counted once, as a container's memory cgroup charges
them); PSS costs about 1.5 ms per process to read, so it is read only when the RSS sum reaches a new peak and
on every `pss_every`-th sample.
"""

from __future__ import annotations

import os
import threading
import time
from collections import defaultdict
from dataclasses import dataclass, field

TAG_VARIABLE = "PERSONS_BENCH_TAG"
PAGE_BYTES = os.sysconf("SC_PAGE_SIZE")
MIB = 1024 * 1024

# How a process is named in the figures: the first rule whose words all occur in its command line.
ROLES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("raw_data_worker", ("RawDataWorker",)),
    ("validation_gate", ("ValidationGate",)),
    ("prefect_server", ("prefect", "server")),
    ("prefect_server", ("uvicorn",)),
    ("orchestrator", ("persons-pipeline",)),
    ("orchestrator", ("bench.warm_floor",)),  # the CLI called in one long-lived process
    ("naive", ("bench.naive",)),
    ("download", ("bench.download",)),
)


def role_of(command_line: str) -> str:
    """The figure a process is reported under."""
    for role, words in ROLES:
        if all(word in command_line for word in words):
            return role
    return "other"


def _read(path: str) -> bytes | None:
    try:
        with open(path, "rb") as stream:
            return stream.read()
    except OSError:  # gone, or not ours to read
        return None


@dataclass
class MemoryProfile:
    """What the sampler saw: the peak of the summed RSS and each role's peak, in MiB."""

    peak_sum_mib: float = 0.0
    peak_by_role_mib: dict[str, float] = field(default_factory=dict)
    at_peak_by_role_mib: dict[str, float] = field(default_factory=dict)  # each role when the sum peaked
    peak_pss_sum_mib: float = 0.0
    processes_by_role: dict[str, int] = field(default_factory=dict)
    samples: int = 0


class TreeSampler:
    """Samples the tagged processes in a background thread between `start` and `stop`."""

    def __init__(self, *tags: str, interval_s: float = 0.05, pss_every: int = 10) -> None:
        self.tags = {f"{TAG_VARIABLE}={tag}".encode() for tag in tags}
        self.interval_s = interval_s
        self.pss_every = pss_every
        self._known: dict[int, bool] = {}  # pid -> carries the tag
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="rss-sampler", daemon=True)
        self._peaks: defaultdict[str, float] = defaultdict(float)
        self._seen: defaultdict[str, set[int]] = defaultdict(set)
        self.profile = MemoryProfile()

    def include(self, pid: int) -> None:
        """Count a process whatever its environment says (a child read between fork and exec still has its
        parent's environment)."""
        self._known[pid] = True

    def start(self) -> TreeSampler:
        """Begin sampling."""
        self._thread.start()
        return self

    def stop(self) -> MemoryProfile:
        """Take a last sample, stop, and return the profile."""
        self._stop.set()
        self._thread.join()
        self.sample()
        self.profile.peak_by_role_mib = dict(sorted(self._peaks.items()))
        self.profile.processes_by_role = {role: len(pids) for role, pids in sorted(self._seen.items())}
        return self.profile

    def _loop(self) -> None:
        while not self._stop.is_set():
            started = time.perf_counter()
            self.sample()
            self._stop.wait(max(0.0, self.interval_s - (time.perf_counter() - started)))

    def tagged(self, pid: int) -> bool:
        """Whether a process carries one of the tags (its environment is read once per process id)."""
        if pid not in self._known:
            environ = _read(f"/proc/{pid}/environ")
            if environ is None:
                return False  # gone already, or not readable
            self._known[pid] = not self.tags.isdisjoint(environ.split(b"\0"))
        return self._known[pid]

    def sample(self) -> None:
        """One reading of every tagged process (PSS too when the RSS sum peaks, and every pss_every-th)."""
        total = 0.0
        by_role: defaultdict[str, float] = defaultdict(float)
        alive = []
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            pid = int(entry)
            if not self.tagged(pid):
                continue
            statm, command = _read(f"/proc/{pid}/statm"), _read(f"/proc/{pid}/cmdline")
            if not statm or command is None:
                self._known.pop(pid, None)  # it ended; its id may come back as another process
                continue
            role = role_of(command.replace(b"\0", b" ").decode(errors="replace"))  # re-read: fork, then exec
            rss = int(statm.split()[1]) * PAGE_BYTES / MIB
            total += rss
            by_role[role] += rss
            self._seen[role].add(pid)
            alive.append(pid)
        for role, rss in by_role.items():
            self._peaks[role] = max(self._peaks[role], rss)
        if total > self.profile.peak_sum_mib or self.profile.samples % self.pss_every == 0:
            pss = sum(_pss_mib(pid) for pid in alive)
            self.profile.peak_pss_sum_mib = max(self.profile.peak_pss_sum_mib, pss)
        if total > self.profile.peak_sum_mib:
            self.profile.peak_sum_mib = total
            self.profile.at_peak_by_role_mib = dict(sorted(by_role.items()))
        self.profile.samples += 1


def _pss_mib(pid: int) -> float:
    """A process's proportional set size in MiB (0 if it is gone)."""
    rollup = _read(f"/proc/{pid}/smaps_rollup")
    for line in (rollup or b"").splitlines():
        if line.startswith(b"Pss:"):
            return int(line.split()[1]) / 1024
    return 0.0
