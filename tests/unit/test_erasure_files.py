"""The erasure on DuckDB: one transaction that forgets in every layer and notes the landed files to rewrite;
the pending files rewritten afterwards, an unreadable one kept pending with its problem."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from flows.analytics.project import dbt_vars, duckdb_target
from flows.analytics.runner import DbtProcess
from flows.anonymise.transform import PERSONS_SCHEMA, QUARANTINE_SCHEMA
from flows.landing.files import LandedBatch, LocalLandingStore, table_to_parquet
from flows.operations.forget import erase
from flows.rawdata.identities import IdentityKeys
from flows.run.landed_rewrites import rewrite_pending_files
from flows.warehouse import batch_store
from flows.warehouse.base import utc_now
from flows.warehouse.duckdb_warehouse import DuckDBWarehouse
from flows.warehouse.erasures import ErasureRequest, erase_rows
from flows.warehouse.generations import Generation, PublishedBatch, begin_generation

REF = date(2026, 6, 15)
GENERATION = Generation("g1", "fp1", REF)


def persons(keys: list[str]) -> pa.Table:
    columns = {name: [f"{name}-x"] * len(keys) for name in PERSONS_SCHEMA.names}
    columns["person_key"] = keys
    columns["age_reference_date"] = [REF] * len(keys)
    return pa.Table.from_pydict(columns, schema=PERSONS_SCHEMA)


def quarantine(keys: list[str]) -> pa.Table:
    return pa.table(
        {
            "person_key": keys,
            "quarantine_reason": ["missing_email"] * len(keys),
            "page_number": pa.array([0] * len(keys), pa.int32()),
            "record_index": pa.array(list(range(len(keys))), pa.int32()),
            "page_seed": pa.array([1] * len(keys), pa.int64()),
        },
        schema=QUARANTINE_SCHEMA,
    )


def land_and_publish(
    house: DuckDBWarehouse, store: LocalLandingStore, batch_id: str, keys: list[str]
) -> None:
    """Land a batch's two files, load and merge it (its last key quarantined)."""
    table, held = persons(keys[:-1]), quarantine(keys[-1:])
    landed = LandedBatch(
        batch_id=batch_id,
        batch_index=0,
        landed_by_run="r1",
        persons_key=f"2026-06-15/r1/{batch_id}.persons.parquet",
        quarantine_key=f"2026-06-15/r1/{batch_id}.quarantine.parquet",
        persons=table.num_rows,
        quarantined=held.num_rows,
        extracted=len(keys),
        duplicates=0,
        persons_sha256="",
        requested=len(keys),
        key_fingerprint=GENERATION.key_fingerprint,
    )
    store.write_bytes(landed.persons_key, table_to_parquet(table))
    store.write_bytes(landed.quarantine_key, table_to_parquet(held))
    batch_store.load_batch(house, landed, table, held, "r1", GENERATION.generation_id)
    batch_store.record_validation(house, "r1", batch_id, True, [], "docs")
    batch_store.merge_batch(house, "r1", landed, GENERATION, PublishedBatch(batch_id, {"locale": "x"}, []))


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A migrated warehouse with the dbt models built: the erasure's count reads the quarantine model."""
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
    begin_generation(house, GENERATION, "r0", "policy")
    return house


@pytest.fixture
def store(tmp_path: Path, warehouse: DuckDBWarehouse) -> LocalLandingStore:
    landing = LocalLandingStore(tmp_path / "landing")
    land_and_publish(warehouse, landing, "b1", ["k1", "k2", "k3"])
    land_and_publish(warehouse, landing, "b2", ["k4", "k5", "k6"])
    return landing


def request(*keys: str) -> ErasureRequest:
    return ErasureRequest("e-1", keys, len(keys), GENERATION.key_fingerprint, "g1", utc_now())


def rows(house: DuckDBWarehouse, sql: str) -> list[tuple[object, ...]]:
    with house.cursor() as cursor:
        return cursor.run(sql)


def file_keys(store: LocalLandingStore, key: str) -> list[str]:
    return pq.read_table(store.uri(key)).column("person_key").to_pylist()


