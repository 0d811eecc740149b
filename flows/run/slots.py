"""Turns on a warehouse: a Prefect global concurrency limit per warehouse, so writers do not collide.

A run holds its slot as a lease that it renews while it runs: a run that dies stops renewing and the server
frees the slot when the lease ends (`PERSONS_WAREHOUSE_SLOT_LEASE_S`, at least Prefect's 60 s). Each holder
also records itself (host, pid, lease) beside the warehouse, so a run on the same machine that finds the slot
taken by a dead process frees it at once instead of waiting for the lease to end. A waiting run says what it
waits for, since when, and who holds it.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from uuid import UUID

from prefect import get_run_logger
from prefect.client.orchestration import SyncPrefectClient, get_client
from prefect.client.schemas.objects import ConcurrencyLeaseHolder
from prefect.exceptions import ObjectAlreadyExists, ObjectNotFound, PrefectHTTPStatusError
from prefect.runtime import flow_run

from flows.runtime.server import process_alive, process_start_time
from flows.settings import PipelineSettings
from flows.targets import Targets

LOCKED = 423
WAIT_LOG_EVERY_S = 30.0


@dataclass(frozen=True)
class SlotOwner:
    """Who holds a lease on a warehouse slot (a file per lease beside the warehouse)."""

    lease_id: str
    run_id: str
    host: str
    pid: int
    process_start: str | None
    since: str

    def is_dead_here(self) -> bool:
        """Whether the holder ran on this machine and its process is gone."""
        return self.host == socket.gethostname() and not process_alive(self.pid, self.process_start)


def owners_folder(data_dir: Path, name: str) -> Path:
    """Where holders of slot `name` record themselves."""
    return data_dir / ".slots" / name


def read_owners(folder: Path) -> list[tuple[Path, SlotOwner]]:
    """The recorded holders (unreadable records are skipped)."""
    found = []
    for path in sorted(folder.glob("*.json")) if folder.is_dir() else []:
        with suppress(OSError, ValueError, TypeError):
            found.append((path, SlotOwner(**json.loads(path.read_text()))))
    return found


def reclaim_dead_owners(client: SyncPrefectClient, folder: Path, logger: Any) -> int:
    """Release the leases of holders whose process died on this machine; how many were released."""
    released = 0
    for path, owner in read_owners(folder):
        if not owner.is_dead_here():
            continue
        try:
            client.release_concurrency_slots_with_lease(UUID(owner.lease_id))
            released += 1
        except (ObjectNotFound, PrefectHTTPStatusError):
            pass  # the lease already ended (expired, or released by the server)
        path.unlink(missing_ok=True)
        mark_crashed(client, owner.run_id)
        logger.warning(
            "event=warehouse_slot_reclaimed dead_run_id=%s pid=%d since=%s",
            owner.run_id,
            owner.pid,
            owner.since,
        )
    return released


def mark_crashed(client: SyncPrefectClient, run_id: str) -> None:
    """A dead run's flow run stays Running forever; say what happened to it (best effort)."""
    from prefect.states import Crashed  # noqa: PLC0415

    with suppress(Exception):
        client.set_flow_run_state(
            UUID(run_id),
            Crashed(message="its process died; found by a later run on this warehouse"),
            force=True,
        )


class LeaseRenewer:
    """Renews a lease in the background until stopped (a lost lease is logged, the run goes on)."""

    def __init__(self, lease_id: UUID, lease_s: float, logger: Any) -> None:
        self._lease_id, self._lease_s, self._logger = lease_id, lease_s, logger
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="slot-lease", daemon=True)

    def __enter__(self) -> LeaseRenewer:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _run(self) -> None:
        while not self._stop.wait(self._lease_s / 3):
            try:
                with get_client(sync_client=True) as client:
                    client.renew_concurrency_lease(self._lease_id, self._lease_s)
            except Exception as exc:  # a renewal that fails is retried at the next interval
                self._logger.warning("event=warehouse_slot_renewal_failed error=%s", type(exc).__name__)


