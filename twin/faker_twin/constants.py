"""The contract the twin speaks and the shape of its data: limits, defaults, record kinds, RNG streams."""

from __future__ import annotations

import logging
from datetime import date
from enum import IntEnum
from typing import Any, Final, Literal

import numpy as np
from numpy.typing import NDArray

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
