"""Offline, deterministic twin of the public Faker API ``/api/v2/persons``: generator, HTTP server and CLI."""

from __future__ import annotations

import argparse
import contextlib
import csv
import functools
import hashlib
import json
import logging
import os
import re
import secrets
import signal
import socket
import sys
import threading
import time
import unicodedata
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, field, fields
from datetime import date, timedelta
from enum import IntEnum
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from pathlib import Path
from types import FrameType, TracebackType
from typing import Any, Final, Literal, cast
from urllib.parse import parse_qsl, urlsplit

import numpy as np
import orjson
from faker import Faker
from faker.config import AVAILABLE_LOCALES
from numpy.typing import NDArray

__all__ = [
    "BAD_RECORD_KINDS",
    "HOSTILE_KINDS",
    "FakerTwin",
    "TwinFaults",
    "add_twin_arguments",
    "bad_record_kinds",
    "generate_page",
    "hostile_kinds",
    "load_countries",
    "main",
    "serve_from_args",
]

log = logging.getLogger(__name__)

API_PREFIX: Final = "/api/v2"
PERSONS_PATH: Final = f"{API_PREFIX}/persons"
CONTROL_PREFIX: Final = "/__twin/"
DEFAULT_QUANTITY: Final = 10
MAX_QUANTITY: Final = 1000
DEFAULT_LOCALE: Final = "en_US"
DEFAULT_BIRTHDAY_START: Final = date(1900, 1, 1)
# Fixed rather than "today", so a seed gives the same people on every day of the year.
DEFAULT_BIRTHDAY_END: Final = date(2024, 12, 31)
IMAGE_URL: Final = "http://placeimg.com/640/480/people"

CoordinateShape = Literal["flat", "nested", "mixed"]
COORDINATE_SHAPES: Final[tuple[str, ...]] = ("flat", "nested", "mixed")
BAD_RECORD_KINDS: Final[tuple[str, ...]] = (
    "birthday_invalid",
    "birthday_future",
    "email_no_at",
    "address_missing",
    "country_null",
    "long_strings",
    "sql_injection",
)

# Pools are drawn from Faker with a fixed seed so every process builds byte-identical pools.
_POOL_SEED: Final = 20_240_601
_FAULT_SEED: Final = 7_919
_FIRST_NAMES_PER_GENDER: Final = 2000
_LAST_NAMES: Final = 3000
_STREET_NAMES: Final = 2000
_CITIES: Final = 2000
_POSTCODES: Final = 1000
_BUILDING_NUMBERS: Final = 500
_SECONDARY_ADDRESSES: Final = 300
_COMPANY_DOMAINS: Final = 2000
_SECONDARY_SHARE: Final = 0.3
_TLDS: Final = ("com", "com", "com", "com", "org", "net", "net", "info", "biz")

# Upper cumulative bounds of a uniform draw: ~0.4% GMAIL.com (2% of gmail), ~30% free-mail in total.
_FREE_MAIL_DOMAINS: Final = ("GMAIL.com", "gmail.com", "googlemail.com", "yahoo.com", "hotmail.com")
_FREE_MAIL_BOUNDS: Final = np.array([0.0036, 0.18, 0.195, 0.245, 0.295])

# A few countries are over-represented so reports have a shape; everything else shares the rest evenly.
_COUNTRY_WEIGHTS: Final = {
    "DE": 0.065,
    "US": 0.045,
    "GB": 0.03,
    "FR": 0.03,
    "NL": 0.02,
    "AT": 0.02,
    "CH": 0.02,
    "PL": 0.015,
    "IT": 0.015,
    "ES": 0.015,
}

_INVALID_BIRTHDAYS: Final[tuple[str | None, ...]] = (
    "1990-02-30",
    "31/12/1990",
    "",
    None,
    "not-a-date",
    "2001-13-01",
)
_SQL_INJECTIONS: Final = (
    "Robert'); DROP TABLE staging.persons;--",
    "' OR '1'='1",
    '"; DELETE FROM landing.persons; --',
    "x'; UPDATE landing.persons SET email = NULL; --",
)
# Hostile values (OWASP CSV injection, invisible characters, entries that are no records, broken UTF-8):
# records that are valid otherwise, so that each defect shows on its own.
HOSTILE_KINDS: Final[tuple[str, ...]] = (
    "formula_country",
    "invisible_country",
    "not_a_record",
    "invalid_utf8_name",
)
_FORMULA_COUNTRIES: Final = (
    "+cmd|' /C calc'!A0",
    '=HYPERLINK("http://example.invalid","x")',
    "@SUM(1+1)*cmd|' /C calc'!A0",
    "-2+3+cmd|' /C calc'!A0",
    "\t=1+1",
    "\r=1+1",
)
# (before, after) the country name: NUL, bidi override and isolate, zero-width space and joiner, BOM.
_INVISIBLE_MARKS: Final = (
    ("", "\x00"),
    ("", "\u202e"),
    ("\u200b", ""),
    ("\ufeff", ""),
    ("\u2066", "\u2069"),
    ("\u200d", "\u200d"),
)
_NOT_RECORDS: Final[tuple[Any, ...]] = (7, None, "not a record", [1, 2])
# Undecodable bytes (a lone 0xFF, lead bytes without their continuation) as Python holds them in a string.
_INVALID_UTF8: Final = tuple(
    raw.decode("utf-8", "surrogateescape") for raw in (b"\xff", b"\xc3", b"\xe2\x82")
)
_LONG_MIN: Final = 5000
_LONG_MAX: Final = 20000
_FUTURE_START: Final = date(2100, 1, 1)

ObjArray = NDArray[np.object_]
IndexArray = NDArray[np.intp]


class _Stream(IntEnum):
    """Independent RNG stream per field, so one field's draws never shift another's."""

    GENDER = 1
    FIRSTNAME = 2
    LASTNAME = 3
    EMAIL_DIGITS = 4
    EMAIL_DOMAIN = 5
    PHONE = 6
    BIRTHDAY = 7
    STREET_NAME = 8
    BUILDING = 9
    SECONDARY = 10
    CITY = 11
    ZIPCODE = 12
    COUNTRY = 13
    LATITUDE = 14
    LONGITUDE = 15
    WEBSITE = 16
    BAD = 17
    BAD_OFFSET = 18
    BAD_VARIANT = 19
    EXTRA_MIDDLENAME = 20
    EXTRA_SSN = 21
    EXTRA_COUNTY = 22
    PII_COUNTRY = 23
    HOSTILE = 24
    HOSTILE_OFFSET = 25
    HOSTILE_VARIANT = 26


# ------------------------------------------------------------ faults


@dataclass(frozen=True)
class TwinFaults:
    """Switchable misbehaviour of the twin; every fault is off by default."""

    error_rate: float = 0.0
    rate_limit_every: int = 0
    retry_after_s: int = 1
    truncate_rate: float = 0.0
    latency_ms: int = 0
    bad_record_rate: float = 0.0
    coordinates: CoordinateShape = "flat"
    extra_fields: bool = False
    pii_country_rate: float = (
        0.0  # an upstream bug: the email shifted into address.country (gate must stop it)
    )
    hostile_rate: float = 0.0  # formula-like or invisible-character countries, non-records, invalid UTF-8

    def __post_init__(self) -> None:
        """Reject out-of-range settings early, so a typo fails loudly instead of silently doing nothing."""
        for name in ("error_rate", "truncate_rate", "bad_record_rate", "pii_country_rate", "hostile_rate"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be within [0, 1], got {value!r}")
        for name in ("rate_limit_every", "retry_after_s", "latency_ms"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)!r}")
        if self.coordinates not in COORDINATE_SHAPES:
            raise ValueError(f"coordinates must be one of {COORDINATE_SHAPES}, got {self.coordinates!r}")

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TwinFaults:
        """Build from a JSON-like mapping; missing fields take defaults, unknown fields are an error."""
        known = {f.name: f.type for f in fields(cls)}
        unknown = sorted(set(data) - set(known))
        if unknown:
            raise ValueError(f"unknown fault fields: {unknown}")
        return cls(**{name: _coerce_fault(name, known[name], value) for name, value in data.items()})

    def to_dict(self) -> dict[str, Any]:
        """Plain dict of all fields (the shape ``from_dict`` and ``POST /__twin/faults`` accept)."""
        return asdict(self)


