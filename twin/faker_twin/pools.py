"""Pools of names, streets, cities, domains and countries; drawn once per locale from a seeded Faker."""

from __future__ import annotations

import csv
import functools
import re
import threading
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources
from typing import Any

import numpy as np
from faker import Faker
from faker.config import AVAILABLE_LOCALES
from numpy.typing import NDArray

from faker_twin.constants import (
    _BUILDING_NUMBERS,
    _CITIES,
    _COMPANY_DOMAINS,
    _COUNTRY_WEIGHTS,
    _FIRST_NAMES_PER_GENDER,
    _LAST_NAMES,
    _POOL_SEED,
    _POSTCODES,
    _SECONDARY_ADDRESSES,
    _STREET_NAMES,
    _TLDS,
    DEFAULT_LOCALE,
    ObjArray,
)

# ------------------------------------------------------------ pools


@dataclass(frozen=True)
class _Pools:
    """Per-locale value pools, drawn once from Faker; slug arrays are index-aligned with their names."""

    first_male: ObjArray
    first_male_slug: ObjArray
    first_female: ObjArray
    first_female_slug: ObjArray
    last: ObjArray
    last_slug: ObjArray
    street_names: ObjArray
    cities: ObjArray
    postcodes: ObjArray
    buildings: ObjArray
    secondaries: ObjArray
    company_domains: ObjArray
    locale: str


@dataclass(frozen=True)
class _Countries:
    """Country names and codes with the cumulative draw weights."""

    names: ObjArray
    codes: ObjArray
    cumulative: NDArray[np.float64]


_POOLS: dict[str, _Pools] = {}
_POOLS_LOCK = threading.Lock()
_COUNTRIES_LOCK = threading.Lock()
_COUNTRIES: list[_Countries] = []


def _objects(values: list[str]) -> ObjArray:
    """Object array of Python strings (fancy indexing stays cheap and ``tolist`` returns ``str``)."""
    array = np.empty(len(values), dtype=object)
    array[:] = values
    return array


def _slug(text: str) -> str:
    """Lower-case ASCII letters and digits only, for e-mail local parts and domains."""
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
    return re.sub(r"[^a-z0-9]+", "", ascii_text.lower())


@functools.cache
def _latin_words() -> tuple[str, ...]:
    """ASCII words from en_US last names, for locales whose names have no Latin spelling."""
    fake = Faker(DEFAULT_LOCALE)
    fake.seed_instance(_POOL_SEED)
    return tuple(sorted({_slug(fake.last_name()) for _ in range(1000)} - {""}))


def _slugs(names: list[str]) -> list[str]:
    """Slug per name; non-Latin names (ja_JP, ru_RU, ...) borrow a stable Latin word instead."""
    slugs = [_slug(name) for name in names]
    if all(slugs):
        return slugs
    words = _latin_words()
    return [slug or words[index % len(words)] for index, slug in enumerate(slugs)]


def _sample(draw: Callable[[], Any], size: int) -> list[str]:
    """Call a Faker method ``size`` times; duplicates are kept so the pool keeps Faker's name weights."""
    return [str(draw()) for _ in range(size)]


def _company_domains(fake: Faker, last_names: list[str]) -> list[str]:
    """Company-like domains such as ``fahey.com`` or ``kub-bosco.org`` built from last names."""
    words = sorted({slug for slug in map(_slug, last_names) if len(slug) > 1})
    if len(words) < 50:
        # Locales without Latin last names would give almost no domains; borrow en_US words instead.
        words = list(_latin_words())
    rnd = fake.random
    domains = []
    for _ in range(_COMPANY_DOMAINS):
        name = rnd.choice(words) if rnd.random() < 0.6 else f"{rnd.choice(words)}-{rnd.choice(words)}"
        domains.append(f"{name}.{rnd.choice(_TLDS)}")
    return domains


def _build_pools(locale: str) -> _Pools:
    """Draw all pools for one locale from a fixed-seed Faker (slow: ~0.1-1 s, done once per locale)."""
    fake = Faker(locale)
    fake.seed_instance(_POOL_SEED)
    first_male = _sample(fake.first_name_male, _FIRST_NAMES_PER_GENDER)
    first_female = _sample(fake.first_name_female, _FIRST_NAMES_PER_GENDER)
    last = _sample(fake.last_name, _LAST_NAMES)
    has_secondary = hasattr(fake, "secondary_address")
    return _Pools(
        first_male=_objects(first_male),
        first_male_slug=_objects(_slugs(first_male)),
        first_female=_objects(first_female),
        first_female_slug=_objects(_slugs(first_female)),
        last=_objects(last),
        last_slug=_objects(_slugs(last)),
        street_names=_objects(_sample(fake.street_name, _STREET_NAMES)),
        cities=_objects(_sample(fake.city, _CITIES)),
        postcodes=_objects(_sample(fake.postcode, _POSTCODES)),
        buildings=_objects(_sample(fake.building_number, _BUILDING_NUMBERS)),
        secondaries=_objects(_sample(fake.secondary_address, _SECONDARY_ADDRESSES) if has_secondary else []),
        company_domains=_objects(_company_domains(fake, last)),
        locale=locale,
    )


def _pool_locale(locale: str) -> str:
    """Faker locale whose pools serve ``locale``; unknown locales fall back to en_US like the real API."""
    normalised = locale.replace("-", "_")
    return normalised if normalised in AVAILABLE_LOCALES else DEFAULT_LOCALE


def _pools_for(locale: str) -> _Pools:
    """Cached pools for a locale, built lazily and at most once even under concurrent requests."""
    key = _pool_locale(locale)
    pools = _POOLS.get(key)
    if pools is not None:
        return pools
    with _POOLS_LOCK:
        if key not in _POOLS:
            try:
                _POOLS[key] = _build_pools(key)
            except AttributeError:
                # A few exotic Faker locales lack an address/person method; serve them en_US people.
                _POOLS[key] = _POOLS.get(DEFAULT_LOCALE) or _build_pools(DEFAULT_LOCALE)
        return _POOLS[key]


def load_countries() -> list[tuple[str, str]]:
    """(country, country_code) rows of the shipped ``faker_twin/data/countries.csv``."""
    text = (resources.files("faker_twin") / "data" / "countries.csv").read_text(encoding="utf-8")
    reader = csv.DictReader(text.splitlines())
    return [(row["country"], row["country_code"]) for row in reader]


def _countries() -> _Countries:
    """Country arrays and cumulative weights, loaded once."""
    if _COUNTRIES:
        return _COUNTRIES[0]
    with _COUNTRIES_LOCK:
        if not _COUNTRIES:
            rows = load_countries()
            codes = [code for _, code in rows]
            rest = (1.0 - sum(_COUNTRY_WEIGHTS.values())) / (len(rows) - len(_COUNTRY_WEIGHTS))
            weights = np.array([_COUNTRY_WEIGHTS.get(code, rest) for code in codes])
            cumulative = np.cumsum(weights / weights.sum())
            cumulative[-1] = 1.0  # float rounding must not leave a gap a draw could fall into
            _COUNTRIES.append(_Countries(_objects([n for n, _ in rows]), _objects(codes), cumulative))
        return _COUNTRIES[0]
