"""The publisher's side of a sharded run: start the shards on the work pool, hand their batches over in order.

`ShardFleet` has `Ingest`'s face (`submit`, `result`, `fresh`), so the batch loop publishes a sharded run's
batches exactly as an unsharded run's: in plan order, each loaded, its shard's verdict recorded, merged if it
passed. Meanwhile it keeps `--shards` flow runs of `persons-shard` in flight (`run_deployment`, each with an
idempotency key made of what the shard is and of its attempt), and looks after them:

- a shard whose batches all have verdicts is not started at all (a rerun fetches nothing that landed);
- a running shard of an earlier, dead run of the same pages (its heartbeat is fresh) is waited for, not
  started a second time;
- a shard that failed, crashed or was cancelled is started again, up to `PERSONS_SHARD_ATTEMPTS` flow runs;
  a shard that stays silent for `SILENT_BEATS` heartbeats while Running is marked Crashed and started again;
- a shard no worker starts within `PERSONS_SHARD_START_TIMEOUT_S`, or that used up its attempts, fails the
  batches it had not landed, naming the shard, its flow run and the reason, in the run's verdict.
"""

from __future__ import annotations

import logging
import time
from contextlib import suppress
from dataclasses import dataclass, field
from typing import Any, cast
from uuid import UUID

import httpx
import orjson
from prefect import get_run_logger
from prefect.client.orchestration import SyncPrefectClient, get_client
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId
from prefect.client.schemas.objects import FlowRun
from prefect.deployments import run_deployment
from prefect.exceptions import ObjectNotFound, PrefectHTTPStatusError
from prefect.states import Cancelled, Crashed

from flows.gate.recorded import RecordedGate
from flows.landing.files import LandedBatch
from flows.parameters import ParameterError
from flows.run.context import RunContext, log_event
from flows.run.ingest import BatchLanding
from flows.run.publication import PlannedBatch, Publication
from flows.run.sharding import (
    SILENT_BEATS,
    ShardBatch,
    ShardPlan,
    ShardSpec,
    exclusions_key,
    heartbeat_key,
    plan_shards,
    read_verdict,
    shard_key,
    verdict_key,
)
from flows.run.tasks import ingest_identity, secret_fingerprint

POLL_S = 0.5
API_PATIENCE_S = 60.0  # the Prefect API may not answer for this long while the run waits for its shards
WAITING = {"SCHEDULED", "PAUSED"}  # no worker has taken it (yet)
ENDED = {"COMPLETED", "FAILED", "CRASHED", "CANCELLED"}


class ShardingRefused(ParameterError):
    """A run that cannot be sharded (its shards would need a second key); nothing was requested."""


@dataclass
class Shard:
    """One shard and the flow runs it had."""

    plan: ShardPlan
    spec: ShardSpec
    attempts: int = 0
    flow_run_id: UUID | None = None
    flow_run_name: str = ""
    submitted_at: float = 0.0
    state: str = ""
    done: bool = False
    failure: str | None = None
    runs: list[str] = field(default_factory=list)

    @property
    def in_flight(self) -> bool:
        return self.flow_run_id is not None and not self.done and self.failure is None