def _coerce_fault(name: str, type_name: object, value: object) -> Any:
    """Check one JSON value against the field's declared type (annotations are strings here)."""
    kind = str(type_name)
    if kind == "bool":
        if not isinstance(value, bool):
            raise ValueError(f"{name} must be a boolean, got {value!r}")
        return value
    if isinstance(value, bool):
        raise ValueError(f"{name} must be a number, got {value!r}")
    if kind == "float" and isinstance(value, int | float):
        return float(value)
    if kind == "int" and isinstance(value, int):
        return value
    if kind == "int" and isinstance(value, float) and value.is_integer():
        return int(value)
    if kind == "CoordinateShape" and isinstance(value, str):
        return value
    raise ValueError(f"{name} has an invalid value {value!r}")


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


# ------------------------------------------------------------ generation


def _rng(seed: int, stream: _Stream) -> np.random.Generator:
    """Generator for one (seed, field) pair; negative seeds are mapped bijectively onto non-negative ints."""
    entropy = seed * 2 if seed >= 0 else -seed * 2 - 1
    return np.random.default_rng(np.random.SeedSequence(entropy, spawn_key=(int(stream),)))


def _people_seed(seed: int, locale: str) -> int:
    """Seed for the people of one locale: en_US uses ``seed`` itself, other locales get their own people."""
    if locale == DEFAULT_LOCALE:
        return seed
    # Otherwise seed 42 in de_DE and en_US would share phones, birthdays and e-mail digits.
    digest = hashlib.blake2b(f"{locale}:{seed}".encode(), digest_size=16).digest()
    return int.from_bytes(digest, "big")


def _pick_index(count: int, uniform: NDArray[np.float64]) -> IndexArray:
    """Indexes into a pool of ``count`` entries selected by uniform draws in [0, 1)."""
    return np.minimum((uniform * count).astype(np.intp), count - 1)


def _pick(pool: ObjArray, uniform: NDArray[np.float64]) -> ObjArray:
    """Pool entries selected by uniform draws in [0, 1)."""
    return pool[_pick_index(len(pool), uniform)]


def _choose(pool: ObjArray, rng: np.random.Generator, size: int) -> list[Any]:
    """``size`` uniform picks from a pool, as a Python list."""
    return cast(list[Any], pool[rng.integers(0, len(pool), size=size)].tolist())


def _name_draws(
    seed: int, size: int, pools: _Pools
) -> tuple[NDArray[np.bool_], NDArray[np.float64], IndexArray]:
    """Female flags, the uniform draws picking first names and the last-name indexes."""
    female = _rng(seed, _Stream.GENDER).random(size) < 0.5
    uniform = _rng(seed, _Stream.FIRSTNAME).random(size)
    last_index = _rng(seed, _Stream.LASTNAME).integers(0, len(pools.last), size=size)
    return female, uniform, last_index


def _names(
    seed: int, size: int, pools: _Pools
) -> tuple[list[str], list[str], list[str], list[str], list[str]]:
    """Genders, first names, last names and their e-mail slugs."""
    female, uniform, last_index = _name_draws(seed, size, pools)
    first = np.where(female, _pick(pools.first_female, uniform), _pick(pools.first_male, uniform))
    first_slug = np.where(
        female, _pick(pools.first_female_slug, uniform), _pick(pools.first_male_slug, uniform)
    )
    last, last_slug = pools.last[last_index], pools.last_slug[last_index]
    genders = np.where(female, "female", "male").tolist()
    return genders, first.tolist(), last.tolist(), first_slug.tolist(), last_slug.tolist()


def _email_domain_draws(seed: int, size: int, company_count: int) -> tuple[IndexArray, IndexArray]:
    """Free-mail index per record (``len(_FREE_MAIL_DOMAINS)`` = none) and the company-domain index."""
    uniform = _rng(seed, _Stream.EMAIL_DOMAIN).random(size)
    free = np.searchsorted(_FREE_MAIL_BOUNDS, uniform, side="right")
    # Re-use the same draw for the company pick: conditioned on "not free-mail" it is uniform again.
    company_uniform = (uniform - _FREE_MAIL_BOUNDS[-1]) / (1.0 - _FREE_MAIL_BOUNDS[-1])
    return free, _pick_index(company_count, np.clip(company_uniform, 0.0, 1.0))


def _email_domains(seed: int, size: int, pools: _Pools) -> list[str]:
    """~30% free-mail (mostly gmail, a little upper-cased), the rest company domains."""
    free, company_index = _email_domain_draws(seed, size, len(pools.company_domains))
    free_domains = np.array([*_FREE_MAIL_DOMAINS, ""], dtype=object)[free]
    company = pools.company_domains[company_index]
    return cast(list[str], np.where(free < len(_FREE_MAIL_DOMAINS), free_domains, company).tolist())


def _emails(seed: int, first_slugs: list[str], last_slugs: list[str], pools: _Pools) -> list[str]:
    """``first.last<4-6 digits>@domain`` - the digits keep people unique across a million records."""
    size = len(first_slugs)
    digits = _rng(seed, _Stream.EMAIL_DIGITS).integers(1000, 1_000_000, size=size).tolist()
    domains = _email_domains(seed, size, pools)
    return [
        f"{f}.{la}{d}@{dom}" for f, la, d, dom in zip(first_slugs, last_slugs, digits, domains, strict=True)
    ]


def _phones(seed: int, size: int) -> list[str]:
    """``+1`` and ten digits whose area code starts with 2-9, as in the NANP."""
    numbers = _rng(seed, _Stream.PHONE).integers(2_000_000_000, 10_000_000_000, size=size).tolist()
    return [f"+1{n}" for n in numbers]


def _birthday_days(seed: int, size: int, start: date, end: date) -> NDArray[np.datetime64]:
    """Days uniform in [start, end]."""
    span = (end - start).days + 1
    offsets = _rng(seed, _Stream.BIRTHDAY).integers(0, span, size=size)
    return np.datetime64(start.isoformat(), "D") + offsets


def _birthdays(seed: int, size: int, start: date, end: date) -> list[str]:
    """ISO dates uniform in [start, end]."""
    days = _birthday_days(seed, size, start, end)
    return cast(list[str], np.datetime_as_string(days, unit="D").tolist())


def _streets(seed: int, size: int, pools: _Pools) -> tuple[list[str], list[str], list[str]]:
    """Street lines, street names and building numbers (en_US adds "Apt."/"Suite" to some)."""
    names = _choose(pools.street_names, _rng(seed, _Stream.STREET_NAME), size)
    buildings = _choose(pools.buildings, _rng(seed, _Stream.BUILDING), size)
    streets = [f"{b} {n}" for b, n in zip(buildings, names, strict=True)]
    if len(pools.secondaries):
        uniform = _rng(seed, _Stream.SECONDARY).random(size)
        picks = _pick(pools.secondaries, np.clip(uniform / _SECONDARY_SHARE, 0.0, 1.0)).tolist()
        with_unit = (uniform < _SECONDARY_SHARE).tolist()
        streets = [f"{s} {p}" if w else s for s, p, w in zip(streets, picks, with_unit, strict=True)]
    return streets, names, buildings


