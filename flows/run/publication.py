"""One key and one reference date per published state; a run publishes only pages that have not landed.

`open_publication` decides, before any request, what the run publishes into:
- nothing serves yet: a first generation, at the run's key and reference date;
- the serving generation has the run's key and reference date: the run adds to it, and plans only the pages
  the generation does not hold yet (growing `--total` fetches only the new pages; a rerun fetches nothing);
- the key differs: refused (`KeyMismatch`, exit 2) unless the run re-keys (`persons-pipeline rekey`);
- the reference date differs, or the run re-keys: a new generation is built from every page the serving one
  was made of plus the run's own, in `staging.persons_rebuild`; it switches over atomically when every batch
  was published (`conclude_publication`), so a report never mixes two keys or two reference dates.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import date
from typing import Any
from uuid import uuid4

from prefect import get_run_logger
from pydantic import SecretStr

from flows.anonymise.transform import POLICY_VERSION
from flows.parameters import ParameterError, RunParameters
from flows.plan import BatchPlan, PageRequest, group_pages, plan_pages
from flows.rawdata.client import PageQuery
from flows.rawdata.exclusions import Exclusions
from flows.run.context import RunContext, log_event
from flows.run.tasks import secret_fingerprint
from flows.warehouse import Warehouse
from flows.warehouse.generations import (
    Generation,
    GenerationSuperseded,
    PublishedBatch,
    abandon,
    add_tombstones,
    begin_generation,
    published_batches,
    serving_generation,
    switch_to,
    tombstoned_keys,
)

Population = tuple[str, date | None, date | None]
PageIdentity = tuple[str, str | None, str | None, int, int]


class KeyMismatch(ParameterError):
    """The run's key is not the key staging holds; nothing was requested (the message says how to re-key)."""


class PageSizeMismatch(ParameterError):
    """The run's page size differs from the one its pages were published with; nothing was requested."""


@dataclass(frozen=True)
class PlannedBatch:
    """A batch to ingest and publish: its pages, its population and what it records once published."""

    plan: BatchPlan
    query: PageQuery
    published: PublishedBatch


@dataclass
class Publication:
    """What one run publishes into, and what it plans to fetch."""

    generation: Generation
    exclusions: Exclusions
    batches: list[PlannedBatch]
    previous: Generation | None
    skipped_pages: int = 0
    skipped_persons: int = 0
    replayed_persons: int = 0
    switched: bool = False

    @property
    def requested(self) -> int:
        """Persons the run asks the source for."""
        return sum(batch.plan.persons for batch in self.batches)


def population_of(query: PageQuery) -> Population:
    """(locale, birthday start, birthday end) of a page query."""
    return (query.locale, query.birthday_start, query.birthday_end)


def page_query_record(population: Population, page_size: int | None = None) -> dict[str, Any]:
    """A population as stored with a published batch, with the page size its pages were planned at."""
    locale, start, end = population
    record: dict[str, Any] = {
        "locale": locale,
        "birthday_start": start.isoformat() if start else None,
        "birthday_end": end.isoformat() if end else None,
    }
    if page_size is not None:
        record["page_size"] = page_size
    return record


def population_from_record(record: dict[str, Any]) -> Population:
    """The inverse of `page_query_record`."""
    start, end = record.get("birthday_start"), record.get("birthday_end")
    return (
        str(record["locale"]),
        date.fromisoformat(start) if start else None,
        date.fromisoformat(end) if end else None,
    )


def page_identity(population: Population, page: PageRequest) -> PageIdentity:
    """What makes a page the same page in every run: its population, seed and quantity."""
    locale, start, end = population
    return (locale, str(start) if start else None, str(end) if end else None, page.seed, page.quantity)


def decide_generation(
    serving: Generation | None, key_fingerprint: str, reference_date: date, rekey: bool
) -> Generation:
    """The generation a run publishes into (pure); KeyMismatch if a second key would enter staging."""
    if serving is not None and serving.key_fingerprint != key_fingerprint and not rekey:
        raise KeyMismatch(
            f"staging holds persons keyed with key {serving.key_fingerprint} (fingerprint), this run's key "
            f"is {key_fingerprint}: one key at a time. Run with the key staging holds, or re-key "
            "deliberately: PERSONS_PREVIOUS_HMAC_SECRET=<old key> PERSONS_HMAC_SECRET=<new key> "
            "persons-pipeline rekey (docs/privacy.md: re-keying)"
        )
    if serving is None:
        return Generation(f"g-{uuid4().hex[:12]}", key_fingerprint, reference_date)
    if rekey or serving.reference_date != reference_date:
        return Generation(f"g-{uuid4().hex[:12]}", key_fingerprint, reference_date, rebuilding=True)
    return serving


