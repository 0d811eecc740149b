"""`persons-pipeline forget` with a landed file it cannot read: the persons leave every warehouse layer at
once, the file is named and recorded as a pending rewrite, and the next `forget` or `run` rewrites it."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
from faker_twin import FakerTwin, TwinFaults

from flows.cli import main
from tests.integration.conftest import REFERENCE_DATE, FlowRun
from tests.integration.test_defensible_numbers import (
    IDENTITY,
    SECRET,
    forgettable,
    identity_lines,
    landed_keys,
)
from tests.leakscan import Needles, scan
from tests.oracle import expected_from_served, person_key

PARAMS = {"total": 2000, "page_size": 500, "pages_per_batch": 2, "seed": 71}


def forget(identity_file: Path, data_dir: Path) -> int:
    return main(["forget", "--identity-file", str(identity_file), "--data-dir", str(data_dir)])


def file_holding(data_dir: Path, keys: set[str]) -> Path:
    """A landed persons file that holds one of `keys`."""
    for path in sorted((data_dir / "landing").rglob("*.persons.parquet")):
        if keys & set(pq.read_table(path, columns=["person_key"]).column("person_key").to_pylist()):
            return path
    raise AssertionError("no landed persons file holds the keys")


def keys_of(run: FlowRun, table: str) -> set[str]:
    return {key for (key,) in run.query(f"select person_key from {table}")}


def pending(run: FlowRun) -> list[tuple[str, str]]:
    return run.query("select landed_file, problem from landing.erasure_files where status = 'pending'")


@dataclass
class Erasure:
    """A run whose erasure met one corrupt landed persons file."""

    run: FlowRun
    records: list[dict[str, Any]]
    forgotten: set[str]
    corrupt: Path
    original: bytes
    identity_file: Path


def erase_with_a_corrupt_file(
    twin: FakerTwin, run_pipeline: Callable[..., FlowRun], tmp_path: Path
) -> Erasure:
    """Run, corrupt one landed persons file holding a forgotten person, forget (exit code 1)."""
    faults = TwinFaults(bad_record_rate=0.05)
    twin.set_faults(faults)
    first = run_pipeline(twin.url, **PARAMS)
    assert first.state.is_completed(), first.state.message
    expected = expected_from_served(twin.served(), faults, REFERENCE_DATE, SECRET)
    published, quarantined = forgettable(expected, SECRET)
    records = published + quarantined
    forgotten = {person_key(record, SECRET) for record in records}
    identity_file = tmp_path / "erasure-request.jsonl"  # outside the data folder, as a request would be
    identity_file.write_text(identity_lines(records))
    corrupt = file_holding(first.data_dir, forgotten)
    original = corrupt.read_bytes()
    corrupt.write_bytes(b"not parquet")

    assert forget(identity_file, first.data_dir) == 1
    return Erasure(first, records, forgotten, corrupt, original, identity_file)


def test_forget_erases_from_the_warehouse_names_an_unreadable_file_and_rewrites_it_once_restored(
    twin: FakerTwin,
    run_pipeline: Callable[..., FlowRun],
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
    tmp_path: Path,
) -> None:
    erasure = erase_with_a_corrupt_file(twin, run_pipeline, tmp_path)
    first, forgotten, corrupt = erasure.run, erasure.forgotten, erasure.corrupt

    out, err = capsys.readouterr()
    assert "persons_erased: 4" in out and "files_not_rewritten: 1" in out
    lines = [line for line in err.splitlines() if line.startswith("persons-pipeline forget:")]
    assert len(lines) == 1, err
    assert str(corrupt) in lines[0] and "ArrowInvalid" in lines[0]
    assert "already erased from every warehouse layer" in lines[0]
    assert "run `persons-pipeline forget`" in lines[0]
    assert "Traceback" not in err and not [record for record in caplog.records if record.exc_info]
    said = out + err + "\n".join(record.getMessage() for record in caplog.records)
    assert not any(record[name] in said for record in erasure.records for name in IDENTITY)
    for table in (
        "staging.persons",
        "staging.persons_rebuild",
        "landing.persons",
        "landing.quarantined_persons",
    ):
        assert not forgotten & keys_of(first, table), table
    assert keys_of(first, "staging.tombstones") == forgotten
    assert first.report_after()["total_persons"] == first.report["total_persons"] - 3
    relative = corrupt.relative_to(first.data_dir / "landing").as_posix()
    assert pending(first) == [(relative, "ArrowInvalid while reading the file")]
    warehouse_file = first.data_dir / "warehouse.duckdb"
    parked = corrupt.rename(tmp_path / "corrupt.bin")  # it holds b"not parquet"; the scan reads Parquet
    where = {
        finding.how
        for finding in scan([first.data_dir], Needles(substrings=forgotten))
        if finding.how != "bytes" or finding.path != warehouse_file  # DuckDB's free blocks (docs/privacy.md)
    }
    assert where == {"duckdb:staging.tombstones.person_key"}  # every other landed file was rewritten
    parked.rename(corrupt)

    corrupt.write_bytes(erasure.original)  # restored from a backup: it still holds a forgotten person
    assert forget(erasure.identity_file, first.data_dir) == 0

    out, err = capsys.readouterr()
    assert "persons_erased: 0" in out and "files_rewritten: 1" in out and "files_not_rewritten: 0" in out
    assert not forgotten & landed_keys(first.data_dir)
    assert pending(first) == []
    assert forget(erasure.identity_file, first.data_dir) == 0  # a third time: nothing left to do
    assert first.query("select count(*) from staging.tombstones") == [(4,)]
    assert first.query("select count(*) from landing.erasures") == [(3,)]


def test_the_next_run_retries_a_pending_rewrite_and_goes_on_while_the_file_is_unreadable(
    twin: FakerTwin,
    run_pipeline: Callable[..., FlowRun],
    caplog: pytest.LogCaptureFixture,
    tmp_path: Path,
) -> None:
    erasure = erase_with_a_corrupt_file(twin, run_pipeline, tmp_path)
    first, forgotten, corrupt = erasure.run, erasure.forgotten, erasure.corrupt
    caplog.set_level(logging.INFO)

    still_corrupt = run_pipeline(twin.url, data_dir=first.data_dir, **PARAMS)

    assert still_corrupt.state.is_completed(), still_corrupt.state.message
    assert len(pending(first)) == 1
    assert any(
        "event=erasure_file_not_rewritten" in r.message and str(corrupt) in r.message for r in caplog.records
    )
    caplog.clear()
    corrupt.write_bytes(erasure.original)

    restored = run_pipeline(twin.url, data_dir=first.data_dir, **PARAMS)

    assert restored.state.is_completed(), restored.state.message
    assert pending(first) == [] and not forgotten & landed_keys(first.data_dir)
    assert any(
        "event=erasure_files_rewritten" in r.message and "rewritten=1" in r.message for r in caplog.records
    )
    assert not forgotten & keys_of(restored, "staging.persons")