def _country_index(seed: int, size: int) -> IndexArray:
    """Weighted draw of rows of ``_countries()``."""
    countries = _countries()
    uniform = _rng(seed, _Stream.COUNTRY).random(size)
    return np.minimum(np.searchsorted(countries.cumulative, uniform, side="right"), len(countries.codes) - 1)


def _country_rows(seed: int, size: int) -> tuple[list[str], list[str]]:
    """Weighted country draw; names and codes come from the same row, so they always match."""
    countries = _countries()
    index = _country_index(seed, size)
    return countries.names[index].tolist(), countries.codes[index].tolist()


def _coordinate_arrays(seed: int, size: int) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Latitude/longitude rounded to 6 decimals, within the valid ranges."""
    latitude = np.round(_rng(seed, _Stream.LATITUDE).uniform(-90.0, 90.0, size), 6)
    longitude = np.round(_rng(seed, _Stream.LONGITUDE).uniform(-180.0, 180.0, size), 6)
    return latitude, longitude


def _coordinates(seed: int, size: int) -> tuple[list[float], list[float]]:
    """Latitude/longitude rounded to 6 decimals, as Python floats."""
    latitude, longitude = _coordinate_arrays(seed, size)
    return latitude.tolist(), longitude.tolist()


def _records(seed: int, size: int, pools: _Pools, start: date, end: date) -> list[dict[str, Any]]:
    """Clean records in the current (flat coordinates) shape."""
    genders, first, last, first_slugs, last_slugs = _names(seed, size, pools)
    emails = _emails(seed, first_slugs, last_slugs, pools)
    streets, street_names, buildings = _streets(seed, size, pools)
    cities = _choose(pools.cities, _rng(seed, _Stream.CITY), size)
    zipcodes = _choose(pools.postcodes, _rng(seed, _Stream.ZIPCODE), size)
    countries, codes = _country_rows(seed, size)
    latitudes, longitudes = _coordinates(seed, size)
    websites = _choose(pools.company_domains, _rng(seed, _Stream.WEBSITE), size)
    columns = zip(
        range(1, size + 1),
        first,
        last,
        emails,
        _phones(seed, size),
        _birthdays(seed, size, start, end),
        genders,
        streets,
        street_names,
        buildings,
        cities,
        zipcodes,
        countries,
        codes,
        latitudes,
        longitudes,
        websites,
        strict=True,
    )
    # One flat comprehension: this loop is the hot path, helper calls per record would halve throughput.
    return [
        {
            "id": i,
            "firstname": fn,
            "lastname": ln,
            "email": em,
            "phone": ph,
            "birthday": bd,
            "gender": ge,
            "address": {
                "id": 1,
                "street": st,
                "streetName": sn,
                "buildingNumber": bn,
                "city": ci,
                "zipcode": zc,
                "country": co,
                "country_code": cc,
                "latitude": la,
                "longitude": lo,
            },
            "website": f"http://{we}",
            "image": IMAGE_URL,
        }
        for i, fn, ln, em, ph, bd, ge, st, sn, bn, ci, zc, co, cc, la, lo, we in columns
    ]


def _nest_coordinates(records: list[dict[str, Any]], shape: str) -> None:
    """Move lat/lon under ``address.coordinates`` (older API shape); "mixed" does every second record."""
    for index, record in enumerate(records):
        if shape == "mixed" and index % 2 == 0:
            continue
        address = record["address"]
        address["coordinates"] = {"latitude": address.pop("latitude"), "longitude": address.pop("longitude")}


def _add_extra_fields(seed: int, records: list[dict[str, Any]], pools: _Pools) -> None:
    """Fields the real API might add one day, so the client has to drop and count unknown keys."""
    size = len(records)
    middlenames = _choose(pools.first_female, _rng(seed, _Stream.EXTRA_MIDDLENAME), size)
    ssns = _rng(seed, _Stream.EXTRA_SSN).integers(100_000_000, 900_000_000, size=size).tolist()
    counties = _choose(pools.cities, _rng(seed, _Stream.EXTRA_COUNTY), size)
    for record, middle, ssn, county in zip(records, middlenames, ssns, counties, strict=True):
        record["middlename"] = middle
        record["ssn"] = f"{ssn // 1_000_000:03d}-{ssn // 10_000 % 100:02d}-{ssn % 10_000:04d}"
        record["address"]["county"] = f"{county} County"


def bad_record_kinds(seed: int, quantity: int, bad_record_rate: float) -> dict[int, str]:
    """Record index (0-based) -> bad-record kind, exactly the draw ``generate_page`` applies."""
    if bad_record_rate <= 0.0 or quantity <= 0:
        return {}
    hits = np.flatnonzero(_rng(seed, _Stream.BAD).random(quantity) < bad_record_rate)
    # Kinds cycle in a fixed order from a seeded start, so even a few bad records cover many kinds.
    offset = int(_rng(seed, _Stream.BAD_OFFSET).integers(0, len(BAD_RECORD_KINDS)))
    return {
        int(index): BAD_RECORD_KINDS[(offset + n) % len(BAD_RECORD_KINDS)] for n, index in enumerate(hits)
    }


def _stretch(text: str, length: int) -> str:
    """``text`` repeated up to exactly ``length`` characters."""
    base = text or "x"
    return (base * (length // len(base) + 1))[:length]


def _spoil(record: dict[str, Any], kind: str, variant: int) -> None:
    """Turn a clean record into the bad variant ``kind``; ``variant`` picks among the kind's flavours."""
    address = record.get("address")
    if kind == "birthday_invalid":
        record["birthday"] = _INVALID_BIRTHDAYS[variant % len(_INVALID_BIRTHDAYS)]
    elif kind == "birthday_future":
        record["birthday"] = (_FUTURE_START + timedelta(days=variant % 36_500)).isoformat()
    elif kind == "email_no_at":
        record["email"] = record["email"].replace("@", "", 1)
    elif kind == "address_missing":
        if variant % 2:
            del record["address"]
        else:
            record["address"] = None
    elif kind == "country_null" and address is not None:
        address["country"] = None
    elif kind == "long_strings" and address is not None:
        length = _LONG_MIN + variant % (_LONG_MAX - _LONG_MIN - 2)
        record["firstname"] = _stretch(record["firstname"], length)
        record["lastname"] = _stretch(record["lastname"], length + 1)
        address["street"] = _stretch(address["street"], length + 2)
        address["city"] = _stretch(address["city"], length)
    elif kind == "sql_injection" and address is not None:
        injection = _SQL_INJECTIONS[variant % len(_SQL_INJECTIONS)]
        record["lastname"] = injection
        address["country"] = injection


def _apply_bad_records(seed: int, records: list[dict[str, Any]], bad_record_rate: float) -> None:
    """Replace the records chosen by ``bad_record_kinds`` with their bad variants."""
    kinds = bad_record_kinds(seed, len(records), bad_record_rate)
    if not kinds:
        return
    variants = _rng(seed, _Stream.BAD_VARIANT).integers(0, 2**31, size=len(records)).tolist()
    for index, kind in kinds.items():
        _spoil(records[index], kind, variants[index])


