"""Run parameters and the page/batch plan."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest

from flows.parameters import ParameterError, RunParameters, resolve_parameters
from flows.plan import page_seed, plan_batches, plan_pages
from flows.settings import PipelineSettings

SETTINGS = PipelineSettings()


def params(**overrides: object) -> RunParameters:
    return resolve_parameters(SETTINGS, reference_date=date(2026, 1, 1), **overrides)


def test_pages_cover_the_total_with_at_most_page_size_each() -> None:
    pages = plan_pages(params(total=2500, page_size=1000))
    assert [page.quantity for page in pages] == [1000, 1000, 500]
    assert [page.number for page in pages] == [0, 1, 2]


def test_page_seeds_are_deterministic_and_distinct() -> None:
    first = [page.seed for page in plan_pages(params(total=5000, page_size=100))]
    again = [page.seed for page in plan_pages(params(total=5000, page_size=100))]
    assert first == again
    assert len(set(first)) == len(first)
    assert all(0 <= seed < 2**31 for seed in first)
    assert first != [page.seed for page in plan_pages(params(total=5000, page_size=100, seed=43))]


def test_page_seed_depends_on_the_population_not_on_the_total() -> None:
    assert page_seed(1, "en_US", None, None, 3) == page_seed(1, "en_US", None, None, 3)
    assert page_seed(1, "en_US", None, None, 3) != page_seed(1, "de_DE", None, None, 3)
    assert page_seed(1, "en_US", date(1990, 1, 1), None, 3) != page_seed(1, "en_US", None, None, 3)
    small = plan_pages(params(total=2000))
    large = plan_pages(params(total=5000))
    assert large[:2] == small  # a larger run starts with the same pages (and reuses their cache)


def test_batches_group_pages_with_stable_ids() -> None:
    batches = plan_batches(params(total=10_000, page_size=1000, pages_per_batch=4))
    assert [len(batch.pages) for batch in batches] == [4, 4, 2]
    assert [batch.persons for batch in batches] == [4000, 4000, 2000]
    assert [batch.batch_id for batch in batches] == [
        batch.batch_id for batch in plan_batches(params(total=10_000, page_size=1000, pages_per_batch=4))
    ]
    assert batches[0].batch_id.startswith("b00000-")


@pytest.mark.parametrize(
    ("overrides", "option"),
    [
        ({"total": 0}, "--total"),
        ({"page_size": 1001}, "--page-size"),
        ({"page_size": 0}, "--page-size"),
        ({"pages_per_batch": 0}, "--pages-per-batch"),
        ({"seed": -1}, "--seed"),
        ({"locale": "english"}, "--locale"),
        ({"api_url": "ftp://example.org"}, "--api-url"),
        ({"warehouse": "oracle"}, "--warehouse"),
        ({"birthday_start": date(2000, 1, 1), "birthday_end": date(1990, 1, 1)}, "birthday_start"),
    ],
)
def test_bad_values_are_refused_with_one_line_naming_the_option(overrides: dict, option: str) -> None:
    with pytest.raises(ParameterError) as refused:
        params(**overrides)
    message = str(refused.value)
    assert option in message
    assert "\n" not in message


def test_defaults_come_from_the_settings() -> None:
    resolved = params()
    assert resolved.total == 30_000
    assert resolved.page_size == 1000
    assert resolved.api_url == "https://fakerapi.it/api/v2"
    assert resolved.data_dir == Path("data")
    assert resolved.warehouse is None  # the environment decides (see flows/targets.py)


def test_unknown_parameters_are_refused() -> None:
    with pytest.raises(ParameterError, match="unknown"):
        params(totl=5)
