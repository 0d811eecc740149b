"""The right to be forgotten (GDPR Art. 17): `persons-pipeline forget --identity-file F`.

The identity file's persons become person_keys under the current key (in a raw-data process, by the
anonymiser's own key derivation). Then, in one warehouse transaction: a tombstone for each (the key, which
key made it, the time), every landed file holding one noted as a pending rewrite (`landing.erasure_files`),
their rows gone from staging, the rebuild table and the landing tables, and the audit row (`landing.erasures`,
counts only). Views above staging read staging, so they forget at once. Then every pending landed file is
rewritten without the tombstoned keys; one that cannot be read or written stays pending, is named with what to
do, and is retried by the next `forget` or run. Later loads, reruns and backfills drop tombstoned persons in
the raw-data worker, before anything is anonymised or landed. Only counts and file names are printed or
logged.
"""

from __future__ import annotations

import logging
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, cast
from uuid import uuid4

from prefect import State, flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.states import Failed
from pydantic import Field

from flows.landing.files import LandingStore
from flows.parameters import ParameterError, resolve_parameters, with_declared_parameters
from flows.rawdata.identities import IdentityKeys
from flows.run.context import log_event
from flows.run.landed_rewrites import UnrewrittenFile, rewrite_pending_files
from flows.run.publication import check_key
from flows.run.slots import warehouse_slot
from flows.run.tasks import secret_fingerprint
from flows.runtime.alerts import notify_failure
from flows.runtime.remote import RemoteObject
from flows.settings import get_settings
from flows.targets import make_landing_store, make_warehouse, resolve_targets
from flows.warehouse import Warehouse
from flows.warehouse.base import utc_now
from flows.warehouse.erasures import ErasureRequest, erase_rows
from flows.warehouse.generations import serving_generation


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
    files_not_rewritten: int


@dataclass(frozen=True)
class ErasureOutcome:
    """The erasure's counts and the landed files it could not rewrite."""

    counts: ErasureCounts
    unrewritten: tuple[UnrewrittenFile, ...]


def identity_keys(identity_file: Path, secret: bytes) -> IdentityKeys:
    """The person_keys of an identity file, derived in a process of its own (the file is raw data)."""
    remote = RemoteObject("flows.rawdata.identities:IdentityKeyer")
    try:
        keyer = remote.create()
        return cast(IdentityKeys, remote.call(keyer, "keys_of_file", str(identity_file.resolve()), secret))
    finally:
        remote.close()


def erase(warehouse: Warehouse, store: LandingStore, keys: IdentityKeys, fingerprint: str) -> ErasureOutcome:
    """Forget the keys in every warehouse layer at once, then rewrite the landed files holding them."""
    serving = serving_generation(warehouse)
    request = ErasureRequest(
        erasure_id=f"e-{uuid4().hex[:12]}",
        keys=keys.keys,
        identities=keys.identities,
        key_fingerprint=fingerprint,
        generation_id=serving.generation_id if serving else None,
        requested_at=utc_now(),
    )
    erased = erase_rows(warehouse, request)
    # After the warehouse forgot them: this erasure's files, and any an earlier one left pending.
    files = rewrite_pending_files(warehouse, store)
    counts = ErasureCounts(
        erasure_id=request.erasure_id,
        identities=request.identities,
        **asdict(erased),
        files_rewritten=files.rewritten,
        files_not_rewritten=len(files.unrewritten),
    )
    return ErasureOutcome(counts, files.unrewritten)


@task(
    name="erase-persons",
    task_run_name="erase-persons",  # one of its kind per run: no random suffix
    cache_policy=NO_CACHE,
    persist_result=False,
)
def erase_persons(
    identity_file: str, data_dir: str | None, warehouse: str | None, landing_url: str | None
) -> ErasureOutcome:
    """Derive the keys, refuse a key staging does not hold, erase; counts and file names leave this task."""
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
@with_declared_parameters()
def persons_forget(
    identity_file: str = Field(
        description="a JSON-lines file the worker can read, one person a line: firstname, lastname, email, "
        "phone, birthday (raw personal data: read in a process of its own, never copied or logged)"
    ),
    data_dir: str | None = None,
    warehouse: str | None = None,
    landing_url: str | None = None,
) -> dict[str, Any] | State[dict[str, Any]]:
    """Erase the persons an identity file names from every layer and the landed files (counts only)."""
    outcome = erase_persons(identity_file, data_dir, warehouse, landing_url)
    logger = get_run_logger()
    log_event(logger, "persons_forgotten", **asdict(outcome.counts))
    if not outcome.unrewritten:
        return asdict(outcome.counts)
    for file in outcome.unrewritten:
        log_event(
            logger,
            "erasure_file_not_rewritten",
            file=file.location,
            problem=file.problem,
            level=logging.WARNING,
        )
    # Failed with the counts, not raised: an expected outcome that says what to do, without a traceback.
    return Failed(
        message="\n".join(file.advice() for file in outcome.unrewritten), data=asdict(outcome.counts)
    )


def forget_command(args: Any) -> int:
    """`persons-pipeline forget`: exit 0 with counts, 2 for a bad file or key, 1 if the erasure failed or
    left a landed file to rewrite (one line per file)."""
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
    outcome = state.result(raise_on_failure=False)
    if isinstance(outcome, dict):
        for name, value in outcome.items():
            print(f"{name}: {value}")
        if state.is_completed():
            return 0
        for line in (state.message or "").splitlines():
            print(f"persons-pipeline forget: {line}", file=sys.stderr)
        return 1
    if isinstance(outcome, (IdentityFileError, ParameterError)):
        print(f"persons-pipeline forget: error: {outcome}", file=sys.stderr)
        return 2
    message = f"{type(outcome).__name__}: {outcome}" if isinstance(outcome, BaseException) else state.message
    print(f"persons-pipeline forget: failed: {message}", file=sys.stderr)
    return 1


__all__ = ["ErasureCounts", "erase", "forget_command", "persons_forget"]
