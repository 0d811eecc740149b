"""The deterministic plan of pages and batches a run extracts."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import date

from flows.parameters import RunParameters


@dataclass(frozen=True)
class PageRequest:
    """One API request: page number within the run, its derived _seed and _quantity."""

    number: int
    seed: int
    quantity: int


@dataclass(frozen=True)
class BatchPlan:
    """Pages that are landed, validated and merged together."""

    index: int
    batch_id: str
    pages: tuple[PageRequest, ...]

    @property
    def persons(self) -> int:
        """Persons requested by this batch."""
        return sum(page.quantity for page in self.pages)


def page_seed(run_seed: int, locale: str, start: date | None, end: date | None, page_number: int) -> int:
    """Derive a page's _seed from what defines the population, so reruns fetch the same people."""
    material = f"persons|{run_seed}|{locale}|{start or ''}|{end or ''}|{page_number}".encode()
    return int.from_bytes(hashlib.sha256(material).digest()[:4], "big") & 0x7FFF_FFFF


def plan_pages(params: RunParameters) -> list[PageRequest]:
    """Split the run's total into pages of at most page_size persons."""
    pages = []
    for number, offset in enumerate(range(0, params.total, params.page_size)):
        quantity = min(params.page_size, params.total - offset)
        seed = page_seed(params.seed, params.locale, params.birthday_start, params.birthday_end, number)
        pages.append(PageRequest(number=number, seed=seed, quantity=quantity))
    return pages


def plan_batches(params: RunParameters) -> list[BatchPlan]:
    """Group pages into batches with ids that depend only on what the batch fetches."""
    population = (params.locale, params.birthday_start, params.birthday_end)
    return group_pages(plan_pages(params), params.pages_per_batch, population)


def group_pages(
    pages: list[PageRequest],
    pages_per_batch: int,
    population: tuple[str, date | None, date | None],
    first_index: int = 0,
) -> list[BatchPlan]:
    """Consecutive batches of at most `pages_per_batch` pages of one population (locale, birthday range)."""
    batches = []
    for offset, start in enumerate(range(0, len(pages), pages_per_batch)):
        chunk = tuple(pages[start : start + pages_per_batch])
        identity = "|".join(
            [population[0], str(population[1]), str(population[2])]
            + [f"{page.seed}:{page.quantity}" for page in chunk]
        )
        digest = hashlib.sha256(identity.encode()).hexdigest()[:12]
        index = first_index + offset
        batches.append(BatchPlan(index=index, batch_id=f"b{index:05d}-{digest}", pages=chunk))
    return batches