def ensure_limit(client: SyncPrefectClient, name: str, limit: int) -> None:
    """Create or update the warehouse's limit. Prefect's upsert reads, then creates: two runs starting at
    the same moment both read nothing, and the second create is refused. That run then finds the limit."""
    try:
        client.upsert_global_concurrency_limit_by_name(name, limit)
    except ObjectAlreadyExists:
        client.upsert_global_concurrency_limit_by_name(name, limit)


def acquire_lease(
    client: SyncPrefectClient,
    name: str,
    settings: PipelineSettings,
    folder: Path,
    holder: ConcurrencyLeaseHolder | None,
    logger: Any,
) -> UUID:
    """Wait for a slot of limit `name`, logging what the run waits for; raise TimeoutError at the limit."""
    started, since = time.monotonic(), datetime.now(UTC)
    next_log = started
    reclaim_dead_owners(client, folder, logger)
    while True:
        try:
            response = client.increment_concurrency_slots_with_lease(
                names=[name],
                slots=1,
                mode="concurrency",
                lease_duration=settings.runs.warehouse_slot_lease_s,
                holder=holder,
            )
            return UUID(response.json()["lease_id"])
        except PrefectHTTPStatusError as exc:
            if exc.response.status_code != LOCKED:
                raise
            retry_after = float(exc.response.headers.get("Retry-After") or 1.0)
        if reclaim_dead_owners(client, folder, logger):
            continue
        waited = time.monotonic() - started
        holders = ",".join(
            f"{owner.run_id}(pid {owner.pid}@{owner.host})" for _, owner in read_owners(folder)
        )
        if waited >= settings.runs.warehouse_slot_timeout_s:
            raise TimeoutError(
                f"waited {waited:.0f} s (PERSONS_WAREHOUSE_SLOT_TIMEOUT_S) for warehouse slot {name}, "
                f"held by {holders or 'a run on another machine'}"
            )
        if time.monotonic() >= next_log:
            logger.info(
                "event=warehouse_slot_wait name=%s since=%s waited_s=%.0f held_by=%s",
                name,
                since.isoformat(timespec="seconds"),
                waited,
                holders or "unknown (a lease ends at most PERSONS_WAREHOUSE_SLOT_LEASE_S after its run died)",
            )
            next_log += WAIT_LOG_EVERY_S
        time.sleep(min(max(retry_after, 0.5), 5.0))


@contextmanager
def warehouse_slot(
    targets: Targets, settings: PipelineSettings, data_dir: Path, run_id: str | None = None
) -> Iterator[None]:
    """Take a turn on the warehouse (1 writer per DuckDB file, a few per Snowflake database)."""
    run_id = run_id or str(flow_run.get_id() or f"local-{os.getpid()}")
    name, limit = targets.warehouse_slot(settings, data_dir)
    folder = owners_folder(data_dir, name)
    folder.mkdir(parents=True, exist_ok=True)
    logger = get_run_logger()
    holder = None
    with suppress(ValueError):
        holder = ConcurrencyLeaseHolder(type="flow_run", id=UUID(run_id))
    waited = time.perf_counter()
    with get_client(sync_client=True) as client:
        ensure_limit(client, name, limit)
        lease_id = acquire_lease(client, name, settings, folder, holder, logger)
    record = folder / f"{lease_id}.json"
    owner = SlotOwner(
        str(lease_id),
        run_id,
        socket.gethostname(),
        os.getpid(),
        process_start_time(os.getpid()),
        datetime.now(UTC).isoformat(timespec="seconds"),
    )
    record.write_text(json.dumps(asdict(owner)))
    logger.info(
        "event=warehouse_slot name=%s limit=%d waited_s=%.2f", name, limit, time.perf_counter() - waited
    )
    try:
        with LeaseRenewer(lease_id, settings.runs.warehouse_slot_lease_s, logger):
            yield
    finally:
        try:
            with get_client(sync_client=True) as client:
                client.release_concurrency_slots_with_lease(lease_id)
        except Exception as exc:  # the lease then ends on its own
            logger.log(logging.WARNING, "event=warehouse_slot_release_failed error=%s", type(exc).__name__)
        record.unlink(missing_ok=True)
