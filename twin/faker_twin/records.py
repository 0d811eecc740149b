"""Deterministic records of a page: every field from its own RNG stream; bad and hostile records on demand."""

from __future__ import annotations

import hashlib
from datetime import date, timedelta
from typing import Any, cast

import numpy as np
from numpy.typing import NDArray

from faker_twin.constants import (
    _FORMULA_COUNTRIES,
    _FREE_MAIL_BOUNDS,
    _FREE_MAIL_DOMAINS,
    _FUTURE_START,
    _INVALID_BIRTHDAYS,
    _INVALID_UTF8,
    _INVISIBLE_MARKS,
    _LONG_MAX,
    _LONG_MIN,
    _NOT_RECORDS,
    _SECONDARY_SHARE,
    _SQL_INJECTIONS,
    BAD_RECORD_KINDS,
    COORDINATE_SHAPES,
    DEFAULT_BIRTHDAY_END,
    DEFAULT_BIRTHDAY_START,
    DEFAULT_LOCALE,
    HOSTILE_KINDS,
    IMAGE_URL,
    IndexArray,
    ObjArray,
    _Stream,
)
from faker_twin.pools import _countries, _Pools, _pools_for

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