def _shift_emails_into_country(seed: int, records: list[dict[str, Any]], rate: float) -> None:
    """Simulate an upstream field shift: the email lands in address.country (valid otherwise)."""
    if rate <= 0.0:
        return
    for index in np.flatnonzero(_rng(seed, _Stream.PII_COUNTRY).random(len(records)) < rate):
        record = records[int(index)]
        if isinstance(record.get("address"), dict) and isinstance(record.get("email"), str):
            record["address"]["country"] = record["email"]


def hostile_kinds(seed: int, quantity: int, hostile_rate: float) -> dict[int, str]:
    """Record index (0-based) -> hostile kind, exactly the draw ``generate_page`` applies."""
    if hostile_rate <= 0.0 or quantity <= 0:
        return {}
    hits = np.flatnonzero(_rng(seed, _Stream.HOSTILE).random(quantity) < hostile_rate)
    offset = int(_rng(seed, _Stream.HOSTILE_OFFSET).integers(0, len(HOSTILE_KINDS)))
    return {int(index): HOSTILE_KINDS[(offset + n) % len(HOSTILE_KINDS)] for n, index in enumerate(hits)}


def _hostile(record: dict[str, Any], kind: str, variant: int) -> Any:
    """The entry that replaces a clean record for the hostile ``kind`` (mostly the record, changed)."""
    address = record.get("address")
    if kind == "not_a_record":
        return _NOT_RECORDS[variant % len(_NOT_RECORDS)]
    if kind == "invalid_utf8_name" and isinstance(record.get("firstname"), str):
        name = record["firstname"]
        record["firstname"] = name[:1] + _INVALID_UTF8[variant % len(_INVALID_UTF8)] + name[1:]
    elif kind == "formula_country" and isinstance(address, dict):
        address["country"] = _FORMULA_COUNTRIES[variant % len(_FORMULA_COUNTRIES)]
    elif kind == "invisible_country" and isinstance(address, dict) and address.get("country"):
        before, after = _INVISIBLE_MARKS[variant % len(_INVISIBLE_MARKS)]
        country = str(address["country"])
        if before == after:  # a joiner inside the name
            address["country"] = country[:1] + before + country[1:]
        else:
            address["country"] = before + country + after
    return record


def _apply_hostile(seed: int, records: list[Any], hostile_rate: float) -> None:
    """Replace the records ``hostile_kinds`` chose by their hostile entries (the page keeps its length)."""
    kinds = hostile_kinds(seed, len(records), hostile_rate)
    if not kinds:
        return
    variants = _rng(seed, _Stream.HOSTILE_VARIANT).integers(0, 2**31, size=len(records)).tolist()
    for index, kind in kinds.items():
        if isinstance(records[index], dict):
            records[index] = _hostile(records[index], kind, variants[index])


def generate_page(
    seed: int,
    quantity: int,
    locale: str = "en_US",
    birthday_start: date | None = None,
    birthday_end: date | None = None,
    bad_record_rate: float = 0.0,
    coordinates: str = "flat",
    extra_fields: bool = False,
    pii_country_rate: float = 0.0,
    hostile_rate: float = 0.0,
) -> dict[str, Any]:
    """Full ``/persons`` envelope: pure and deterministic; ``quantity`` is not capped here."""
    start = birthday_start or DEFAULT_BIRTHDAY_START
    end = birthday_end or DEFAULT_BIRTHDAY_END
    if quantity < 0:
        raise ValueError(f"quantity must be >= 0, got {quantity}")
    if start > end:
        raise ValueError(f"birthday_start {start} is after birthday_end {end}")
    if coordinates not in COORDINATE_SHAPES:
        raise ValueError(f"coordinates must be one of {COORDINATE_SHAPES}, got {coordinates!r}")
    if not 0.0 <= bad_record_rate <= 1.0:
        raise ValueError(f"bad_record_rate must be within [0, 1], got {bad_record_rate}")
    pools = _pools_for(locale)
    people_seed = _people_seed(seed, pools.locale)
    data = _records(people_seed, quantity, pools, start, end)
    if coordinates != "flat":
        _nest_coordinates(data, coordinates)
    if extra_fields:
        _add_extra_fields(people_seed, data, pools)
    # Bad records depend on the seed only, so ``bad_record_kinds`` needs no locale.
    _apply_bad_records(seed, data, bad_record_rate)
    _shift_emails_into_country(seed, data, pii_country_rate)
    _apply_hostile(seed, data, hostile_rate)
    envelope = {"status": "OK", "code": 200, "locale": locale, "seed": str(seed), "total": len(data)}
    return {**envelope, "data": data}


# ------------------------------------------------------------ fast serialisation

# The HTTP handler's common case (no record-altering fault) writes the body straight from the draws instead
# of building two dicts per record for orjson: every pool value is escaped once with orjson (JSON escaping
# is per character, so escaped pieces concatenate into escaped text) and fused with the literal JSON next
# to it, numbers are rendered in bulk by numpy or orjson, and a page is one ``bytes.join`` over 20 pieces
# per record. ``generate_page`` stays the source of truth: the bytes equal ``orjson.dumps`` of its envelope.
#
# Pieces of one record, in order (``<x>`` is a value, ``|`` separates pieces; the ``,`` before ``{"id"``
# only from the second record on):
#   ,{"id":<id>,"firstname":" | <first>","lastname":" | <last>","email":" | <first slug>. | <last slug> |
#   <email digits // 10**4, "" for 0> | <email digits % 10**4, 4 digits> | @<domain>","phone":"+1 |
#   <phone>","birthday":"<birthday>","gender":" | <gender>","address":{"id":1,"street":"<building><space> |
#   <street name> | [<space><secondary>]","streetName":" | <street name>","buildingNumber":" |
#   <building>","city":" | <city>","zipcode":" | <zipcode>","country":" |
#   <country>","country_code":"<code>","latitude": | <latitude>,"longitude": | <longitude> |
#   },"website":"http://<website>","image":"<IMAGE_URL>"}
_RECORD_PIECES: Final = 20
# Phone and birthday share one piece: a fixed-width byte row per record (digits and date are placeholders).
_PHONE_ROW: Final = b'0123456789","birthday":"YYYY-MM-DD","gender":"'
_BIRTHDAY_AT: Final = _PHONE_ROW.index(b"YYYY")


@dataclass(frozen=True)
class _JsonPools:
    """One locale's pools as escaped UTF-8 JSON pieces fused with their literal neighbours (layout above)."""

    first: ObjArray  # male then female first names + '","lastname":"'
    first_slug: ObjArray  # same order + "."
    last: ObjArray  # + '","email":"'
    last_slug: ObjArray
    domains: ObjArray  # company then free-mail domains: "@" + domain + '","phone":"+1'
    address_start: ObjArray  # gender + '","address":{"id":1,"street":"' + building + " ", males first
    street_names: ObjArray
    secondaries: ObjArray  # " " + secondary address, then "" for none; + '","streetName":"'
    street_names_end: ObjArray  # + '","buildingNumber":"'
    buildings: ObjArray  # + '","city":"'
    cities: ObjArray  # + '","zipcode":"'
    postcodes: ObjArray  # + '","country":"'
    countries: ObjArray  # name + '","country_code":"' + code + '","latitude":'
    websites: ObjArray  # '},"website":"http://' + domain + '","image":"' + IMAGE_URL + '"}'


_JSON_POOLS: dict[str, _JsonPools] = {}


def _json_text(value: str) -> bytes:
    """``value`` escaped as the inside of a JSON string, exactly as orjson writes it (UTF-8, no quotes)."""
    return orjson.dumps(value)[1:-1]


