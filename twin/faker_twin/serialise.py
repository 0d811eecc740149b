"""Fast serialisation of a page straight to JSON bytes from pre-encoded pieces (the twin's hot path)."""

from __future__ import annotations

import functools
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date
from typing import Final, cast

import numpy as np
import orjson
from numpy.typing import NDArray

from faker_twin.constants import _FREE_MAIL_DOMAINS, _SECONDARY_SHARE, IMAGE_URL, ObjArray, _Stream
from faker_twin.pools import _POOLS_LOCK, _countries, _Pools, _pools_for
from faker_twin.records import (
    _birthday_days,
    _coordinate_arrays,
    _country_index,
    _email_domain_draws,
    _name_draws,
    _people_seed,
    _pick_index,
    _rng,
)

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
