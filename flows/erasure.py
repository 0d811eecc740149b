"""The right to be forgotten (GDPR Art. 17): `persons-pipeline forget --identity-file F`.

The identity file's persons become person_keys under the current key (in a raw-data process, by the
anonymiser's own key derivation). For each: a tombstone (the key, which key made it, the time), then every
row in staging, the rebuild table and the landing tables goes, and every landed Parquet file holding one is
rewritten without it. Views above staging read staging, so they forget at once. Later loads, reruns and
backfills drop tombstoned persons in the raw-data worker, before anything is anonymised or landed. Only
counts are printed, logged and audited (`landing.erasures`).
"""

from __future__ import annotations

import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, cast
from uuid import uuid4

import pyarrow as pa
import pyarrow.compute as pc
from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE

from flows.generations import check_key
from flows.landing.files import LandingStore, parquet_to_table, table_to_parquet
from flows.parameters import ParameterError, resolve_parameters
from flows.rawdata.identities import IdentityKeys
from flows.run_context import log_event
from flows.runtime.alerts import notify_failure
from flows.runtime.remote import RemoteObject
from flows.runtime.slots import warehouse_slot
from flows.settings import get_settings
from flows.sql_files import bind_named
from flows.stages import secret_fingerprint
from flows.targets import make_landing_store, make_warehouse, resolve_targets
from flows.warehouse import Warehouse
from flows.warehouse.base import utc_now
from flows.warehouse.generations import REBUILD, STAGING, add_tombstones, serving_generation

LANDING_PERSONS = "landing.persons"
LANDING_QUARANTINE = "landing.quarantined_persons"


@dataclass(frozen=True)
class ErasureCounts:
    """What one erasure did: counts only."""

    erasure_id: str
    identities: int
    persons_erased: int
    staging_rows_removed: int
    landing_rows_removed: int
    quarantine_rows_removed: int
    files_rewritten: int


def identity_keys(identity_file: Path, secret: bytes) -> IdentityKeys:
    """The person_keys of an identity file, derived in a process of its own (the file is raw data)."""
    remote = RemoteObject("flows.rawdata.identities:IdentityKeyer")
    try:
        keyer = remote.create()
        return cast(IdentityKeys, remote.call(keyer, "keys_of_file", str(identity_file.resolve()), secret))
    finally:
        remote.close()


def _count(warehouse: Warehouse, stem: str, table: str, fingerprint: str) -> int:
    """Run a count of tombstoned rows in `table`."""
    statement = warehouse.sql(stem).statements()[0].format(target=table)
    sql, values = bind_named(statement, {"key_fingerprint": fingerprint})
    with warehouse.cursor() as cursor:
        (count,) = cursor.run(sql, values)[0]
    return int(count)


def rewrite_landed_files(store: LandingStore, files: list[str], forgotten: frozenset[str]) -> int:
    """Rewrite each persons/quarantine file that holds a forgotten key without it; return files changed."""
    keep_out = pa.array(sorted(forgotten), pa.string())
    rewritten = 0
    for persons_key in files:
        for key in (persons_key, persons_key.removesuffix(".persons.parquet") + ".quarantine.parquet"):
            if not store.exists(key):
                continue
            table = parquet_to_table(store.read_bytes(key))
            kept = table.filter(pc.invert(pc.is_in(table["person_key"], value_set=keep_out)))
            if kept.num_rows != table.num_rows:
                store.write_bytes(key, table_to_parquet(kept))
                rewritten += 1
    return rewritten