def _pieces(values: list[bytes]) -> ObjArray:
    """Object array of byte strings (fancy indexing and ``tolist`` stay cheap)."""
    array = np.empty(len(values), dtype=object)
    array[:] = values
    return array


def _fused(values: Iterable[str], before: bytes = b"", after: bytes = b"") -> ObjArray:
    """``before + escaped value + after`` per value."""
    return _pieces([before + _json_text(value) + after for value in values])


def _build_json_pools(pools: _Pools) -> _JsonPools:
    """Escape and fuse every pool once per locale (a few milliseconds)."""
    countries = _countries()
    secondaries = [b" " + _json_text(value) for value in pools.secondaries]
    return _JsonPools(
        first=_fused([*pools.first_male, *pools.first_female], after=b'","lastname":"'),
        first_slug=_fused([*pools.first_male_slug, *pools.first_female_slug], after=b"."),
        last=_fused(pools.last, after=b'","email":"'),
        last_slug=_fused(pools.last_slug),
        domains=_fused([*pools.company_domains, *_FREE_MAIL_DOMAINS], b"@", b'","phone":"+1'),
        address_start=_pieces(
            [
                gender + b'","address":{"id":1,"street":"' + _json_text(building) + b" "
                for gender in (b"male", b"female")
                for building in pools.buildings
            ]
        ),
        street_names=_fused(pools.street_names),
        secondaries=_pieces([value + b'","streetName":"' for value in [*secondaries, b""]]),
        street_names_end=_fused(pools.street_names, after=b'","buildingNumber":"'),
        buildings=_fused(pools.buildings, after=b'","city":"'),
        cities=_fused(pools.cities, after=b'","zipcode":"'),
        postcodes=_fused(pools.postcodes, after=b'","country":"'),
        countries=_pieces(
            [
                _json_text(name) + b'","country_code":"' + _json_text(code) + b'","latitude":'
                for name, code in zip(countries.names, countries.codes, strict=True)
            ]
        ),
        websites=_fused(
            pools.company_domains, b'},"website":"http://', b'","image":' + orjson.dumps(IMAGE_URL) + b"}"
        ),
    )


def _json_pools_for(pools: _Pools) -> _JsonPools:
    """Cached JSON pieces of a locale's pools, built at most once even under concurrent requests."""
    json_pools = _JSON_POOLS.get(pools.locale)
    if json_pools is not None:
        return json_pools
    with _POOLS_LOCK:
        if pools.locale not in _JSON_POOLS:
            _JSON_POOLS[pools.locale] = _build_json_pools(pools)
        return _JSON_POOLS[pools.locale]


@functools.lru_cache(maxsize=64)
def _id_pieces(size: int) -> tuple[bytes, ...]:
    """First piece of every record of a page: separator, id and the start of the first name."""
    return tuple(b'%s{"id":%d,"firstname":"' % (b"," if i > 1 else b"", i) for i in range(1, size + 1))


@functools.cache
def _number_tables() -> tuple[ObjArray, ObjArray, NDArray[np.uint32]]:
    """``str(n)`` for n < 100 ("" for 0), ``f"{n:04d}"`` for n < 10**4, and the latter packed in uint32s."""
    four_digits = [b"%04d" % number for number in range(10_000)]
    packed = np.frombuffer(b"".join(four_digits), dtype=np.uint32)
    return _pieces([b"%d" % number if number else b"" for number in range(100)]), _pieces(four_digits), packed


def _digits(values: NDArray[np.int64], width: int) -> NDArray[np.uint8]:
    """The last ``width`` (<= 4) of 4 zero-padded ASCII digits of ints in [0, 10**4), one row per value."""
    packed = _number_tables()[2]
    return packed[values].view(np.uint8).reshape(len(values), 4)[:, 4 - width :]


