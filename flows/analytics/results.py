"""dbt's run_results.json (and the manifest's test -> model links) as a small typed summary."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

FAILED = frozenset({"error", "fail", "runtime error"})
MESSAGE_LIMIT = 240


@dataclass(frozen=True)
class NodeResult:
    """One model, seed or test of a build: what it is, how it ended, how long it took."""

    name: str
    resource_type: str
    status: str
    seconds: float
    model: str | None = None  # the model (or seed, source) a test is attached to
    failures: int | None = None
    message: str | None = None

    @property
    def failed(self) -> bool:
        """Whether the node failed the build (a warning does not)."""
        return self.status in FAILED


@dataclass(frozen=True)
class BuildResults:
    """The outcome of one dbt command."""

    command: str
    elapsed_s: float
    nodes: list[NodeResult] = field(default_factory=list)

    @property
    def failed(self) -> list[NodeResult]:
        """The nodes that failed."""
        return [node for node in self.nodes if node.failed]

    def counts(self) -> dict[str, int]:
        """Nodes per `<type>_<status>`, e.g. model_success, test_pass, test_fail."""
        return dict(sorted(Counter(f"{n.resource_type}_{n.status}" for n in self.nodes).items()))

    def failure_message(self) -> str:
        """One line naming every failed node (and the model a failed test checks)."""
        parts = []
        for node in self.failed:
            on = f" on {node.model}" if node.model else ""
            count = f", {node.failures} failing rows" if node.failures else ""
            parts.append(f"{node.resource_type} {node.name}{on}: {node.status}{count}")
        return f"dbt {self.command} failed: " + "; ".join(parts)

    def rows(self) -> list[dict[str, Any]]:
        """One row per node, for a table artifact."""
        return [
            {
                "node": node.name,
                "type": node.resource_type,
                "model": node.model or "",
                "status": node.status,
                "seconds": round(node.seconds, 3),
                "failures": node.failures,
            }
            for node in self.nodes
        ]


def _short(message: object) -> str | None:
    """The first line of a message, bounded (dbt's test messages are counts; errors may quote SQL)."""
    if not isinstance(message, str) or not message:
        return None
    return message.strip().splitlines()[0][:MESSAGE_LIMIT]


def parse_results(run_results: dict[str, Any], manifest: dict[str, Any] | None = None) -> BuildResults:
    """The summary of run_results.json; the manifest (if given) names the model each test checks."""
    nodes_meta: dict[str, Any] = (manifest or {}).get("nodes", {})
    sources: dict[str, Any] = (manifest or {}).get("sources", {})
    nodes = []
    for result in run_results.get("results", []):
        unique_id = str(result["unique_id"])
        resource_type, _, rest = unique_id.partition(".")
        meta = nodes_meta.get(unique_id, {})
        model = None
        if resource_type == "test":
            depends_on = meta.get("depends_on", {}).get("nodes", [])
            attached = meta.get("attached_node") or next(iter(depends_on), None)
            if attached:
                model = (nodes_meta.get(attached) or sources.get(attached) or {}).get("name") or attached
        nodes.append(
            NodeResult(
                name=str(meta.get("name") or rest.split(".")[-1]),
                resource_type=resource_type,
                status=str(result.get("status")),
                seconds=float(result.get("execution_time") or 0.0),
                model=model,
                failures=result.get("failures"),
                message=_short(result.get("message")),
            )
        )
    command = str(run_results.get("args", {}).get("which", "build"))
    return BuildResults(command, float(run_results.get("elapsed_time") or 0.0), nodes)


def read_results(target_path: Path) -> BuildResults:
    """Read run_results.json and manifest.json from a target folder."""
    manifest_path = target_path / "manifest.json"
    manifest = orjson.loads(manifest_path.read_bytes()) if manifest_path.exists() else None
    return parse_results(orjson.loads((target_path / "run_results.json").read_bytes()), manifest)