def erase(warehouse: Warehouse, store: LandingStore, keys: IdentityKeys, fingerprint: str) -> ErasureCounts:
    """Tombstone the keys, rewrite the landed files holding them, remove their rows; audit the counts."""
    requested_at = utc_now()
    serving = serving_generation(warehouse)
    add_tombstones(warehouse, list(keys.keys), fingerprint)
    forgotten = frozenset(keys.keys)
    persons = _count(warehouse, "staging/count_forgotten_persons", STAGING, fingerprint)
    with warehouse.cursor() as cursor:
        files = [
            str(name)
            for (name,) in cursor.execute(
                warehouse.sql("landing/select_files_with_forgotten"), key_fingerprint=fingerprint
            )
        ]
    # Files first: a crash after this point leaves the rows, so running forget again finds the batches again.
    rewritten = rewrite_landed_files(store, files, forgotten)
    removed = {
        table: _count(warehouse, "staging/count_forgotten_rows", table, fingerprint)
        for table in (STAGING, REBUILD, LANDING_PERSONS, LANDING_QUARANTINE)
    }
    counts = ErasureCounts(
        erasure_id=f"e-{uuid4().hex[:12]}",
        identities=keys.identities,
        persons_erased=persons,
        staging_rows_removed=removed[STAGING] + removed[REBUILD],
        landing_rows_removed=removed[LANDING_PERSONS],
        quarantine_rows_removed=removed[LANDING_QUARANTINE],
        files_rewritten=rewritten,
    )
    with warehouse.cursor() as cursor, cursor.transaction():
        for table in (STAGING, REBUILD, LANDING_PERSONS, LANDING_QUARANTINE):
            statement = warehouse.sql("staging/delete_forgotten_persons").statements()[0]
            sql, values = bind_named(statement.format(target=table), {"key_fingerprint": fingerprint})
            cursor.run(sql, values)
        cursor.execute(
            warehouse.sql("landing/insert_erasure"),
            **{name: value for name, value in asdict(counts).items()},
            generation_id=serving.generation_id if serving else None,
            key_fingerprint=fingerprint,
            requested_at=requested_at,
            finished_at=utc_now(),
        )
    return counts


@task(name="erase-persons", cache_policy=NO_CACHE, persist_result=False)
def erase_persons(
    identity_file: str, data_dir: str | None, warehouse: str | None, landing_url: str | None
) -> ErasureCounts:
    """Derive the keys, refuse a key staging does not hold, erase; counts only leave this task."""
    settings = get_settings()
    params = resolve_parameters(settings, data_dir=data_dir, warehouse=warehouse, landing_url=landing_url)
    secret = settings.person_key_secret()
    settings.require_real_secret(secret)
    targets = resolve_targets(settings, params)
    store = make_landing_store(targets, settings)
    data_path = params.data_dir.resolve()
    keys = identity_keys(Path(identity_file), secret.get_secret_value().encode())
    with warehouse_slot(targets, settings, data_path), make_warehouse(targets, data_path, settings) as house:
        house.migrate()
        check_key(house, secret, rekey=False)
        return erase(house, store, keys, secret_fingerprint(secret))


@flow(name="persons-forget", persist_result=False, on_failure=[notify_failure], on_crashed=[notify_failure])
def persons_forget(
    identity_file: str,
    data_dir: str | None = None,
    warehouse: str | None = None,
    landing_url: str | None = None,
) -> dict[str, Any]:
    """Erase the persons an identity file names from every layer and the landed files (counts only)."""
    counts = erase_persons(identity_file, data_dir, warehouse, landing_url)
    log_event(get_run_logger(), "persons_forgotten", **asdict(counts))
    return asdict(counts)


def forget_command(args: Any) -> int:
    """`persons-pipeline forget`: exit 0 with counts, 2 for a bad file or key, 1 if the erasure failed."""
    from flows.rawdata.identities import IdentityFileError  # noqa: PLC0415

    if not Path(args.identity_file).is_file():
        print("persons-pipeline forget: error: --identity-file: no such file", file=sys.stderr)
        return 2
    state = persons_forget(
        identity_file=str(args.identity_file),
        data_dir=args.data_dir,
        warehouse=args.warehouse,
        landing_url=args.landing_url,
        return_state=True,
    )
    if state.is_completed():
        counts = state.result()
        for name, value in counts.items():
            print(f"{name}: {value}")
        return 0
    try:
        state.result()
    except (IdentityFileError, ParameterError) as exc:
        print(f"persons-pipeline forget: error: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:
        print(f"persons-pipeline forget: failed: {type(exc).__name__}: {exc}", file=sys.stderr)
    return 1


__all__ = ["ErasureCounts", "erase", "forget_command", "persons_forget"]
