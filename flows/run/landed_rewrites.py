"""The landed files an erasure still has to rewrite without the forgotten persons: one pass over them, by
`persons-pipeline forget` and at the start of every run (the persons are already out of the warehouse)."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute as pc
from prefect import get_run_logger

from flows.landing.files import LandingStore, parquet_to_table, table_to_parquet
from flows.run.context import RunContext, log_event
from flows.warehouse import Warehouse
from flows.warehouse.erasures import mark_problem, mark_rewritten, pending_files
from flows.warehouse.generations import tombstoned_keys


@dataclass(frozen=True)
class UnrewrittenFile:
    """A landed file that could not be rewritten: where it is, and the error's type and step (no text)."""

    location: str
    problem: str

    def advice(self) -> str:
        """One line: the file, what went wrong, that the warehouse forgot already, and what to do."""
        return (
            f"{self.location} could not be rewritten without the forgotten persons ({self.problem}); "
            "the persons are already erased from every warehouse layer. Restore the file from a backup or "
            "delete it, then run `persons-pipeline forget` again with any identity file "
            "(the next `persons-pipeline run` retries it too)"
        )


@dataclass(frozen=True)
class RewritePass:
    """What one pass over the pending landed files did."""

    rewritten: int
    unrewritten: tuple[UnrewrittenFile, ...]

    @property
    def attempted(self) -> int:
        """Files the pass tried."""
        return self.rewritten + len(self.unrewritten)


class FileNotRewritten(RuntimeError):
    """A landed file could not be read or written; the message is the error's type and step only."""


def rewrite_without(store: LandingStore, key: str, keep_out: pa.Array) -> None:
    """Rewrite one landed file without the keys in `keep_out` (a file that is gone holds none of them)."""
    step = "reading"
    try:
        if not store.exists(key):
            return
        table = parquet_to_table(store.read_bytes(key))
        kept = table.filter(pc.invert(pc.is_in(table["person_key"], value_set=keep_out)))
        if kept.num_rows == table.num_rows:
            return
        step = "writing"
        store.write_bytes(key, table_to_parquet(kept))
    except Exception as exc:
        # The error's text may quote the file's content: its type and the step say enough.
        raise FileNotRewritten(f"{type(exc).__name__} while {step} the file") from exc


def rewrite_pending_files(warehouse: Warehouse, store: LandingStore) -> RewritePass:
    """Rewrite every landed file an erasure waits for; one that fails is noted and the others go on."""
    tombstones: dict[str, pa.Array] = {}
    rewritten, unrewritten = 0, []
    for file in pending_files(warehouse):
        fingerprint = file.key_fingerprint
        if fingerprint not in tombstones:
            tombstones[fingerprint] = pa.array(sorted(tombstoned_keys(warehouse, fingerprint)), pa.string())
        try:
            rewrite_without(store, file.landed_file, tombstones[fingerprint])
        except FileNotRewritten as exc:
            mark_problem(warehouse, file, str(exc))
            unrewritten.append(UnrewrittenFile(store.uri(file.landed_file), str(exc)))
            continue
        mark_rewritten(warehouse, file)
        rewritten += 1
    return RewritePass(rewritten, tuple(unrewritten))


def rewrite_pending_erasures(run: RunContext) -> None:
    """Rewrite the landed files an erasure left pending (one query when none); one still failing is named,
    and the run goes on: its persons are already out of every warehouse layer."""
    files = rewrite_pending_files(run.warehouse, run.store)
    if not files.attempted:
        return
    logger = get_run_logger()
    log_event(
        logger,
        "erasure_files_rewritten",
        run_id=run.run_id,
        rewritten=files.rewritten,
        not_rewritten=len(files.unrewritten),
    )
    for file in files.unrewritten:
        log_event(
            logger,
            "erasure_file_not_rewritten",
            run_id=run.run_id,
            file=file.location,
            problem=file.problem,
            level=logging.WARNING,
        )
