"""The DuckDB warehouse: migrations, retry-safe loads, idempotent merges and the reporting models.

The reporting models are dbt's: they are built once per module (k=2, so the small test data is visible)
into a template warehouse that every test copies."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pyarrow as pa
import pytest

from flows.analytics.project import dbt_vars, duckdb_target
from flows.analytics.runner import DbtProcess
from flows.anonymise.transform import PERSONS_SCHEMA, QUARANTINE_SCHEMA
from flows.landing.files import LandedBatch
from flows.report.reads import read_quality_trend, read_report
from flows.warehouse import batch_store
from flows.warehouse.duckdb_warehouse import DuckDBWarehouse
from flows.warehouse.generations import Generation, PublishedBatch, begin_generation

REF = date(2026, 6, 15)
GENERATION = Generation("g1", "fp1", REF)


def persons(rows: list[tuple[str, str, str, str, str, str]]) -> pa.Table:
    """rows of (key, gender, age_group, email_domain, country, country_code)."""
    columns = list(zip(*rows, strict=True)) if rows else [[]] * 6
    arrays = [pa.array(list(column), pa.string()) for column in columns]
    return pa.Table.from_arrays([*arrays, pa.array([REF] * len(rows), pa.date32())], schema=PERSONS_SCHEMA)


def quarantine(keys: list[tuple[str, str]]) -> pa.Table:
    return pa.table(
        {
            "person_key": [k for k, _ in keys],
            "quarantine_reason": [r for _, r in keys],
            "page_number": pa.array([0] * len(keys), pa.int32()),
            "record_index": pa.array(list(range(len(keys))), pa.int32()),
            "page_seed": pa.array([1] * len(keys), pa.int64()),
        },
        schema=QUARANTINE_SCHEMA,
    )


def landed(batch_id: str, table: pa.Table, quarantined: pa.Table | None = None) -> LandedBatch:
    q = quarantined if quarantined is not None else quarantine([])
    return LandedBatch(
        batch_id=batch_id,
        batch_index=0,
        landed_by_run="r",
        persons_key=f"{batch_id}.parquet",
        quarantine_key=f"{batch_id}.q.parquet",
        persons=table.num_rows,
        quarantined=q.num_rows,
        extracted=table.num_rows + q.num_rows,
        duplicates=0,
        persons_sha256="",
        requested=table.num_rows + q.num_rows,
        key_fingerprint=GENERATION.key_fingerprint,
    )


def merge(house: DuckDBWarehouse, run_id: str, batch: LandedBatch) -> object:
    return batch_store.merge_batch(
        house, run_id, batch, GENERATION, PublishedBatch(batch.batch_id, {"locale": "x"}, [])
    )


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A migrated warehouse with the dbt models built (one dbt build for the module)."""
    folder = tmp_path_factory.mktemp("template")
    house = DuckDBWarehouse(folder / "warehouse.duckdb")
    house.migrate()
    process = DbtProcess(duckdb_target(house.path, 2, "256MB"), folder / "dbt", dbt_vars(2), folder / "dbt")
    process.start()
    try:
        process.ready()
        reply, results = process.run("build", "--exclude-resource-type", "test")
    finally:
        process.close()
    assert reply.success, results.failure_message() if results else reply.error
    yield house.path


@pytest.fixture
def warehouse(template: Path, tmp_path: Path) -> DuckDBWarehouse:
    for source in template.parent.glob("warehouse.duckdb*"):
        shutil.copyfile(source, tmp_path / source.name)
    house = DuckDBWarehouse(tmp_path / "warehouse.duckdb")
    house.migrate()
    begin_generation(house, GENERATION, "run0", "policy")
    return house


def publish(
    house: DuckDBWarehouse, run_id: str, batch_id: str, table: pa.Table, q: pa.Table | None = None
) -> None:
    q = q if q is not None else quarantine([])
    batch_store.load_batch(house, landed(batch_id, table, q), table, q, run_id, GENERATION.generation_id)
    batch_store.record_validation(house, run_id, batch_id, True, [], "docs")
    merge(house, run_id, landed(batch_id, table, q))