def _phone_birthday_pieces(phones: NDArray[np.int64], days: NDArray[np.datetime64]) -> list[bytes]:
    """``<phone>","birthday":"<YYYY-MM-DD>","gender":"`` per record, rendered as one byte row each."""
    years = days.astype("datetime64[Y]")
    months = days.astype("datetime64[M]")
    rows = np.empty((len(phones), len(_PHONE_ROW)), dtype=np.uint8)
    rows[:] = np.frombuffer(_PHONE_ROW, dtype=np.uint8)
    # Phones have 10 digits (drawn from [2e9, 1e10)): 2 + 4 + 4.
    rows[:, 0:2] = _digits(phones // 10**8, 2)
    rows[:, 2:6] = _digits(phones // 10**4 % 10**4, 4)
    rows[:, 6:10] = _digits(phones % 10**4, 4)
    at = _BIRTHDAY_AT
    rows[:, at : at + 4] = _digits(years.astype(np.int64) + 1970, 4)
    rows[:, at + 5 : at + 7] = _digits((months - years.astype("datetime64[M]")).astype(np.int64) + 1, 2)
    rows[:, at + 8 : at + 10] = _digits((days - months.astype("datetime64[D]")).astype(np.int64) + 1, 2)
    return cast(list[bytes], rows.view(f"S{len(_PHONE_ROW)}").ravel().tolist())


def _float_pieces(values: NDArray[np.float64], after: bytes = b"") -> list[bytes]:
    """Floats exactly as orjson writes them, each followed by ``after`` (which must not hold a newline)."""
    numbers = orjson.dumps(values, option=orjson.OPT_SERIALIZE_NUMPY)[1:-1] + b","
    return numbers.replace(b",", after + b"\n").split(b"\n")[:-1]


def _record_columns(seed: int, size: int, pools: _Pools, start: date, end: date) -> list[list[bytes]]:
    """The 20 pieces of every record as columns, from the same draws as ``_records`` (``size`` >= 1)."""
    json_pools = _json_pools_for(pools)
    female, uniform, last = _name_draws(seed, size, pools)
    males = len(pools.first_male)
    first = np.where(
        female, _pick_index(len(pools.first_female), uniform) + males, _pick_index(males, uniform)
    )
    # E-mail digits are drawn from [1000, 10**6): str(d) == str(d // 10**4 or "") + f"{d % 10**4:04d}".
    digits = _rng(seed, _Stream.EMAIL_DIGITS).integers(1000, 1_000_000, size=size)
    high_digits, low_digits, _ = _number_tables()
    free, company = _email_domain_draws(seed, size, len(pools.company_domains))
    domain = np.where(free < len(_FREE_MAIL_DOMAINS), free + len(pools.company_domains), company)
    phones = _rng(seed, _Stream.PHONE).integers(2_000_000_000, 10_000_000_000, size=size)
    days = _birthday_days(seed, size, start, end)
    street = _rng(seed, _Stream.STREET_NAME).integers(0, len(pools.street_names), size=size)
    building = _rng(seed, _Stream.BUILDING).integers(0, len(pools.buildings), size=size)
    secondaries = len(pools.secondaries)
    secondary = np.full(size, secondaries, dtype=np.intp)  # the last piece has no secondary address
    if secondaries:
        unit = _rng(seed, _Stream.SECONDARY).random(size)
        picks = _pick_index(secondaries, np.clip(unit / _SECONDARY_SHARE, 0.0, 1.0))
        secondary = np.where(unit < _SECONDARY_SHARE, picks, secondary)
    city = _rng(seed, _Stream.CITY).integers(0, len(pools.cities), size=size)
    zipcode = _rng(seed, _Stream.ZIPCODE).integers(0, len(pools.postcodes), size=size)
    country = _country_index(seed, size)
    latitude, longitude = _coordinate_arrays(seed, size)
    website = _rng(seed, _Stream.WEBSITE).integers(0, len(pools.company_domains), size=size)
    return [
        list(_id_pieces(size)),
        json_pools.first[first].tolist(),
        json_pools.last[last].tolist(),
        json_pools.first_slug[first].tolist(),
        json_pools.last_slug[last].tolist(),
        high_digits[digits // 10**4].tolist(),
        low_digits[digits % 10**4].tolist(),
        json_pools.domains[domain].tolist(),
        _phone_birthday_pieces(phones, days),
        json_pools.address_start[building + female * len(pools.buildings)].tolist(),
        json_pools.street_names[street].tolist(),
        json_pools.secondaries[secondary].tolist(),
        json_pools.street_names_end[street].tolist(),
        json_pools.buildings[building].tolist(),
        json_pools.cities[city].tolist(),
        json_pools.postcodes[zipcode].tolist(),
        json_pools.countries[country].tolist(),
        _float_pieces(latitude, after=b',"longitude":'),
        _float_pieces(longitude),
        json_pools.websites[website].tolist(),
    ]


def _persons_body(
    seed: int, seed_text: str, quantity: int, locale: str, birthday_start: date, birthday_end: date
) -> bytes:
    """``orjson.dumps`` of ``generate_page``'s envelope with ``seed_text`` as seed, without building dicts.

    Only for pages without record-altering faults (bad records, extra fields, nested coordinates, shifted
    e-mails); the arguments must already be valid.
    """
    pools = _pools_for(locale)
    header = b'{"status":"OK","code":200,"locale":%s,"seed":%s,"total":%d,"data":[' % (
        orjson.dumps(locale),
        orjson.dumps(seed_text),
        quantity,
    )
    if quantity == 0:
        return header + b"]}"
    columns = _record_columns(_people_seed(seed, pools.locale), quantity, pools, birthday_start, birthday_end)
    pieces: list[bytes] = [b""] * (_RECORD_PIECES * quantity + 2)
    pieces[0], pieces[-1] = header, b"]}"
    for offset, column in enumerate(columns, start=1):
        pieces[offset : len(pieces) - 1 : _RECORD_PIECES] = column
    return b"".join(pieces)


# ------------------------------------------------------------ HTTP


class _BadRequestError(ValueError):
    """A query parameter the real API would reject with HTTP 400."""


@dataclass(frozen=True)
class _PersonsQuery:
    """Validated ``/persons`` query parameters."""

    seed: int
    seed_text: str
    quantity: int
    locale: str
    birthday_start: date
    birthday_end: date


# Bounded length: int() refuses strings of more than 4300 digits, longer seeds are hashed instead.
_SEED_INTEGER = re.compile(r"-?[0-9]{1,40}")
_QUANTITY = re.compile(r"[0-9]+")
_ISO_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")


def _parse_seed(text: str | None) -> tuple[int, str]:
    """Integer seed plus the text to echo; non-numeric seeds are hashed stably, a missing one is random."""
    if not text:
        seed = secrets.randbelow(2**31)
        return seed, str(seed)
    if _SEED_INTEGER.fullmatch(text):
        return int(text), text
    return int.from_bytes(hashlib.blake2b(text.encode("utf-8"), digest_size=8).digest(), "big"), text


def _parse_quantity(text: str | None) -> int:
    """``_quantity`` as an int in [1, 1000]; larger values are capped like the real API."""
    if text is None or text == "":
        return DEFAULT_QUANTITY
    digits = text.lstrip("0")
    if not _QUANTITY.fullmatch(text) or not digits:
        raise _BadRequestError(f"_quantity must be a positive integer, got {text!r}")
    # Only the length matters beyond 4 digits; int() on huge inputs would raise.
    return MAX_QUANTITY if len(digits) > 4 else min(int(digits), MAX_QUANTITY)


def _parse_date(name: str, text: str | None, default: date) -> date:
    """A strict ``YYYY-MM-DD`` date parameter."""
    if text is None or text == "":
        return default
    try:
        if not _ISO_DATE.fullmatch(text):
            raise ValueError(text)
        return date.fromisoformat(text)
    except ValueError:
        raise _BadRequestError(f"{name} must be a date YYYY-MM-DD, got {text!r}") from None


def _parse_persons_query(params: Mapping[str, str]) -> _PersonsQuery:
    """Validate the query string of a ``/persons`` request."""
    seed, seed_text = _parse_seed(params.get("_seed"))
    start = _parse_date("_birthday_start", params.get("_birthday_start"), DEFAULT_BIRTHDAY_START)
    end = _parse_date("_birthday_end", params.get("_birthday_end"), DEFAULT_BIRTHDAY_END)
    if start > end:
        raise _BadRequestError(f"_birthday_start {start} is after _birthday_end {end}")
    quantity = _parse_quantity(params.get("_quantity"))
    return _PersonsQuery(seed, seed_text, quantity, params.get("_locale") or DEFAULT_LOCALE, start, end)


def _alters_records(faults: TwinFaults) -> bool:
    """Whether a fault changes the records themselves (then pages go through ``generate_page``)."""
    return (
        faults.bad_record_rate > 0.0
        or faults.coordinates != "flat"
        or faults.extra_fields
        or faults.pii_country_rate > 0.0
        or faults.hostile_rate > 0.0
    )


# Pages are built one at a time. The work is CPU-bound under one GIL anyway, but numpy releases the GIL
# inside its calls, so concurrent handlers would hand it over hundreds of times per page; that switching
# cost ~50% more CPU per page with 4 clients. Waiting handlers block on this lock instead.
_PAGE_LOCK = threading.Lock()


def _page_json(query: _PersonsQuery, faults: TwinFaults) -> bytes:
    """Body of a valid ``/persons`` query, seed echoed as sent; fast writer unless faults alter records."""
    with _PAGE_LOCK:
        if not _alters_records(faults):
            start, end = query.birthday_start, query.birthday_end
            return _persons_body(query.seed, query.seed_text, query.quantity, query.locale, start, end)
        page = generate_page(
            query.seed,
            query.quantity,
            query.locale,
            query.birthday_start,
            query.birthday_end,
            faults.bad_record_rate,
            faults.coordinates,
            faults.extra_fields,
            faults.pii_country_rate,
            faults.hostile_rate,
        )
        page["seed"] = query.seed_text
        return page_bytes(page)


def page_bytes(page: dict[str, Any]) -> bytes:
    """The body of a page: orjson, unless a hostile record holds undecodable bytes (surrogateescape), which
    go out as those raw bytes - invalid UTF-8, on purpose."""
    try:
        return orjson.dumps(page)
    except orjson.JSONEncodeError:
        text = json.dumps(page, ensure_ascii=False, separators=(",", ":"))
        return text.encode("utf-8", "surrogateescape")


@dataclass
class _TwinState:
    """Faults and counters shared by all handler threads; every access goes through ``lock``."""

    faults: TwinFaults
    lock: threading.Lock = field(default_factory=threading.Lock)
    requests: int = 0
    persons_requests: int = 0
    persons_served: int = 0
    by_status: Counter[str] = field(default_factory=Counter)
    served: list[dict[str, str]] = field(default_factory=list)

    def begin(self, is_persons: bool) -> tuple[int, TwinFaults]:
        """Count a request; returns its number among /persons requests and the faults in force."""
        with self.lock:
            self.requests += 1
            if is_persons:
                self.persons_requests += 1
            return self.persons_requests, self.faults

    def finish(self, status: int, params: dict[str, str] | None = None, persons: int = 0) -> None:
        """Record a response status and, for served pages, the query and the number of persons."""
        with self.lock:
            self.by_status[str(status)] += 1
            if params is not None:
                self.served.append(params)
                self.persons_served += persons

    def stats(self) -> dict[str, Any]:
        """Snapshot of the counters."""
        with self.lock:
            return {
                "requests": self.requests,
                "persons_requests": self.persons_requests,
                "by_status": dict(sorted(self.by_status.items())),
                "persons_served": self.persons_served,
            }

    def served_params(self) -> list[dict[str, str]]:
        """Copy of the served log."""
        with self.lock:
            return [dict(params) for params in self.served]

    def set_faults(self, faults: TwinFaults) -> None:
        """Swap the faults atomically."""
        with self.lock:
            self.faults = faults

    def reset(self) -> None:
        """Zero counters and the served log (faults stay); fault decisions restart from request 1."""
        with self.lock:
            self.requests = self.persons_requests = self.persons_served = 0
            self.by_status.clear()
            self.served.clear()


@dataclass(frozen=True)
class _FaultPlan:
    """What the fault layer does to one /persons request."""

    status: int | None  # 429/5xx replaces the response; None serves the page
    truncate_at: float | None  # fraction of the body to keep, None keeps it whole


def _plan_faults(number: int, faults: TwinFaults) -> _FaultPlan:
    """Deterministic fault decision for the ``number``-th /persons request since start or reset."""
    if faults.rate_limit_every and number % faults.rate_limit_every == 0:
        return _FaultPlan(429, None)
    draws = np.random.default_rng(np.random.SeedSequence(_FAULT_SEED, spawn_key=(number,))).random(4)
    if draws[0] < faults.error_rate:
        return _FaultPlan((500, 502, 503)[int(draws[1] * 3)], None)
    return _FaultPlan(None, float(draws[3]) if draws[2] < faults.truncate_rate else None)


def _truncate(body: bytes, fraction: float) -> bytes:
    """Cut a body strictly inside, so what remains can never be complete JSON."""
    return body[: 1 + int(fraction * (len(body) - 1))]


def _error_body_dict(status: int, message: str) -> dict[str, Any]:
    """JSON error envelope in the real API's style."""
    return {"status": "ERROR", "code": status, "message": message}


def _error_body(status: int, message: str) -> bytes:
    """Serialised error envelope."""
    return orjson.dumps(_error_body_dict(status, message))


class _TwinServer(ThreadingHTTPServer):
    """Threading server that also tracks open keep-alive sockets so ``stop`` can really close them."""

    daemon_threads = True  # an idle keep-alive client must never keep the process alive
    request_queue_size = 128  # the default backlog of 5 makes parallel clients wait on SYN retries

    def __init__(self, address: tuple[str, int], state: _TwinState) -> None:
        """Bind and remember the shared state."""
        super().__init__(address, _TwinHandler)
        self.state = state
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()

    def track(self, connection: socket.socket, is_open: bool) -> None:
        """Add or remove a live connection."""
        with self._connections_lock:
            if is_open:
                self._connections.add(connection)
            else:
                self._connections.discard(connection)

    def close_connections(self) -> None:
        """Shut down idle keep-alive connections; their handler threads then end."""
        with self._connections_lock:
            connections = list(self._connections)
        for connection in connections:
            with contextlib.suppress(OSError):  # the peer may have closed it already
                connection.shutdown(socket.SHUT_RDWR)


class _TwinHandler(BaseHTTPRequestHandler):
    """Request handler for the API and the ``/__twin/`` control endpoints."""

    protocol_version = "HTTP/1.1"
    # Headers and body go out as two writes; with Nagle on, small responses stall ~40 ms on delayed ACKs.
    disable_nagle_algorithm = True
    server: _TwinServer

    def setup(self) -> None:
        """Register the connection for ``stop``."""
        super().setup()
        self.server.track(self.connection, is_open=True)

    def finish(self) -> None:
        """Unregister the connection."""
        try:
            super().finish()
        finally:
            self.server.track(self.connection, is_open=False)

    def log_message(self, format: str, *args: Any) -> None:
        """Stay silent: one stderr line per request would drown the pipeline's own output."""

    def do_GET(self) -> None:
        """Route GET requests."""
        self._guarded(self._get)

    def do_POST(self) -> None:
        """Route POST requests (control endpoints only)."""
        self._guarded(self._post)

    def _guarded(self, route: Callable[[], None]) -> None:
        """Answer 500 instead of dropping the connection when the twin itself has a bug."""
        try:
            route()
        except (BrokenPipeError, ConnectionResetError):
            # The client gave up (e.g. a timeout during injected latency); nothing left to answer.
            self.close_connection = True
        except Exception:
            log.exception("faker twin failed on %s %s", self.command, self.path)
            self._send(500, b"faker twin internal error", "text/plain")

    def _send(
        self, status: int, body: bytes, content_type: str, headers: Mapping[str, str] | None = None
    ) -> None:
        """Write one complete response with an exact Content-Length (keep-alive relies on it)."""
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def _send_json(self, status: int, payload: Any) -> None:
        """Serialise and send a JSON payload."""
        self._send(status, orjson.dumps(payload), "application/json")

    def _get(self) -> None:
        """GET: control endpoints or the API."""
        parts = urlsplit(self.path)
        if parts.path.startswith(CONTROL_PREFIX):
            self._control_get(parts.path)
        else:
            self._api_get(parts.path.rstrip("/"), dict(parse_qsl(parts.query, keep_blank_values=True)))

    def _control_get(self, path: str) -> None:
        """Stats, served log and current faults."""
        state = self.server.state
        if path == "/__twin/stats":
            self._send_json(200, state.stats())
        elif path == "/__twin/served":
            self._send_json(200, state.served_params())
        elif path == "/__twin/faults":
            with state.lock:
                faults = state.faults
            self._send_json(200, faults.to_dict())
        else:
            self._send_json(404, _error_body_dict(404, f"unknown control path {path}"))

    def _post(self) -> None:
        """POST: fault switch and reset."""
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        path = urlsplit(self.path).path
        if path == "/__twin/faults":
            self._post_faults(body)
        elif path == "/__twin/reset":
            self.server.state.reset()
            self._send_json(200, {"status": "OK"})
        else:
            self._send_json(404, _error_body_dict(404, f"unknown path {path}"))

    def _post_faults(self, body: bytes) -> None:
        """Replace the faults with the JSON body (missing fields -> defaults)."""
        try:
            payload = json.loads(body or b"{}")
            if not isinstance(payload, dict):
                raise ValueError("body must be a JSON object")
            faults = TwinFaults.from_dict(payload)
        except (ValueError, TypeError) as exc:
            self._send_json(400, _error_body_dict(400, str(exc)))
            return
        self.server.state.set_faults(faults)
        self._send_json(200, faults.to_dict())

    def _api_get(self, path: str, params: dict[str, str]) -> None:
        """The public API: ``/api/v2/persons`` with faults applied, 404 elsewhere."""
        state = self.server.state
        number, faults = state.begin(is_persons=path == PERSONS_PATH)
        if faults.latency_ms:
            time.sleep(faults.latency_ms / 1000)
        if path != PERSONS_PATH:
            state.finish(404)
            self._send(404, _error_body(404, f"unknown resource {path}"), "application/json")
            return
        plan = _plan_faults(number, faults)
        if plan.status == 429:
            state.finish(429)
            body = b"Too Many Requests"
            self._send(429, body, "text/plain", {"Retry-After": str(faults.retry_after_s)})
        elif plan.status is not None:
            state.finish(plan.status)
            self._send(plan.status, f"faker twin: injected HTTP {plan.status}".encode(), "text/plain")
        else:
            self._serve_persons(params, faults, plan)

    def _serve_persons(self, params: dict[str, str], faults: TwinFaults, plan: _FaultPlan) -> None:
        """Validate, generate, maybe truncate, send."""
        state = self.server.state
        try:
            query = _parse_persons_query(params)
        except _BadRequestError as exc:
            state.finish(400)
            self._send(400, _error_body(400, str(exc)), "application/json")
            return
        body = _page_json(query, faults)
        if plan.truncate_at is not None:
            body = _truncate(body, plan.truncate_at)
        state.finish(200, params, query.quantity)
        self._send(200, body, "application/json")


class FakerTwin:
    """The twin as a background server; use as a context manager or call ``start``/``stop``."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0, faults: TwinFaults | None = None) -> None:
        """Configure; nothing listens before ``start``."""
        self._host = host
        self._requested_port = port
        self._state = _TwinState(faults or TwinFaults())
        self._server: _TwinServer | None = None
        self._thread: threading.Thread | None = None
        self._bound_port: int | None = None

    def start(self) -> FakerTwin:
        """Pre-warm the en_US pools, bind and serve in a daemon thread."""
        if self._server is not None:
            raise RuntimeError("faker twin is already running")
        _pools_for(DEFAULT_LOCALE)
        _countries()
        server = _TwinServer((self._host, self._requested_port), self._state)
        self._server = server
        self._bound_port = int(server.server_address[1])
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.1}, name="faker-twin", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving, close open connections and release the port (idempotent)."""
        server, thread = self._server, self._thread
        self._server = self._thread = None
        if server is None:
            return
        server.shutdown()
        server.close_connections()
        server.server_close()
        if thread is not None:
            thread.join(timeout=5)

    def __enter__(self) -> FakerTwin:
        """Start on entering the block."""
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        """Stop on leaving the block."""
        self.stop()

    @property
    def port(self) -> int:
        """Bound port (the last one after ``stop``)."""
        if self._bound_port is None:
            raise RuntimeError("faker twin has not been started")
        return self._bound_port

    @property
    def url(self) -> str:
        """Base URL of the API, e.g. ``http://127.0.0.1:54321/api/v2``."""
        return f"http://{self._host}:{self.port}{API_PREFIX}"

    @property
    def faults(self) -> TwinFaults:
        """Faults currently in force."""
        with self._state.lock:
            return self._state.faults

    def set_faults(self, faults: TwinFaults) -> None:
        """Switch faults at runtime (same effect as ``POST /__twin/faults``)."""
        self._state.set_faults(faults)

    def stats(self) -> dict[str, Any]:
        """Same as ``GET /__twin/stats``."""
        return self._state.stats()

    def served(self) -> list[dict[str, str]]:
        """Same as ``GET /__twin/served``."""
        return self._state.served_params()

    def reset(self) -> None:
        """Same as ``POST /__twin/reset``."""
        self._state.reset()


# ------------------------------------------------------------ CLI


def add_twin_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the twin's options: where to listen and one option per fault."""
    defaults = TwinFaults()
    parser.add_argument("--host", default="127.0.0.1", help="interface to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=0, help="port to bind; 0 picks a free one")
    parser.add_argument(
        "--port-file", type=Path, default=None, help="write the bound port here when listening"
    )
    parser.add_argument("--error-rate", type=float, default=defaults.error_rate, help="share of 5xx answers")
    parser.add_argument(
        "--rate-limit-every", type=int, default=defaults.rate_limit_every, help="every Nth request gets 429"
    )
    parser.add_argument(
        "--retry-after", type=int, default=defaults.retry_after_s, help="Retry-After seconds on 429"
    )
    parser.add_argument(
        "--truncate-rate", type=float, default=defaults.truncate_rate, help="share of truncated 200 bodies"
    )
    parser.add_argument("--latency-ms", type=int, default=defaults.latency_ms, help="delay per request")
    parser.add_argument(
        "--bad-record-rate", type=float, default=defaults.bad_record_rate, help="share of bad records"
    )
    parser.add_argument(
        "--coordinates", choices=COORDINATE_SHAPES, default=defaults.coordinates, help="lat/lon payload shape"
    )
    parser.add_argument("--extra-fields", action="store_true", help="add unknown fields to records")
    parser.add_argument(
        "--pii-country-rate",
        type=float,
        default=defaults.pii_country_rate,
        help="share of records whose email is shifted into address.country (exercises the gate)",
    )
    parser.add_argument(
        "--hostile-rate",
        type=float,
        default=defaults.hostile_rate,
        help="share of hostile records: formula-like or invisible-character countries, entries that are not "
        "records, names with invalid UTF-8",
    )


def _faults_from_args(args: argparse.Namespace) -> TwinFaults:
    """TwinFaults from parsed CLI options."""
    return TwinFaults(
        error_rate=args.error_rate,
        rate_limit_every=args.rate_limit_every,
        retry_after_s=args.retry_after,
        truncate_rate=args.truncate_rate,
        latency_ms=args.latency_ms,
        bad_record_rate=args.bad_record_rate,
        coordinates=args.coordinates,
        extra_fields=args.extra_fields,
        pii_country_rate=args.pii_country_rate,
        hostile_rate=args.hostile_rate,
    )


def _write_port_file(path: Path, port: int) -> None:
    """Write the port atomically, so a poller never reads a half-written file."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(f"{port}\n", encoding="utf-8")
    os.replace(tmp, path)


@dataclass
class _StopFlag:
    """Set from a signal handler; a plain flag because locks are not safe inside signal handlers."""

    raised: bool = False
    signum: int = 0

    def __call__(self, signum: int, frame: FrameType | None) -> None:
        """Signal handler."""
        self.raised, self.signum = True, signum


@dataclass
class _SignalHandlers:
    """Installs SIGINT/SIGTERM handlers and restores the previous ones."""

    flag: _StopFlag
    previous: dict[int, Any] = field(default_factory=dict)

    def __enter__(self) -> _StopFlag:
        """Install."""
        for signum in (signal.SIGINT, signal.SIGTERM):
            self.previous[signum] = signal.signal(signum, self.flag)
        return self.flag

    def __exit__(self, *exc_info: object) -> None:
        """Restore."""
        for signum, handler in self.previous.items():
            signal.signal(signum, handler)


def serve_from_args(args: argparse.Namespace) -> int:
    """Serve in the foreground until SIGINT/SIGTERM; returns the process exit code."""
    try:
        faults = _faults_from_args(args)
    except ValueError as exc:
        print(f"faker twin: {exc}", file=sys.stderr, flush=True)
        return 2
    # Handlers first, so a SIGTERM during the pool warm-up still ends in a clean shutdown.
    with _SignalHandlers(_StopFlag()) as flag:
        twin = FakerTwin(args.host, args.port, faults)
        try:
            twin.start()
        except OSError as exc:
            print(f"faker twin: cannot listen on {args.host}:{args.port}: {exc}", file=sys.stderr, flush=True)
            return 1
        try:
            if args.port_file is not None:
                _write_port_file(Path(args.port_file), twin.port)
            print(f"faker twin listening on {twin.url}", flush=True)
            while not flag.raised:
                time.sleep(0.2)
        finally:
            twin.stop()
    return 0


def main(argv: list[str] | None = None) -> int:
    """``faker-twin`` / ``python -m faker_twin``: run the twin from the command line."""
    parser = argparse.ArgumentParser(
        description="Offline deterministic twin of the Faker /api/v2/persons API."
    )
    add_twin_arguments(parser)
    return serve_from_args(parser.parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())
