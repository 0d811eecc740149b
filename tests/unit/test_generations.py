"""One key, one reference date, incremental pages, complete pages, tombstones: the pure parts."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pyarrow as pa
import pytest

from flows.anonymise.transform import person_keys
from flows.parameters import RunDefaults, resolve_parameters
from flows.plan import PageRequest
from flows.rawdata.completeness import IncompletePageError, check_page_count
from flows.rawdata.exclusions import Exclusions, drop_forgotten
from flows.rawdata.identities import IdentityFileError, read_identities
from flows.report.render import accounting_of
from flows.run.publication import (
    KeyMismatch,
    PageSizeMismatch,
    check_page_size,
    decide_generation,
    plan_publication,
)
from flows.warehouse.generations import Generation, PublishedBatch

REF = date(2026, 6, 15)
SERVING = Generation("g1", "fp-old", REF)


def test_a_second_key_is_refused_unless_re_keying() -> None:
    with pytest.raises(KeyMismatch, match="persons-pipeline rekey"):
        decide_generation(SERVING, "fp-new", REF, rekey=False)
    rebuilt = decide_generation(SERVING, "fp-new", REF, rekey=True)
    assert rebuilt.rebuilding and rebuilt.key_fingerprint == "fp-new" and rebuilt.target.endswith("_rebuild")


def test_a_new_reference_date_rebuilds_and_the_same_one_continues() -> None:
    assert decide_generation(SERVING, "fp-old", REF, rekey=False) is SERVING
    later = decide_generation(SERVING, "fp-old", date(2030, 1, 1), rekey=False)
    assert later.rebuilding and later.generation_id != SERVING.generation_id
    first = decide_generation(None, "fp", REF, rekey=False)
    assert not first.rebuilding and first.target == "staging.persons"


def held_batches(total: int) -> list[PublishedBatch]:
    params = resolve_parameters(RunDefaults(), total=total, page_size=500, pages_per_batch=8, seed=3)
    planned, *_ = plan_publication(params, Generation("g0", "fp", REF), [])
    return [batch.published for batch in planned]


def test_growing_total_plans_only_the_pages_not_held() -> None:
    held = held_batches(2500)
    grown = resolve_parameters(RunDefaults(), total=4000, page_size=500, pages_per_batch=8, seed=3)
    planned, skipped_pages, skipped_persons, _ = plan_publication(grown, SERVING, held)
    assert [page.number for batch in planned for page in batch.plan.pages] == [5, 6, 7]
    assert (skipped_pages, skipped_persons) == (5, 2500)
    same = resolve_parameters(RunDefaults(), total=2500, page_size=500, pages_per_batch=8, seed=3)
    assert plan_publication(same, SERVING, held)[0] == []


def test_another_page_size_for_published_pages_is_refused_before_any_fetch() -> None:
    held = held_batches(5000)  # 10 pages of 500, seed 3
    halved = resolve_parameters(RunDefaults(), total=5000, page_size=250, pages_per_batch=8, seed=3)
    with pytest.raises(PageSizeMismatch, match=r"--page-size 250: .* fetched 500 per page.*--page-size 500"):
        check_page_size(halved, held)
    doubled = resolve_parameters(RunDefaults(), total=5000, page_size=1000, pages_per_batch=8, seed=3)
    with pytest.raises(PageSizeMismatch, match="fetched 500 per page"):
        check_page_size(doubled, held)
    # The same page size (a grown total), another seed (other persons) or another population: allowed.
    for params in (
        resolve_parameters(RunDefaults(), total=8000, page_size=500, pages_per_batch=8, seed=3),
        resolve_parameters(RunDefaults(), total=5000, page_size=250, pages_per_batch=8, seed=4),
        resolve_parameters(RunDefaults(), total=5000, page_size=250, seed=3, locale="de_DE"),
    ):
        check_page_size(params, held)


def test_the_page_size_of_older_batches_is_told_by_their_pages() -> None:
    # Batches published before the page size was recorded: only their pages tell it.
    legacy = [
        PublishedBatch(batch.batch_id, {**batch.page_query, "page_size": None}, batch.pages)
        for batch in held_batches(1200)  # pages of 500, 500, 200
    ]
    with pytest.raises(PageSizeMismatch, match="fetched 500 per page"):
        check_page_size(resolve_parameters(RunDefaults(), total=1200, page_size=400, seed=3), legacy)
    # One short page alone may be a whole run's only page: a larger page size is not refused for it.
    single = [
        PublishedBatch(batch.batch_id, {**batch.page_query, "page_size": None}, batch.pages)
        for batch in held_batches(300)
    ]
    check_page_size(resolve_parameters(RunDefaults(), total=3000, page_size=1000, seed=3), single)


def test_a_rebuild_replays_every_held_page_once_plus_the_new_ones() -> None:
    held = held_batches(2500)
    grown = resolve_parameters(RunDefaults(), total=3000, page_size=500, pages_per_batch=4, seed=3)
    rebuild = Generation("g2", "fp", date(2030, 1, 1), rebuilding=True)
    planned, _, _, replayed = plan_publication(grown, rebuild, held)
    assert [page.number for batch in planned for page in batch.plan.pages] == [0, 1, 2, 3, 4, 5]
    assert replayed == 2500 and len(planned) == 2


def test_short_empty_and_long_pages_are_refused_by_count() -> None:
    page = PageRequest(number=7, seed=1, quantity=500)
    check_page_count(500, page)
    for received in (0, 250, 505):
        with pytest.raises(
            IncompletePageError, match=f"source returned {received} of 500 records for page 7"
        ):
            check_page_count(received, page)


def identities(*names: str) -> pa.Table:
    return pa.table(
        {
            "firstname": list(names),
            "lastname": ["Doe"] * len(names),
            "email": [f"{name}@example.com" for name in names],
            "phone": ["+1 555 0100"] * len(names),
            "birthday": ["1980-01-01"] * len(names),
        }
    )


def test_forgotten_records_are_dropped_and_found_by_their_previous_key() -> None:
    raw = identities("ann", "bob", "cid")
    new, old = b"new-key", b"old-key"
    new_keys, old_keys = person_keys(raw, new).to_pylist(), person_keys(raw, old).to_pylist()
    kept, dropped, translated = drop_forgotten(raw, new, Exclusions(frozenset({new_keys[0]})))
    assert (kept.column("firstname").to_pylist(), dropped, translated) == (["bob", "cid"], 1, [])
    exclusions = Exclusions(frozenset(), frozenset({old_keys[2]}), old)
    kept, dropped, translated = drop_forgotten(raw, new, exclusions)
    assert (kept.num_rows, dropped, translated) == (2, 1, [new_keys[2]])
    assert "old-key" not in repr(exclusions)


def test_identity_file_errors_name_the_line_never_a_value(tmp_path: Path) -> None:
    good = '{"firstname": "Zed", "lastname": "Q", "email": "z@q.io", "phone": "1", "birthday": "1990-01-01"}'
    path = tmp_path / "request.jsonl"
    path.write_text(good + "\n\n" + '{"firstname": "Secretvalue"}\n')
    with pytest.raises(IdentityFileError) as error:
        read_identities(path)
    assert "line 3" in str(error.value) and "Secretvalue" not in str(error.value)
    path.write_text(good + "\n")
    assert read_identities(path).num_rows == 1


def test_accounting_adds_up() -> None:
    counts = accounting_of(
        requested=1000, received=900, published=800, quarantined=50, rejected=100, erased=5
    )
    assert counts["duplicates"] == 45
    assert counts["requested"] == sum(
        counts[k] for k in ("published", "quarantined", "rejected", "erased", "duplicates")
    )