def test_migrations_are_applied_once(tmp_path: Path) -> None:
    house = DuckDBWarehouse(tmp_path / "w.duckdb")
    assert len(house.migrate()) >= 3
    assert house.migrate() == []


def test_load_is_retry_safe_and_merge_idempotent(warehouse: DuckDBWarehouse) -> None:
    table = persons([("k1", "male", "[21-30]", "gmail.com", "Germany", "DE")])
    batch_store.load_batch(warehouse, landed("b1", table), table, quarantine([]), "run1", "g1")
    batch_store.load_batch(
        warehouse, landed("b1", table), table, quarantine([]), "run1", "g1"
    )  # a retry replaces
    with warehouse.cursor() as cursor:
        assert cursor.run("select count(*) from landing.persons") == [(1,)]
    first = merge(warehouse, "run1", landed("b1", table))
    again = merge(warehouse, "run1", landed("b1", table))
    assert (first.inserted, again.inserted, again.staging_rows) == (1, 0, 1)


def test_merge_updates_changed_rows_only(warehouse: DuckDBWarehouse) -> None:
    publish(warehouse, "run1", "b1", persons([("k1", "male", "[21-30]", "gmail.com", "Germany", "DE")]))
    publish(warehouse, "run2", "b1", persons([("k1", "male", "[31-40]", "gmail.com", "Germany", "DE")]))
    with warehouse.cursor() as cursor:
        assert cursor.run("select age_group, run_id from staging.persons") == [("[31-40]", "run2")]


def test_report_questions(warehouse: DuckDBWarehouse) -> None:
    # every person twice (k=2 withholds single persons): the same answers as once, counts doubled
    once = [
        ("a", "male", "[61-70]", "gmail.com", "Germany", "DE"),
        ("b", "female", "[51-60]", "googlemail.com", "Germany", "DE"),
        ("c", "female", "[71-80]", "yahoo.com", "Germany", "DE"),
        ("d", "male", "[11-20]", "gmail.com", "France", "FR"),
        ("e", "male", "[61-70]", "gmail.com", "Austria", "AT"),
        ("f", "male", "[01-10]", "gmail.com", " france ", "FR"),
        ("g", "male", "[121-130]", "gmail.com", "Belgium", "BE"),
        ("h", "male", "[31-40]", "example.com", "Chile", "CL"),
    ]
    rows = [(f"{key}{copy}", *rest) for key, *rest in once for copy in (1, 2)]
    publish(
        warehouse,
        "run1",
        "b1",
        persons(rows),
        quarantine([("q1", "birthday_in_future"), ("q2", "address_missing")]),
    )
    report = read_report(warehouse)
    assert report.total_persons == 16
    assert report.gmail_germany_share_pct == pytest.approx(100 * 4 / 16)
    # France ("France" and " france " standardised together) and Germany tie at 4, broken by name;
    # then the 2-user tie Austria/Belgium is broken by name as well
    assert report.top_gmail_countries == [
        {"country": "France", "gmail_users": 4},
        {"country": "Germany", "gmail_users": 4},
        {"country": "Austria", "gmail_users": 2},
    ]
    assert report.gmail_over_60 == 6  # a [61-70], e [61-70], g [121-130]; b is [51-60]
    assert [group["age_group"] for group in report.age_groups] == [
        "[01-10]",
        "[11-20]",
        "[31-40]",
        "[51-60]",
        "[61-70]",
        "[71-80]",
        "[121-130]",
    ]
    assert {g["age_group"]: g["persons"] for g in report.age_groups}["[61-70]"] == 4
    assert report.quarantined == 2
    assert report.quarantine_reasons == {"address_missing": 1, "birthday_in_future": 1}
    assert report.rejected_batches == 0
    assert report.reference_date == REF.isoformat() and report.key_fingerprint == "fp1"
    assert report.accounting == {  # 16 persons published and 2 quarantined of 18 received
        "requested": 18,
        "received": 18,
        "published": 16,
        "quarantined": 2,
        "rejected": 0,
        "erased": 0,
        "duplicates": 0,
    }
    assert report.k_anonymity["k"] == 2 and report.k_anonymity["persons"] == 16


