"""The caller's side of the dbt process: start it early (import and parse overlap the run), then build."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from flows.analytics.project import DbtTarget, project_dir
from flows.analytics.results import BuildResults, read_results
from flows.runtime.environment import child_environment
from flows.runtime.stopping import end_on_stop, forget_on_stop, stop_requested

PARTIAL_PARSE = "partial_parse.msgpack"
# dbt's own switches: no update check, no usage events, no colour codes in the log.
QUIET_FLAGS = ("--no-version-check", "--no-send-anonymous-usage-stats", "--no-use-colors")


class DbtFailed(RuntimeError):
    """A dbt command failed; the message names the failed models and tests (never data values)."""

    def __init__(self, message: str, results: BuildResults | None = None) -> None:
        super().__init__(message)
        self.results = results


@dataclass(frozen=True)
class DbtReply:
    """What the process answered to one command."""

    success: bool
    error: str | None
    seconds: float


class DbtProcess:
    """One dbt process for one build: `start` (import + parse), `run` commands, `close` (exits, unlocks)."""

    def __init__(self, target: DbtTarget, work_dir: Path, variables: dict[str, Any], cache_dir: Path) -> None:
        self.target = target
        self.work_dir = work_dir
        self.variables = variables
        self.cache_dir = cache_dir
        self._process: subprocess.Popen[str] | None = None
        self._log: IO[str] | None = None
        self._stop_token: int | None = None

    @property
    def target_path(self) -> Path:
        """dbt's target folder of this build (manifest, run results, compiled SQL, docs)."""
        return self.work_dir / "target"

    @property
    def log_path(self) -> Path:
        """dbt's output (node names, statuses, timings; never data)."""
        return self.work_dir / "dbt.log"

    def _flags(self) -> list[str]:
        return [
            "--project-dir",
            str(project_dir()),
            "--profiles-dir",
            str(self.work_dir),
            "--target-path",
            str(self.target_path),
            "--log-path",
            str(self.work_dir / "logs"),
            "--vars",
            json.dumps(self.variables),
            *QUIET_FLAGS,
        ]

    def start(self) -> None:
        """Write the profile, start the process and let it parse (partial parsing from the last build)."""
        self.target_path.mkdir(parents=True, exist_ok=True)
        (self.work_dir / "profiles.yml").write_bytes(self.target.profile_yaml())
        cached = self.cache_dir / PARTIAL_PARSE
        if cached.exists():
            shutil.copyfile(cached, self.target_path / PARTIAL_PARSE)
        self._log = self.log_path.open("a", encoding="utf-8")
        self._process = subprocess.Popen(
            [sys.executable, "-m", "flows.analytics.dbt_process"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._log,
            env=self.environment(),
            cwd=self.work_dir,
            text=True,
        )
        # A stop signal ends dbt at once: a build in progress would hold the warehouse's lock for minutes.
        self._stop_token = end_on_stop(self._process.kill)
        self._send(["parse"])

    def environment(self) -> dict[str, str]:
        """dbt's settings and its credentials as DBT_ENV_SECRET_* (dbt masks them), none of our secrets."""
        return child_environment(
            keep_prefixes=("DBT_",),
            extra={**self.target.secret_env, "DO_NOT_TRACK": "1", "DBT_SEND_ANONYMOUS_USAGE_STATS": "false"},
        )

    def _send(self, args: list[str]) -> None:
        assert self._process is not None and self._process.stdin is not None
        self._process.stdin.write(json.dumps({"args": [*args, *self._flags()]}) + "\n")
        self._process.stdin.flush()

    def _reply(self) -> dict[str, Any]:
        assert self._process is not None and self._process.stdout is not None
        line = self._process.stdout.readline()
        if not line:
            code = self._process.wait()
            raise DbtFailed(f"the dbt process exited (code {code}); see {self.log_path}")
        reply: dict[str, Any] = json.loads(line)
        return reply

    def ready(self) -> DbtReply:
        """Wait for the import and the parse."""
        if not self._reply().get("ready"):
            raise DbtFailed(f"the dbt process did not start; see {self.log_path}")
        return self._result("parse", self._reply())

    def _result(self, command: str, reply: dict[str, Any]) -> DbtReply:
        result = DbtReply(bool(reply["success"]), reply.get("error"), float(reply.get("seconds", 0.0)))
        if not result.success and command == "parse":
            raise DbtFailed(f"dbt parse failed: {result.error}; see {self.log_path}")
        return result

    def run(self, *args: str) -> tuple[DbtReply, BuildResults | None]:
        """Run one command (after `ready`); its run results if it wrote any."""
        self._send(list(args))
        reply = self._result(args[0], self._reply())
        results_file = self.target_path / "run_results.json"
        results = read_results(self.target_path) if results_file.exists() else None
        return reply, results

    def close(self) -> None:
        """End the process (its connections close with it) and keep the parse for the next build."""
        if self._stop_token is not None:
            forget_on_stop(self._stop_token)
            self._stop_token = None
        if self._process is not None:
            if stop_requested():  # the run is stopping: dbt's work is not waited for (the rerun builds)
                self._process.kill()
            if self._process.stdin is not None:
                with suppress(BrokenPipeError):
                    self._process.stdin.close()
            try:
                self._process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
            if self._process.stdout is not None:
                self._process.stdout.close()
            self._process = None
        if self._log is not None:
            self._log.close()
            self._log = None
        parsed = self.target_path / PARTIAL_PARSE
        if parsed.exists():
            temporary = self.cache_dir / f".{PARTIAL_PARSE}.{os.getpid()}"
            try:  # only a cache: a full disk here must not hide the run's own verdict
                self.cache_dir.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(parsed, temporary)
                temporary.replace(self.cache_dir / PARTIAL_PARSE)
            except OSError:
                temporary.unlink(missing_ok=True)
