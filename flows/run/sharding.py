"""Shards: a run's planned batches split into page ranges that run as flow runs of their own (pure parts).

A sharded run (`--shards N` above 1) keeps the warehouse's slot and publishes; its shards extract, anonymise,
gate and land (`flows.run.shard`), each as a `persons-shard` flow run on the work pool. What a shard hands
over is a *verdict* per batch in the landing store: the landed files' description and the gate's result,
under a key made of what the batch is (its pages, population, key, reference date, policy, landing place,
exclusions: `ingest_identity`). So a batch that landed is found again by any later run that plans the same
pages, whatever shard or run landed it, and it is never fetched again; a batch landed twice is one verdict.
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass, replace
from datetime import date
from typing import Any

import orjson
from pydantic import BaseModel, ConfigDict, Field

from flows.gate.validation import GateResult
from flows.landing.files import LandedBatch
from flows.plan import BatchPlan, PageRequest
from flows.rawdata.client import PageQuery

VERDICTS = "shards/verdicts"  # <identity>.json: one per landed and gated batch
HEARTBEATS = "shards/heartbeats"  # <shard key>.json: a running shard's last sign of life
EXCLUSIONS = "shards/exclusions"  # <digest>.json: the tombstoned keys a shard drops (pseudonyms only)
SILENT_BEATS = 6  # a running shard silent for this many heartbeats is taken as dead


class ShardBatch(BaseModel):
    """One batch of a shard, as the shard's flow run receives it."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    index: int = Field(ge=0)
    batch_id: str
    locale: str
    birthday_start: date | None = None
    birthday_end: date | None = None
    pages: list[tuple[int, int, int]] = Field(description="(page number, _seed, _quantity)")

    @property
    def plan(self) -> BatchPlan:
        return BatchPlan(self.index, self.batch_id, tuple(PageRequest(*page) for page in self.pages))

    @property
    def query(self) -> PageQuery:
        return PageQuery(self.locale, self.birthday_start, self.birthday_end)


class ShardSpec(BaseModel):
    """Everything a shard's flow run needs (no secret: the worker has its own key, checked by fingerprint)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    run_id: str = Field(description="the publishing run that planned this shard")
    number: int = Field(ge=1, description="the shard's place among the run's shards (1-based)")
    shards: int = Field(ge=1, description="how many shards the run planned")
    key: str = Field(description="what the shard is: a digest of its batches' identities")
    api_url: str
    reference_date: date
    key_fingerprint: str
    exclusions_digest: str
    data_dir: str
    warehouse: str
    landing_url: str | None = None
    batches: list[ShardBatch]

    @property
    def label(self) -> str:
        """`2-of-4`, as its flow run is named."""
        return f"{self.number}-of-{self.shards}"


@dataclass(frozen=True)
class ShardPlan:
    """Consecutive whole batches of a run, run as one flow run."""

    number: int
    batches: tuple[Any, ...]  # PlannedBatch (flows.run.publication), kept generic to stay below it

    @property
    def pages(self) -> int:
        return sum(len(planned.plan.pages) for planned in self.batches)


def plan_shards(batches: list[Any], shard_pages: int) -> list[ShardPlan]:
    """Group planned batches, in order, into shards of at most `shard_pages` pages (at least one batch)."""
    shards: list[ShardPlan] = []
    current: list[Any] = []
    pages = 0
    for planned in batches:
        size = len(planned.plan.pages)
        if current and pages + size > shard_pages:
            shards.append(ShardPlan(len(shards) + 1, tuple(current)))
            current, pages = [], 0
        current.append(planned)
        pages += size
    if current:
        shards.append(ShardPlan(len(shards) + 1, tuple(current)))
    return shards


def shard_key(identities: list[str]) -> str:
    """A shard's idempotency key: its batches' identities, in order (the same pages -> the same key)."""
    return "shard-" + hashlib.sha256("\n".join(identities).encode()).hexdigest()[:32]


def verdict_key(identity: str) -> str:
    return f"{VERDICTS}/{identity}.json"


def heartbeat_key(key: str) -> str:
    return f"{HEARTBEATS}/{key}.json"


def exclusions_key(digest: str) -> str:
    return f"{EXCLUSIONS}/{digest}.json"


def verdict_bytes(
    landed: LandedBatch, result: GateResult, batch: ShardBatch, shard: str, flow_run_id: str
) -> bytes:
    """A batch's verdict as the landing store keeps it: its pages, counts, keys, the gate's verdict (no
    values), and which shard's flow run landed it."""
    record = {
        "landed": landed.to_dict(),
        "gate": asdict(result),
        "pages": batch.pages,
        "shard": shard,
        "flow_run_id": flow_run_id,
    }
    return orjson.dumps(record, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS)


def read_verdict(data: bytes, batch_id: str, batch_index: int) -> tuple[LandedBatch, GateResult]:
    """A verdict for the batch as this run plans it (its id and place may differ from the landing run's)."""
    record = orjson.loads(data)
    landed = replace(LandedBatch(**record["landed"]), batch_id=batch_id, batch_index=batch_index)
    gate = record["gate"]
    result = GateResult(
        batch_id=batch_id,
        success=bool(gate["success"]),
        failed=list(gate["failed"]),
        statistics=dict(gate["statistics"]),
        docs_page=str(gate["docs_page"]),
        unexpected_counts=dict(gate.get("unexpected_counts", {})),
        outcomes=tuple((str(name), bool(ok), int(rows)) for name, ok, rows in gate.get("outcomes", ())),
    )
    return landed, result