def published_page_size(params: RunParameters, held: list[PublishedBatch]) -> int | None:
    """The page size the published pages of the run's own population and seed were fetched at, where they
    tell it: recorded with the batch, or the largest page where several pages were held (only a series' last
    page can be short); None where nothing of the run's pages is published."""
    own: Population = (params.locale, params.birthday_start, params.birthday_end)
    planned_seeds = {page.seed for page in plan_pages(params)}
    recorded: set[int] = set()
    quantities: list[int] = []
    for batch in held:
        if population_from_record(batch.page_query) != own:
            continue
        shared = [quantity for _, seed, quantity in batch.pages if seed in planned_seeds]
        if not shared:
            continue  # another run seed: other persons, whatever their page size
        if batch.page_query.get("page_size") is not None:
            recorded.add(int(batch.page_query["page_size"]))
        quantities += [quantity for _, _, quantity in batch.pages]
    if recorded:
        return max(recorded)
    if len(quantities) > 1 or (quantities and quantities[0] > params.page_size):
        return max(quantities)
    return None


def check_page_size(params: RunParameters, held: list[PublishedBatch]) -> None:
    """Refuse a page size that would fetch published persons again under other pages (PageSizeMismatch)."""
    published = published_page_size(params, held)
    if published is not None and published != params.page_size:
        raise PageSizeMismatch(
            f"--page-size {params.page_size}: the persons this warehouse published for seed {params.seed} "
            f"({params.locale}) were fetched {published} per page, and another page size asks the source "
            f"for the same persons under other pages (they would come back as duplicates and --total would "
            f"not mean new persons). Run with --page-size {published}, or use another --data-dir"
        )


def plan_publication(
    params: RunParameters, generation: Generation, held: list[PublishedBatch]
) -> tuple[list[PlannedBatch], int, int, int]:
    """(batches, pages skipped, persons skipped, persons replayed): the run's own pages that the generation
    does not hold yet; while rebuilding, first every page of the serving generation (`held`)."""
    own_population: Population = (params.locale, params.birthday_start, params.birthday_end)
    pages_by_population: dict[Population, list[PageRequest]] = {}
    seen: set[PageIdentity] = set()
    replayed = 0
    if generation.rebuilding:
        for batch in held:
            population = population_from_record(batch.page_query)
            for number, seed, quantity in batch.pages:
                page = PageRequest(number=number, seed=seed, quantity=quantity)
                identity = page_identity(population, page)
                if identity not in seen:
                    seen.add(identity)
                    pages_by_population.setdefault(population, []).append(page)
                    replayed += quantity
    else:
        for batch in held:
            population = population_from_record(batch.page_query)
            seen.update(
                page_identity(population, PageRequest(number, seed, quantity))
                for number, seed, quantity in batch.pages
            )
    skipped_pages = skipped_persons = 0
    for page in plan_pages(params):
        identity = page_identity(own_population, page)
        if identity in seen:
            if not generation.rebuilding:
                skipped_pages += 1
                skipped_persons += page.quantity
            continue
        seen.add(identity)
        pages_by_population.setdefault(own_population, []).append(page)
    planned: list[PlannedBatch] = []
    for population, pages in pages_by_population.items():
        pages.sort(key=lambda page: page.number)
        query = PageQuery(*population)
        size = params.page_size if population == own_population else None  # replayed pages keep theirs
        for plan in group_pages(pages, params.pages_per_batch, population, first_index=len(planned)):
            published = PublishedBatch(
                plan.batch_id,
                page_query_record(population, size),
                [(page.number, page.seed, page.quantity) for page in plan.pages],
            )
            planned.append(PlannedBatch(plan, query, published))
    return planned, skipped_pages, skipped_persons, replayed


def check_publication(warehouse: Warehouse, secret: SecretStr, params: RunParameters) -> None:
    """Refuse a second key or another page size before anything moves (the CLI's exit 2); silent on a new
    warehouse."""
    try:
        serving = serving_generation(warehouse)
    except Exception:
        return
    if serving is not None:
        decide_generation(serving, secret_fingerprint(secret), serving.reference_date, params.rekey)
        check_page_size(params, published_batches(warehouse, serving.generation_id))