class ShardFleet(BatchLanding):
    """A sharded run's batches, landed by `persons-shard` flow runs and handed over in plan order."""

    def __init__(self, run: RunContext, publication: Publication) -> None:
        super().__init__(run, publication)
        if publication.exclusions.forgotten_previous:
            raise ShardingRefused(
                "--shards: re-keying with forgotten persons needs the previous key, which is not handed to "
                "shards; run the re-key with --shards 1"
            )
        self.fingerprint = secret_fingerprint(run.secret)
        self.identities = {planned.plan.batch_id: self._identity(planned) for planned in publication.batches}
        plans = plan_shards(publication.batches, run.params.shard_pages)
        self.shards = [self._shard(plan, len(plans)) for plan in plans]
        self.of_batch = {
            planned.plan.batch_id: shard for shard in self.shards for planned in shard.plan.batches
        }
        self.own_runs: set[str] = set()
        self._api_failures = 0
        self._write_exclusions()
        log_event(
            get_run_logger(),
            "shards_planned",
            run_id=run.run_id,
            shards=len(self.shards),
            in_flight=run.params.shards,
            shard_pages=run.params.shard_pages,
            deployment=run.settings.runs.shard_deployment,
        )

    # --- planning ---
    def _identity(self, planned: PlannedBatch) -> str:
        return ingest_identity(
            planned.plan,
            self.run.params.api_url,
            planned.query,
            self.publication.generation.reference_date,
            self.fingerprint,
            self.run.store.identity,
            self.publication.exclusions.digest,
        )

    def _shard(self, plan: ShardPlan, shards: int) -> Shard:
        run = self.run
        batches = [
            ShardBatch(
                index=planned.plan.index,
                batch_id=planned.plan.batch_id,
                locale=planned.query.locale,
                birthday_start=planned.query.birthday_start,
                birthday_end=planned.query.birthday_end,
                pages=[(page.number, page.seed, page.quantity) for page in planned.plan.pages],
            )
            for planned in plan.batches
        ]
        spec = ShardSpec(
            run_id=run.run_id,
            number=plan.number,
            shards=shards,
            key=shard_key([self.identities[planned.plan.batch_id] for planned in plan.batches]),
            api_url=run.params.api_url,
            reference_date=self.publication.generation.reference_date,
            key_fingerprint=self.fingerprint,
            exclusions_digest=self.publication.exclusions.digest,
            data_dir=str(run.data_dir),
            warehouse=run.targets.warehouse,
            landing_url=run.params.landing_url,
            batches=batches,
        )
        return Shard(plan, spec)

    def _write_exclusions(self) -> None:
        """The tombstoned keys (pseudonyms) the shards drop, beside their verdicts."""
        exclusions = self.publication.exclusions
        if exclusions.forgotten:
            self.run.store.write_bytes(
                exclusions_key(exclusions.digest), orjson.dumps(sorted(exclusions.forgotten))
            )

    # --- Ingest's face ---
    def submit(self, planned: PlannedBatch, refresh: bool = False) -> None:
        """Nothing per batch: the batch's shard is started (or found) while the loop waits for it."""
        return

    def fresh(self, landed: LandedBatch) -> bool:
        return landed.landed_by_run in self.own_runs

    def result(self, planned: PlannedBatch, future: Any) -> LandedBatch | None:
        """The batch as its shard landed it, with the shard's verdict for the gate; None if it cannot land."""
        run, batch_id = self.run, planned.plan.batch_id
        shard = self.of_batch[batch_id]
        with run.clock.measure("wait_for_shards"), get_client(sync_client=True) as client:
            while True:
                handed = self._handed_over(planned)
                if handed is not None:
                    break
                if shard.failure is not None:
                    self.not_landed(planned, RuntimeError(shard.failure))
                    return None
                if refusal := run.refusal():
                    self.not_landed(planned, RuntimeError(refusal))
                    return None
                self._tend_through_hiccups(client)
                time.sleep(POLL_S)
        landed, verdict = handed
        cast(RecordedGate, run.gate).record(verdict)
        run.ledger.landed(landed, cached=not self.fresh(landed))
        return landed

    def _handed_over(self, planned: PlannedBatch) -> tuple[LandedBatch, Any] | None:
        key = verdict_key(self.identities[planned.plan.batch_id])
        if not self.run.store.exists(key):
            return None
        return read_verdict(self.run.store.read_bytes(key), planned.plan.batch_id, planned.plan.index)

    # --- looking after the shards ---
    def _tend_through_hiccups(self, client: SyncPrefectClient) -> None:
        """`_tend`, waiting out a Prefect API that does not answer for a while (up to a minute)."""
        try:
            self._tend(client)
            self._api_failures = 0
        except PrefectHTTPStatusError as exc:
            if exc.response.status_code < 500:
                raise
            self._api_hiccup(exc)
        except httpx.TransportError as exc:
            self._api_hiccup(exc)

    def _api_hiccup(self, exc: Exception) -> None:
        self._api_failures += 1
        if self._api_failures * POLL_S > API_PATIENCE_S:
            raise exc
        log_event(get_run_logger(), "shard_api_unanswered", run_id=self.run.run_id, error=type(exc).__name__)

    def _tend(self, client: SyncPrefectClient) -> None:
        """Read the states of the shards in flight, act on each, start more up to --shards in flight."""
        flying = [shard for shard in self.shards if shard.in_flight]
        if flying:
            runs = client.read_flow_runs(
                flow_run_filter=FlowRunFilter(
                    id=FlowRunFilterId(any_=[shard.flow_run_id for shard in flying])
                )
            )
            by_id = {flow_run.id: flow_run for flow_run in runs}
            for shard in flying:
                flow_run = by_id.get(cast(UUID, shard.flow_run_id))
                if flow_run is not None:
                    self._look_after(client, shard, flow_run)
        for shard in self.shards:
            if sum(1 for other in self.shards if other.in_flight) >= self.run.params.shards:
                break
            if shard.flow_run_id is None and not shard.done and shard.failure is None:
                self._start(client, shard)

    def _look_after(self, client: SyncPrefectClient, shard: Shard, flow_run: FlowRun) -> None:
        state = flow_run.state
        name = state.type.value if state else "PENDING"
        shard.state = name
        if name == "COMPLETED":
            if self._all_landed(shard):
                shard.done = True
            else:  # its verdicts are written before it completes: one missing is a shard that stopped short
                self._retry_or_fail(client, shard, "COMPLETED without a verdict for every batch")
            return
        if name in ENDED:
            message = (state.message if state else "") or name.lower()
            self._retry_or_fail(client, shard, f"{name}: {message}")
            return
        now = time.time()
        if name in WAITING:
            if now - shard.submitted_at > self.run.settings.runs.shard_start_timeout_s:
                with suppress(Exception):  # best effort: the shard fails either way
                    client.set_flow_run_state(
                        flow_run.id, Cancelled(message="no worker started it"), force=True
                    )
                shard.failure = (
                    f"shard {shard.spec.label} (flow run {shard.flow_run_name}) was not started by a worker "
                    f"of deployment {self.run.settings.runs.shard_deployment}'s pool within "
                    f"{self.run.settings.runs.shard_start_timeout_s:.0f} s (PERSONS_SHARD_START_TIMEOUT_S): "
                    "start one, e.g. make worker"
                )
            return
        beat = self._last_beat(shard)
        # Pending or Running: a process was started for it. One that never beat is given twice as long (it
        # imports, on a machine that may be busy); one whose worker died while starting it stays Pending.
        silent_s = SILENT_BEATS * self.run.settings.runs.shard_heartbeat_s * (1 if beat else 2)
        last = max(beat, state.timestamp.timestamp() if state else 0.0, shard.submitted_at)
        if now - last > silent_s:
            with suppress(Exception):  # best effort: it is started again either way
                client.set_flow_run_state(
                    flow_run.id, Crashed(message=f"silent for {now - last:.0f} s: taken as dead"), force=True
                )
            self._retry_or_fail(client, shard, f"CRASHED: silent for {now - last:.0f} s (its process died)")

    def _heartbeat(self, shard: Shard) -> tuple[str, float]:
        """(flow run id, epoch seconds) of the shard's last heartbeat, whichever flow run wrote it; ("", 0.0)
        where there is none that can be read."""
        key = heartbeat_key(shard.spec.key)
        try:
            beat = orjson.loads(self.run.store.read_bytes(key)) if self.run.store.exists(key) else {}
            return str(beat.get("flow_run_id", "")), float(beat.get("at", 0.0))
        except (OSError, ValueError, TypeError, AttributeError):
            return "", 0.0

    def _last_beat(self, shard: Shard) -> float:
        """When the shard's current flow run last beat (0.0: not yet)."""
        flow_run_id, at = self._heartbeat(shard)
        return at if flow_run_id == str(shard.flow_run_id) else 0.0

    def _retry_or_fail(self, client: SyncPrefectClient, shard: Shard, reason: str) -> None:
        logger = get_run_logger()
        log_event(
            logger, "shard_ended", run_id=self.run.run_id, shard=shard.spec.label,
            flow_run=shard.flow_run_name, attempt=shard.attempts, reason=reason, level=logging.WARNING,
        )  # fmt: skip
        if shard.attempts >= self.run.settings.runs.shard_attempts:
            shard.failure = (
                f"shard {shard.spec.label} failed {shard.attempts} time(s) (PERSONS_SHARD_ATTEMPTS), last as "
                f"flow run {shard.flow_run_name}: {reason}"
            )
            return
        self._start(client, shard)

    def _all_landed(self, shard: Shard) -> bool:
        store = self.run.store
        return all(store.exists(verdict_key(self.identities[p.plan.batch_id])) for p in shard.plan.batches)

    def _start(self, client: SyncPrefectClient, shard: Shard) -> None:
        """Start the shard's next flow run, unless its batches all landed or a live run of it is found."""
        if self._all_landed(shard):
            shard.done = True
            return
        if shard.attempts == 0 and self._adopt(client, shard):
            return
        shard.attempts += 1
        flow_run = cast(
            FlowRun,
            run_deployment(
                self.run.settings.runs.shard_deployment,
                parameters={"shard": shard.spec.model_dump(mode="json")},
                timeout=0,
                idempotency_key=f"{shard.spec.key}-{self.run.run_id}-{shard.attempts}",
                flow_run_name=f"shard-{shard.spec.label}-{shard.spec.key[6:14]}-{shard.attempts}",
                tags=["persons-shard", f"parent:{self.run.run_id}"],
                as_subflow=False,
            ),
        )
        self._follow(shard, flow_run)
        log_event(
            get_run_logger(), "shard_started", run_id=self.run.run_id, shard=shard.spec.label,
            flow_run=flow_run.name, attempt=shard.attempts, batches=len(shard.plan.batches),
            pages=shard.plan.pages,
        )  # fmt: skip

    def _adopt(self, client: SyncPrefectClient, shard: Shard) -> bool:
        """A live flow run of the same shard (an earlier run of the same pages died): wait for it instead."""
        flow_run_id, at = self._heartbeat(shard)
        if time.time() - at > SILENT_BEATS * self.run.settings.runs.shard_heartbeat_s:
            return False  # none, or a dead one's
        try:
            flow_run = client.read_flow_run(UUID(flow_run_id))
        except (ValueError, ObjectNotFound):
            return False
        if not flow_run.state or flow_run.state.type.value != "RUNNING":
            return False
        self._follow(shard, flow_run)
        log_event(
            get_run_logger(), "shard_adopted", run_id=self.run.run_id, shard=shard.spec.label,
            flow_run=flow_run.name,
        )  # fmt: skip
        return True

    def _follow(self, shard: Shard, flow_run: FlowRun) -> None:
        shard.flow_run_id, shard.flow_run_name = flow_run.id, flow_run.name
        shard.submitted_at, shard.state = time.time(), "SCHEDULED"
        shard.runs.append(flow_run.name)
        self.own_runs.add(str(flow_run.id))