def test_a_group_under_k_is_withheld_from_the_report(warehouse: DuckDBWarehouse) -> None:
    rows = [("a1", "male", "[61-70]", "gmail.com", "Germany", "DE")]
    rows += [(f"b{n}", "female", "[31-40]", "gmail.com", "France", "FR") for n in range(2)]
    publish(warehouse, "run1", "b1", persons(rows))
    report = read_report(warehouse)
    assert report.total_persons == 3 and report.gmail_over_60 == 1  # exact single figures
    assert report.top_gmail_countries == [{"country": "France", "gmail_users": 2}]
    assert report.age_groups == [{"age_group": "[31-40]", "persons": 2}]


def test_empty_warehouse_report(warehouse: DuckDBWarehouse) -> None:
    report = read_report(warehouse)
    assert (report.total_persons, report.gmail_germany_share_pct, report.top_gmail_countries) == (0, None, [])


def test_rejected_batches_stay_visible_until_merged(warehouse: DuckDBWarehouse) -> None:
    table = persons([("k1", "male", "[21-30]", "gmail.com", "Germany", "DE")])
    batch_store.load_batch(warehouse, landed("b1", table), table, quarantine([]), "run1", "g1")
    batch_store.record_validation(warehouse, "run1", "b1", False, ["gender_in_known_set"], "docs")
    assert read_report(warehouse).rejected_batches == 1
    assert read_report(warehouse).total_persons == 0
    publish(warehouse, "run2", "b1", table)
    assert read_report(warehouse).rejected_batches == 0


def test_injection_strings_are_bound_not_executed(warehouse: DuckDBWarehouse) -> None:
    evil = "x'); drop table staging.persons; --"
    publish(
        warehouse,
        "run'; drop table landing.batches; --",
        "b1",
        persons([("k1", "male", "[21-30]", "gmail.com", evil, "DE")]),
    )
    with warehouse.cursor() as cursor:
        assert cursor.run("select country from staging.persons") == [(evil,)]
        assert cursor.run("select count(*) from landing.batches") == [(1,)]


def test_a_rebuilt_generation_switches_over_atomically_and_only_once(warehouse: DuckDBWarehouse) -> None:
    from flows.warehouse.generations import GenerationSuperseded, serving_generation, switch_to

    publish(warehouse, "run1", "b1", persons([("old", "male", "[21-30]", "gmail.com", "Germany", "DE")]))
    rebuilt = Generation("g2", "fp2", date(2030, 1, 1), rebuilding=True)
    begin_generation(warehouse, rebuilt, "run2", "policy")
    table = persons([("new", "male", "[21-30]", "gmail.com", "Germany", "DE")])
    batch = landed("b1", table)
    batch_store.load_batch(warehouse, batch, table, quarantine([]), "run2", rebuilt.generation_id)
    batch_store.merge_batch(warehouse, "run2", batch, rebuilt, PublishedBatch("b1", {"locale": "x"}, []))
    with warehouse.cursor() as cursor:  # still the old generation until the switch
        assert cursor.run("select person_key from staging.persons") == [("old",)]

    assert switch_to(warehouse, rebuilt, GENERATION) == 1

    with warehouse.cursor() as cursor:
        assert cursor.run("select person_key from staging.persons") == [("new",)]
        assert cursor.run("select count(*) from staging.persons_rebuild") == [(0,)]
    assert serving_generation(warehouse) == Generation("g2", "fp2", date(2030, 1, 1))
    with pytest.raises(GenerationSuperseded):
        switch_to(warehouse, Generation("g3", "fp2", REF, rebuilding=True), GENERATION)


