"""The gate of a sharded run: the suite ran in the shards; their verdicts are handed over with the batches.

`validate` answers with the verdict the shard recorded for the batch; the publisher then records it and its
metrics exactly as it records its own gate's, and merges only a batch that passed. Its docs are the shards':
each shard's site sits beside the runs' sites, in the docs home.
"""

from __future__ import annotations

from pathlib import Path
from threading import Lock

import pyarrow as pa

from flows.gate.validation import GateResult


class RecordedGate:
    """Verdicts of the GX suite given by the shards, by batch id."""

    def __init__(self, docs_root: Path, run_id: str) -> None:
        self.docs_dir = (docs_root / run_id).resolve()
        self._verdicts: dict[str, GateResult] = {}
        self._lock = Lock()

    @property
    def index_path(self) -> Path:
        """No site of its own (see the shards' sites)."""
        return self.docs_dir / "index.html"

    def record(self, result: GateResult) -> None:
        """Keep a shard's verdict until its batch is published."""
        with self._lock:
            self._verdicts[result.batch_id] = result

    def validate(self, batch: pa.Table, batch_id: str, expected_rows: int) -> GateResult:
        """The shard's verdict on the batch; the batch as loaded must have the rows the shard validated."""
        with self._lock:
            result = self._verdicts.pop(batch_id, None)
        if result is None:
            raise RuntimeError(f"batch {batch_id}: no shard's verdict was handed over with it")
        if batch.num_rows != expected_rows:
            failed = [*result.failed, "loaded rows differ from the landed batch"]
            return GateResult(
                batch_id, False, failed, result.statistics, result.docs_page, {}, result.outcomes
            )
        return result

    def build_docs(self) -> Path:
        return self.index_path

    def resources(self) -> dict[str, float]:
        return {}

    def close(self) -> None:
        """Nothing to stop."""
