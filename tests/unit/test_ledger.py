"""The run ledger and the run's verdict, without Prefect or a warehouse."""

from __future__ import annotations

import subprocess
import sys

import pytest

from flows.landing.files import LandedBatch
from flows.run.ledger import BatchState, LedgerError, RunLedger


def landed(batch_id: str, index: int, persons: int = 90, quarantined: int = 6, duplicates: int = 3,
           forgotten: int = 1, run_id: str = "run-1") -> LandedBatch:  # fmt: skip
    """A batch of 100 requested records: 90 persons, 6 quarantined, 3 duplicates, 1 forgotten."""
    return LandedBatch(
        batch_id=batch_id,
        batch_index=index,
        landed_by_run=run_id,
        persons_key=f"{batch_id}.persons.parquet",
        quarantine_key=f"{batch_id}.quarantine.parquet",
        persons=persons,
        quarantined=quarantined,
        extracted=persons + quarantined + duplicates,
        duplicates=duplicates,
        persons_sha256="0" * 64,
        requested=100,
        forgotten=forgotten,
    )


def ledger_of(batches: int) -> RunLedger:
    return RunLedger((f"b{index}", index, 100) for index in range(batches))


def test_a_batch_moves_planned_landed_merged_and_the_run_is_published() -> None:
    ledger = ledger_of(2)
    assert [entry.state for entry in ledger.entries] == [BatchState.PLANNED, BatchState.PLANNED]
    for index in range(2):
        ledger.landed(landed(f"b{index}", index), cached=index == 1)
        ledger.merged(f"b{index}")
    assert ledger.published
    assert ledger.problems == []
    assert ledger.merged_persons == 180
    assert [batch["cached"] for batch in ledger.manifest_batches()] == [False, True]


@pytest.mark.parametrize(
    ("moves", "refused"),
    [
        (["merged"], "cannot go from planned to merged"),  # published without landing
        (["landed", "merged", "rejected"], "cannot go from merged to rejected"),  # a published batch is final
        (["not_started", "landed"], "cannot go from not_started to landed"),
        (["landed", "landed"], "cannot go from landed to landed"),
    ],
)
def test_the_state_machine_refuses_a_move_it_does_not_allow(moves: list[str], refused: str) -> None:
    ledger = ledger_of(1)
    apply = {
        "landed": lambda: ledger.landed(landed("b0", 0), cached=False),
        "merged": lambda: ledger.merged("b0"),
        "rejected": lambda: ledger.rejected("b0", ["row_count"]),
        "not_started": lambda: ledger.not_started("b0", "the run was stopped (SIGTERM)"),
    }
    for move in moves[:-1]:
        apply[move]()
    with pytest.raises(LedgerError, match=refused):
        apply[moves[-1]]()


def test_a_batch_not_planned_or_planned_twice_is_a_bug() -> None:
    ledger = ledger_of(1)
    with pytest.raises(LedgerError, match="not planned"):
        ledger.merged("b9")
    with pytest.raises(LedgerError, match="planned twice"):
        ledger.plan([("b0", 0, 100)])


def test_the_verdict_names_every_unpublished_batch_in_plan_order_then_the_runs_own_problems() -> None:
    ledger = ledger_of(5)
    ledger.landed(landed("b0", 0), cached=False)
    ledger.merged("b0")
    ledger.landed(landed("b1", 1), cached=False)
    ledger.rejected("b1", ["country_is_spreadsheet_safe", "row_count"])
    ledger.not_landed("b2", "page 3 of http://127.0.0.1:1: the source is unreachable")
    ledger.not_started("b4", "the run deadline (PERSONS_RUN_DEADLINE_S) passed")  # before b3's outcome
    ledger.landed(landed("b3", 3), cached=False)
    ledger.held_back("b3", "OSError: no space left")
    ledger.fail("generation g-1 was not switched over: the previous one keeps serving")
    assert not ledger.published
    assert ledger.problems == [
        "batch b1 rejected by the validation gate (failed: country_is_spreadsheet_safe, row_count)",
        "batch b2 not landed: page 3 of http://127.0.0.1:1: the source is unreachable",
        "batch b3 not merged: OSError: no space left",
        "batch b4 not started: the run deadline (PERSONS_RUN_DEADLINE_S) passed",
        "generation g-1 was not switched over: the previous one keeps serving",
    ]
    assert ledger.failure("/d/data_docs/run-1/index.html") == (
        "5 batch(es) were not published: "
        + "; ".join(ledger.problems)
        + "; data docs: /d/data_docs/run-1/index.html"
    )
    assert ledger.failure(None).endswith("keeps serving")


def test_the_accounting_adds_every_requested_record_up() -> None:
    ledger = ledger_of(4)
    for index in range(3):
        ledger.landed(landed(f"b{index}", index), cached=False)
    ledger.merged("b0")
    ledger.merged("b1")
    ledger.rejected("b2", ["row_count"])
    ledger.not_landed("b3", "HTTP 500")
    counts = ledger.accounting(requested=400, skipped_persons=1000)
    assert counts.as_dict() == {
        "requested": 400,
        "received": 3 * 100,  # what came back, forgotten persons included; the batch not landed: none
        "published": 2 * 90,
        "quarantined": 2 * 6,
        "duplicates": 2 * 3,
        "erased": 2 * 1,
        "rejected": 2 * 100,  # the rejected batch and the one not landed, as requested
        "skipped_already_published": 1000,
    }
    published = counts.published + counts.quarantined + counts.duplicates + counts.erased + counts.rejected
    assert published == counts.requested


def test_the_manifest_lists_each_started_batch_as_before() -> None:
    ledger = ledger_of(3)
    ledger.landed(landed("b0", 0), cached=False)
    ledger.merged("b0")
    ledger.not_landed("b1", "HTTP 500")
    ledger.not_started("b2", "the run was stopped (SIGTERM)")
    first, second = ledger.manifest_batches()
    assert first["batch_id"] == "b0" and first["merged"] and not first["rejected"] and first["persons"] == 90
    assert second == {"batch_id": "b1", "requested": 100, "merged": False, "rejected": True}


def test_a_halt_keeps_its_first_reason_and_a_run_with_nothing_planned_is_published() -> None:
    ledger = RunLedger()
    assert ledger.published and ledger.halted is None
    ledger.halt("the disk of /data is full")
    ledger.halt("the source is unreachable (batch b3)")
    assert ledger.halted == "the disk of /data is full"


def test_the_ledger_imports_neither_prefect_nor_great_expectations() -> None:
    loaded = subprocess.run(
        [sys.executable, "-c", "import sys, flows.run.ledger; print(sorted(m for m in sys.modules "
         "if m.split('.')[0] in {'prefect', 'great_expectations'}))"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert loaded.stdout.strip() == "[]"