def check_key(warehouse: Warehouse, secret: SecretStr, rekey: bool) -> None:
    """Refuse a second key before anything moves (forget's check); silent on a new warehouse."""
    try:
        serving = serving_generation(warehouse)
    except Exception:
        return
    if serving is not None:
        decide_generation(serving, secret_fingerprint(secret), serving.reference_date, rekey)


def previous_key_exclusions(
    warehouse: Warehouse, serving: Generation, previous_secret: SecretStr | None
) -> tuple[frozenset[str], bytes | None]:
    """Tombstones under the key being replaced, and that key (needed only if someone was forgotten)."""
    forgotten = tombstoned_keys(warehouse, serving.key_fingerprint)
    if not forgotten:
        return frozenset(), None
    if previous_secret is None or secret_fingerprint(previous_secret) != serving.key_fingerprint:
        raise KeyMismatch(
            f"{len(forgotten)} forgotten person(s) are tombstoned under key {serving.key_fingerprint}: set "
            "PERSONS_PREVIOUS_HMAC_SECRET to that key so that re-keying keeps them forgotten"
        )
    return forgotten, previous_secret.get_secret_value().encode()


def open_publication(run: RunContext) -> Publication:
    """Decide the generation (refusing a second key), plan the run's batches, start a rebuild if needed."""
    fingerprint = secret_fingerprint(run.secret)
    serving = serving_generation(run.warehouse)
    generation = decide_generation(serving, fingerprint, run.params.reference_date, run.params.rekey)
    forgotten_previous: frozenset[str] = frozenset()
    previous_secret = None
    if generation.rebuilding and serving is not None and serving.key_fingerprint != fingerprint:
        forgotten_previous, previous_secret = previous_key_exclusions(
            run.warehouse, serving, run.settings.privacy.previous_hmac_secret
        )
    exclusions = Exclusions(tombstoned_keys(run.warehouse, fingerprint), forgotten_previous, previous_secret)
    held = published_batches(run.warehouse, serving.generation_id) if serving is not None else []
    check_page_size(run.params, held)
    planned, skipped_pages, skipped_persons, replayed = plan_publication(run.params, generation, held)
    if generation is not serving:
        begin_generation(run.warehouse, generation, run.run_id, POLICY_VERSION)
    log_event(
        get_run_logger(),
        "generation_opened",
        run_id=run.run_id,
        generation_id=generation.generation_id,
        key_fingerprint=fingerprint,
        reference_date=generation.reference_date.isoformat(),
        rebuilding=generation.rebuilding,
        batches=len(planned),
        skipped_pages=skipped_pages,
        replayed_persons=replayed,
    )
    return Publication(generation, exclusions, planned, serving, skipped_pages, skipped_persons, replayed)


def record_translated_tombstones(run: RunContext, publication: Publication) -> None:
    """While re-keying: the forgotten persons found by their previous key, tombstoned under the new key."""
    if not publication.exclusions.forgotten_previous:
        return
    keys = run.worker.take_translated_tombstones()
    if keys:
        add_tombstones(run.warehouse, keys, publication.generation.key_fingerprint)


def conclude_publication(run: RunContext, publication: Publication) -> None:
    """Switch a completely rebuilt generation over (atomically); abandon an incomplete one."""
    if not publication.generation.rebuilding:
        return
    logger = get_run_logger()
    if run.ledger.problems:
        abandon(run.warehouse, publication.generation)
        run.ledger.fail(
            f"generation {publication.generation.generation_id} was not switched over: the previous one "
            "keeps serving"
        )
        log_event(
            logger,
            "generation_abandoned",
            run_id=run.run_id,
            generation_id=publication.generation.generation_id,
            level=logging.ERROR,
        )
        return
    try:
        persons = switch_to(run.warehouse, publication.generation, publication.previous)
    except GenerationSuperseded as superseded:
        abandon(run.warehouse, publication.generation)
        run.ledger.fail(str(superseded))
        return
    publication.switched = True
    log_event(
        logger,
        "generation_switched",
        run_id=run.run_id,
        generation_id=publication.generation.generation_id,
        previous=publication.previous.generation_id if publication.previous else "",
        persons=persons,
    )