def test_one_transaction_forgets_in_every_layer_and_notes_the_files_to_rewrite(
    warehouse: DuckDBWarehouse, store: LocalLandingStore
) -> None:
    erased = erase_rows(warehouse, request("k1", "k3"))  # k3 is quarantined only

    assert (erased.persons_erased, erased.staging_rows_removed) == (2, 1)
    assert (erased.landing_rows_removed, erased.quarantine_rows_removed) == (1, 1)
    for table in ("staging.persons", "landing.persons", "landing.quarantined_persons"):
        assert not {"k1", "k3"} & {key for (key,) in rows(warehouse, f"select person_key from {table}")}
    assert rows(warehouse, "select landed_file, status from landing.erasure_files order by 1") == [
        ("2026-06-15/r1/b1.persons.parquet", "pending"),
        ("2026-06-15/r1/b1.quarantine.parquet", "pending"),
    ]
    assert rows(warehouse, "select persons_erased, files_rewritten from landing.erasures") == [(2, 0)]
    assert file_keys(store, "2026-06-15/r1/b1.persons.parquet") == ["k1", "k2"]  # not yet rewritten


def test_a_failure_inside_the_transaction_changes_nothing(
    warehouse: DuckDBWarehouse, store: LocalLandingStore
) -> None:
    rows(warehouse, "drop table landing.erasures")  # the audit row, written last, cannot be written

    with pytest.raises(Exception, match="erasures"):
        erase_rows(warehouse, request("k1"))

    assert rows(warehouse, "select count(*) from staging.tombstones") == [(0,)]
    assert rows(warehouse, "select count(*) from landing.erasure_files") == [(0,)]
    assert ("k1",) in rows(warehouse, "select person_key from staging.persons")


def test_pending_files_are_rewritten_and_an_unreadable_one_stays_pending_until_it_can_be(
    warehouse: DuckDBWarehouse, store: LocalLandingStore
) -> None:
    erase_rows(warehouse, request("k1", "k3", "k4"))
    broken = "2026-06-15/r1/b2.persons.parquet"
    original = Path(store.uri(broken)).read_bytes()
    Path(store.uri(broken)).write_bytes(b"not parquet")

    first = rewrite_pending_files(warehouse, store)

    assert first.rewritten == 2 and [file.location for file in first.unrewritten] == [store.uri(broken)]
    assert first.unrewritten[0].problem == "ArrowInvalid while reading the file"
    assert file_keys(store, "2026-06-15/r1/b1.persons.parquet") == ["k2"]
    assert file_keys(store, "2026-06-15/r1/b1.quarantine.parquet") == []
    assert rows(
        warehouse, "select landed_file, problem from landing.erasure_files where status = 'pending'"
    ) == [(broken, "ArrowInvalid while reading the file")]
    assert rows(warehouse, "select files_rewritten from landing.erasures") == [(2,)]

    Path(store.uri(broken)).write_bytes(original)  # restored from a backup, k4 still in it
    second = rewrite_pending_files(warehouse, store)

    assert (second.rewritten, second.unrewritten) == (1, ())
    assert file_keys(store, broken) == ["k5"]
    assert rows(warehouse, "select count(*) from landing.erasure_files where status = 'pending'") == [(0,)]
    assert rows(warehouse, "select files_rewritten from landing.erasures") == [(3,)]
    assert rewrite_pending_files(warehouse, store).attempted == 0  # nothing left: one query


def test_a_file_that_is_gone_holds_nobody_and_a_second_erasure_waits_for_it_too(
    warehouse: DuckDBWarehouse, store: LocalLandingStore
) -> None:
    erase_rows(warehouse, request("k1"))
    erase_rows(warehouse, ErasureRequest("e-2", ("k2",), 1, "fp1", "g1", utc_now()))
    Path(store.uri("2026-06-15/r1/b1.persons.parquet")).unlink()

    done = rewrite_pending_files(warehouse, store)

    assert (done.rewritten, done.unrewritten) == (1, ())  # one file, waited for by both erasures
    assert rows(warehouse, "select erasure_id, files_rewritten from landing.erasures order by 1") == [
        ("e-1", 1),
        ("e-2", 1),
    ]


def test_forget_again_after_a_crash_between_the_transaction_and_the_files_completes(
    warehouse: DuckDBWarehouse, store: LocalLandingStore
) -> None:
    erase_rows(warehouse, request("k1"))  # ... and the process dies before any file is rewritten

    again = erase(warehouse, store, IdentityKeys(("k1",), 1), GENERATION.key_fingerprint)

    assert again.counts.persons_erased == 0 and again.counts.files_rewritten == 1
    assert again.unrewritten == ()
    assert file_keys(store, "2026-06-15/r1/b1.persons.parquet") == ["k2"]
    assert rows(warehouse, "select count(*) from staging.tombstones") == [(1,)]