def test_quality_trend_of_the_last_runs(warehouse: DuckDBWarehouse) -> None:
    assert read_quality_trend(warehouse, 10) == []
    table = persons([("k1", "male", "[21-30]", "gmail.com", "Germany", "DE")])
    batch_store.load_batch(warehouse, landed("b1", table), table, quarantine([]), "run1", "g1")
    batch_store.record_validation(warehouse, "run1", "b1", False, ["gender_in_known_set"], "docs")
    publish(
        warehouse, "run2", "b1", table, quarantine([("q1", "bad_email"), ("q2", "bad_email"), ("q3", "x")])
    )
    publish(warehouse, "run2", "b2", persons([("k2", "female", "[31-40]", "web.de", "Germany", "DE")]))
    batch_store.load_batch(warehouse, landed("b3", table), table, quarantine([]), "run3", "g1")
    batch_store.hold_back_batch(warehouse, "run3", "b3")

    trend = read_quality_trend(warehouse, 10)

    assert [run.run_id for run in trend] == ["run1", "run2", "run3"]  # oldest first
    first, second, third = trend
    assert (first.batches, first.merged_batches, first.rejected_batches, first.merged_pct) == (1, 0, 1, 0.0)
    assert (second.batches, second.merged_batches, second.merged_pct) == (2, 2, 100.0)
    assert second.quarantined_pct == 60.0  # 3 of the 5 records extracted
    assert (third.held_back_batches, third.merged_pct) == (1, 0.0)
    assert first.started_at <= second.started_at <= third.started_at
    assert [run.run_id for run in read_quality_trend(warehouse, 2)] == ["run2", "run3"]  # the latest runs


def test_the_report_reads_with_its_own_memory_cap_and_the_run_gets_its_own_back(tmp_path: Path) -> None:
    """The k-anonymous views over 10,000,000 persons ran out of the run's 128MB: the report has its cap."""
    house = DuckDBWarehouse(tmp_path / "warehouse.duckdb", memory_limit="128MB", report_memory_limit="256MB")

    def cap() -> str:
        with house.cursor() as cursor:
            return str(cursor.run("select current_setting('memory_limit')")[0][0])

    with house:
        assert cap() == "122.0 MiB"  # DuckDB shows 128 MB in MiB
        with house.reading_reports():
            assert cap() == "244.1 MiB"
        assert cap() == "122.0 MiB"
        with pytest.raises(RuntimeError), house.reading_reports():
            raise RuntimeError("a failed read")
        assert cap() == "122.0 MiB"


def test_a_larger_run_cap_is_never_lowered_for_the_report(tmp_path: Path) -> None:
    """Big batches raise the run's cap above the report's: the report keeps the larger."""
    from flows.warehouse.duckdb_warehouse import size_in_bytes

    assert size_in_bytes("128MB") == 128 * 10**6 and size_in_bytes("1.5 GiB") == 3 * 2**29
    with pytest.raises(ValueError, match="not a memory size"):
        size_in_bytes("lots")
    house = DuckDBWarehouse(tmp_path / "warehouse.duckdb", memory_limit="1GB", report_memory_limit="256MB")
    with house, house.reading_reports(), house.cursor() as cursor:
        assert cursor.run("select current_setting('memory_limit')")[0][0] == "953.6 MiB"


def test_a_report_out_of_memory_on_two_threads_is_read_again_on_one(tmp_path: Path) -> None:
    """One DuckDB thread needs about half the memory: the report is read again on one, then two are back."""
    import duckdb

    threads: list[str] = []
    house = DuckDBWarehouse(tmp_path / "warehouse.duckdb", threads=2)

    def read_report() -> str:
        with house.cursor() as cursor:
            threads.append(str(cursor.run("select current_setting('threads')")[0][0]))
        if len(threads) == 1:
            raise duckdb.OutOfMemoryException("Out of Memory Error: could not allocate block")
        return "report"

    with house:
        assert house.heavy_reads(read_report) == "report"
        assert threads == ["2", "1"]
        with house.cursor() as cursor:
            assert str(cursor.run("select current_setting('threads')")[0][0]) == "2"
