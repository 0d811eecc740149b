"""Tests for the offline Faker API twin: generator contract, determinism, faults over real HTTP, CLI."""

from __future__ import annotations

import argparse
import dataclasses
import json
import re
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import orjson
import pytest
from faker_twin import FakerTwin
from faker_twin import pools as twin_pools
from faker_twin import serialise as twin_serialise
from faker_twin import server as twin_server
from faker_twin.cli import add_twin_arguments
from faker_twin.constants import (
    BAD_RECORD_KINDS,
    DEFAULT_BIRTHDAY_END,
    DEFAULT_BIRTHDAY_START,
    HOSTILE_KINDS,
    MAX_QUANTITY,
)
from faker_twin.faults import TwinFaults
from faker_twin.pools import load_countries
from faker_twin.records import bad_record_kinds, generate_page, hostile_kinds

REPO_ROOT = Path(__file__).resolve().parents[2]
ENVELOPE_KEYS = ["status", "code", "locale", "seed", "total", "data"]
RECORD_KEYS = [
    "id",
    "firstname",
    "lastname",
    "email",
    "phone",
    "birthday",
    "gender",
    "address",
    "website",
    "image",
]
ADDRESS_KEYS = [
    "id",
    "street",
    "streetName",
    "buildingNumber",
    "city",
    "zipcode",
    "country",
    "country_code",
    "latitude",
    "longitude",
]
FREE_MAIL = {"gmail.com", "googlemail.com", "yahoo.com", "hotmail.com"}


@pytest.fixture(scope="module")
def twin() -> Iterator[FakerTwin]:
    """One running twin for the module; each test gets it with faults off and counters zeroed."""
    with FakerTwin() as running:
        yield running


@pytest.fixture
def client(twin: FakerTwin) -> Iterator[httpx.Client]:
    """Keep-alive client against a freshly reset twin."""
    twin.set_faults(TwinFaults())
    twin.reset()
    with httpx.Client(base_url=twin.url, timeout=10) as http:
        yield http


def persons(http: httpx.Client, **params: Any) -> httpx.Response:
    """GET /persons with the given query parameters."""
    return http.get("/persons", params=params)


def control_url(twin: FakerTwin, name: str) -> str:
    """URL of a /__twin/ control endpoint."""
    return f"http://127.0.0.1:{twin.port}/__twin/{name}"


# ------------------------------------------------------------ contract


def test_envelope_and_record_shape_match_the_real_api() -> None:
    page = generate_page(42, 5)

    assert list(page) == ENVELOPE_KEYS
    assert (page["status"], page["code"], page["locale"], page["seed"], page["total"]) == (
        "OK",
        200,
        "en_US",
        "42",
        5,
    )
    for record in page["data"]:
        assert list(record) == RECORD_KEYS
        assert list(record["address"]) == ADDRESS_KEYS
        assert record["address"]["id"] == 1
        assert record["image"] == "http://placeimg.com/640/480/people"


def test_record_values_are_well_formed() -> None:
    for record in generate_page(7, 1000)["data"]:
        address = record["address"]
        assert record["gender"] in {"male", "female"}
        assert re.fullmatch(r"\+1[2-9][0-9]{9}", record["phone"])
        assert re.fullmatch(r"[a-z0-9]+\.[a-z0-9]+[0-9]{4,6}@[A-Za-z0-9.-]+\.[a-z]+", record["email"])
        assert date.fromisoformat(record["birthday"])
        assert record["website"].startswith("http://")
        assert record["firstname"] and record["lastname"] and address["street"] and address["city"]
        assert address["street"].startswith(f"{address['buildingNumber']} {address['streetName']}")
        assert -90 <= address["latitude"] <= 90 and -180 <= address["longitude"] <= 180
        assert round(address["latitude"], 6) == address["latitude"]
        assert round(address["longitude"], 6) == address["longitude"]


def test_ids_restart_at_one_in_every_response(client: httpx.Client) -> None:
    for seed in (1, 2):
        data = persons(client, _quantity=7, _seed=seed).json()["data"]
        assert [record["id"] for record in data] == list(range(1, 8))


def test_default_quantity_and_random_seed_without_seed(client: httpx.Client) -> None:
    first, second = persons(client).json(), persons(client).json()

    assert first["total"] == len(first["data"]) == 10
    assert first["seed"].isdigit() and first["seed"] != second["seed"]
    assert first["data"] != second["data"]
    # The echoed seed reproduces the page.
    assert persons(client, _seed=first["seed"]).json()["data"] == first["data"]


@pytest.mark.parametrize("quantity", ["1001", "5000", "9" * 5000])
def test_quantity_is_capped_at_1000(client: httpx.Client, quantity: str) -> None:
    body = persons(client, _quantity=quantity, _seed=1).json()
    assert body["total"] == len(body["data"]) == MAX_QUANTITY


def test_quantity_with_leading_zeros(client: httpx.Client) -> None:
    assert persons(client, _quantity="0007").json()["total"] == 7


@pytest.mark.parametrize("quantity", ["0", "-3", "abc", "1.5", "1e3"])
def test_bad_quantity_is_a_400_json_error(client: httpx.Client, quantity: str) -> None:
    response = persons(client, _quantity=quantity)
    assert response.status_code == 400
    body = response.json()
    assert body["status"] == "ERROR" and body["code"] == 400


@pytest.mark.parametrize(
    "params",
    [
        {"_birthday_start": "1990-02-30"},
        {"_birthday_end": "31/12/1990"},
        {"_birthday_start": "yesterday"},
        {"_birthday_start": "2000-01-02", "_birthday_end": "2000-01-01"},
    ],
)
def test_bad_birthday_window_is_a_400(client: httpx.Client, params: dict[str, str]) -> None:
    response = persons(client, **params)
    assert response.status_code == 400
    assert response.json()["code"] == 400


def test_birthdays_are_uniform_within_the_window(client: httpx.Client) -> None:
    data = generate_page(3, 2000, birthday_start=date(1990, 1, 1), birthday_end=date(1990, 12, 31))["data"]
    months = Counter(record["birthday"][:7] for record in data)
    assert set(months) == {f"1990-{month:02d}" for month in range(1, 13)}
    assert min(months.values()) > 100

    params = {"_seed": 3, "_quantity": 200, "_birthday_start": "2000-01-01", "_birthday_end": "2000-01-02"}
    body = persons(client, **params).json()
    assert {record["birthday"] for record in body["data"]} == {"2000-01-01", "2000-01-02"}


# ------------------------------------------------------------ determinism


def test_same_parameters_give_byte_identical_data() -> None:
    kwargs: dict[str, Any] = {"locale": "de_DE", "bad_record_rate": 0.2, "extra_fields": True}
    assert orjson.dumps(generate_page(9, 300, **kwargs)) == orjson.dumps(generate_page(9, 300, **kwargs))


def test_same_seed_over_http_gives_identical_bytes_and_matches_generate_page(client: httpx.Client) -> None:
    first = persons(client, _seed=11, _quantity=50).content
    assert persons(client, _seed=11, _quantity=50).content == first
    assert orjson.loads(first)["data"] == generate_page(11, 50)["data"]


def test_different_seeds_give_different_people() -> None:
    emails_a = {record["email"] for record in generate_page(1, 500)["data"]}
    emails_b = {record["email"] for record in generate_page(2, 500)["data"]}
    assert not emails_a & emails_b


def test_a_bigger_page_extends_a_smaller_one() -> None:
    assert generate_page(5, 100)["data"][:10] == generate_page(5, 10)["data"]


def test_unknown_locale_uses_en_us_pools_but_echoes_the_locale(client: httpx.Client) -> None:
    body = persons(client, _seed=4, _quantity=5, _locale="xx_YY").json()
    assert body["locale"] == "xx_YY"
    assert body["data"] == generate_page(4, 5)["data"]


def test_known_locales_get_their_own_people() -> None:
    german = generate_page(4, 50, locale="de_DE")
    assert german["locale"] == "de_DE"
    assert german["data"] != generate_page(4, 50)["data"]
    assert all(record["email"].isascii() for record in generate_page(4, 50, locale="ja_JP")["data"])


@pytest.mark.parametrize("seed", ["abc", "-17", "1" * 5000])
def test_any_seed_text_is_echoed_and_deterministic(client: httpx.Client, seed: str) -> None:
    first = persons(client, _seed=seed, _quantity=3).json()
    assert first["seed"] == seed
    assert persons(client, _seed=seed, _quantity=3).json()["data"] == first["data"]


# ------------------------------------------------------------ payload variants


def test_flat_nested_and_mixed_coordinates() -> None:
    for record in generate_page(1, 6, coordinates="flat")["data"]:
        assert {"latitude", "longitude"} <= set(record["address"]) and "coordinates" not in record["address"]
    for record in generate_page(1, 6, coordinates="nested")["data"]:
        assert set(record["address"]["coordinates"]) == {"latitude", "longitude"}
        assert "latitude" not in record["address"]
    mixed = generate_page(1, 6, coordinates="mixed")["data"]
    assert ["coordinates" in record["address"] for record in mixed] == [False, True] * 3


def test_extra_fields_are_added() -> None:
    for record in generate_page(1, 20, extra_fields=True)["data"]:
        assert record["middlename"]
        assert re.fullmatch(r"[0-9]{3}-[0-9]{2}-[0-9]{4}", record["ssn"])
        assert record["address"]["county"].endswith(" County")


def is_iso_date(value: object) -> bool:
    """Whether a value is a real calendar date written as YYYY-MM-DD."""
    if not isinstance(value, str) or not re.fullmatch(r"[0-9]{4}-[0-9]{2}-[0-9]{2}", value):
        return False
    try:
        date.fromisoformat(value)
    except ValueError:
        return False
    return True


def is_bad(kind: str, record: dict[str, Any]) -> bool:
    """Whether a record shows the signature of a bad-record kind."""
    address: Any = record.get("address")
    if kind == "birthday_invalid":
        return not is_iso_date(record["birthday"])
    if kind == "birthday_future":
        return int(record["birthday"][:4]) >= 2100
    if kind == "email_no_at":
        return "@" not in record["email"]
    if kind == "address_missing":
        return address is None
    if kind == "country_null":
        return address is not None and address["country"] is None and len(address["country_code"]) == 2
    if kind == "long_strings":
        lengths = [
            len(record["firstname"]),
            len(record["lastname"]),
            len(address["street"]),
            len(address["city"]),
        ]
        countries = {name for name, _ in load_countries()}
        return all(5000 <= n <= 20000 for n in lengths) and address["country"] in countries
    if kind == "sql_injection":
        return record["lastname"] == address["country"] and any(m in address["country"] for m in ("'", '"'))
    raise AssertionError(kind)


def test_bad_records_follow_bad_record_kinds_and_cover_every_kind() -> None:
    clean = generate_page(3, 400)["data"]
    spoiled = generate_page(3, 400, bad_record_rate=0.3)["data"]
    kinds = bad_record_kinds(3, 400, 0.3)

    assert set(kinds.values()) == set(BAD_RECORD_KINDS)
    assert 80 <= len(kinds) <= 160
    for index, record in enumerate(spoiled):
        if index in kinds:
            assert is_bad(kinds[index], record), (kinds[index], index)
        else:
            assert record == clean[index]


def test_bad_record_rate_edges() -> None:
    assert bad_record_kinds(1, 100, 0.0) == {}
    assert sorted(bad_record_kinds(1, 100, 1.0)) == list(range(100))
    assert bad_record_kinds(1, 50, 0.5) == bad_record_kinds(1, 50, 0.5)


def is_hostile(kind: str, record: Any, clean: dict[str, Any]) -> bool:
    """Whether an entry shows the signature of a hostile kind, against the clean record it replaced."""
    if kind == "not_a_record":
        return not isinstance(record, dict)
    if kind == "invalid_utf8_name":
        return re.search(r"[\udc80-\udcff]", record["firstname"]) is not None
    country = record["address"]["country"]
    if kind == "formula_country":
        return country.lstrip("\t\r").startswith(("=", "+", "-", "@"))
    if kind == "invisible_country":
        stripped = "".join(c for c in country if c not in "\x00\u202e\u200b\ufeff\u2066\u2069\u200d")
        return stripped == clean["address"]["country"] != country
    raise AssertionError(kind)


def test_hostile_records_follow_hostile_kinds_cover_every_kind_and_keep_the_page_length() -> None:
    clean = generate_page(5, 400)["data"]
    spoiled = generate_page(5, 400, hostile_rate=0.2)["data"]
    kinds = hostile_kinds(5, 400, 0.2)

    assert set(kinds.values()) == set(HOSTILE_KINDS)
    assert 40 <= len(kinds) <= 120 and len(spoiled) == 400
    for index, record in enumerate(spoiled):
        if index in kinds:
            assert is_hostile(kinds[index], record, clean[index]), (kinds[index], index)
        else:
            assert record == clean[index]
    assert hostile_kinds(5, 400, 0.0) == {}
    assert generate_page(5, 400, hostile_rate=0.0) == generate_page(5, 400)


def test_hostile_bodies_carry_invalid_utf8_over_http(client: httpx.Client, twin: FakerTwin) -> None:
    twin.set_faults(TwinFaults(hostile_rate=0.2))
    body = persons(client, _seed=5, _quantity=400).content
    with pytest.raises(UnicodeDecodeError):
        body.decode("utf-8")
    expected = generate_page(5, 400, hostile_rate=0.2)["data"]
    served = json.loads(body.decode("utf-8", "surrogateescape"))["data"]
    assert served == expected  # the undecodable bytes are the generator's, byte for byte


def test_email_domains_have_a_realistic_mix() -> None:
    domains = Counter(
        record["email"].rsplit("@", 1)[1]
        for seed in range(100)
        for record in generate_page(seed, 1000)["data"]
    )
    total = sum(domains.values())
    free = {domain: domains[domain] for domain in FREE_MAIL}
    assert 0.25 <= (sum(free.values()) + domains["GMAIL.com"]) / total <= 0.35
    assert max(free, key=lambda domain: free[domain]) == "gmail.com"
    assert 0 < domains["GMAIL.com"] < 0.05 * domains["gmail.com"]
    assert len(domains) > 500


def test_people_are_unique_over_200k_persons() -> None:
    keys = {
        (r["firstname"], r["lastname"], r["email"], r["phone"], r["birthday"])
        for seed in range(200)
        for r in generate_page(seed, 1000)["data"]
    }
    assert len(keys) == 200_000


def test_countries_match_the_shipped_csv_with_a_german_cluster() -> None:
    rows = load_countries()
    pairs = set(rows)
    assert len(rows) >= 240 and len({code for _, code in rows}) == len(rows)
    assert ("Germany", "DE") in pairs
    assert all(re.fullmatch(r"[A-Z]{2}", code) for _, code in rows)

    records = [record for seed in range(100) for record in generate_page(seed, 1000)["data"]]
    drawn = Counter((r["address"]["country"], r["address"]["country_code"]) for r in records)
    assert set(drawn) <= pairs
    assert 0.05 <= drawn["Germany", "DE"] / len(records) <= 0.08
    assert len(drawn) > 200


# ------------------------------------------------------------ fast serialisation (common case over HTTP)

BIRTHDAY_WINDOWS = [
    (DEFAULT_BIRTHDAY_START, DEFAULT_BIRTHDAY_END),
    (date(1990, 1, 1), date(1990, 12, 31)),
    (date(1, 1, 1), date(9999, 12, 31)),
    (date(1969, 12, 31), date(1970, 1, 1)),
    (date(2000, 2, 29), date(2000, 2, 29)),
]


def expected_body(seed: int, seed_text: str, quantity: int, locale: str, start: date, end: date) -> bytes:
    """What the handler sent before the fast writer: orjson of the dict page with the echoed seed text."""
    return orjson.dumps({**generate_page(seed, quantity, locale, start, end), "seed": seed_text})


@pytest.mark.parametrize("locale", ["en_US", "de_DE", "ja_JP", "fr_FR", "xx_YY"])
def test_fast_body_is_byte_identical_to_orjson_of_generate_page(locale: str) -> None:
    for seed in range(-20, 180):
        start, end = BIRTHDAY_WINDOWS[seed % len(BIRTHDAY_WINDOWS)]
        seed_text = str(seed) if seed % 7 else f'odd "seed" \\ ü\n{seed}'
        for quantity in (1, 23, 1000) if seed % 5 == 0 else (1, 23):
            expected = expected_body(seed, seed_text, quantity, locale, start, end)
            assert twin_serialise._persons_body(seed, seed_text, quantity, locale, start, end) == expected, (
                seed,
                quantity,
            )


def test_fast_body_of_an_empty_page_and_a_huge_seed() -> None:
    start, end = DEFAULT_BIRTHDAY_START, DEFAULT_BIRTHDAY_END
    for seed, quantity in ((5, 0), (2**80, 3), (-(2**80), 3)):
        body = twin_serialise._persons_body(seed, "s", quantity, "en_US", start, end)
        assert body == expected_body(seed, "s", quantity, "en_US", start, end)


def test_fast_body_escapes_awkward_pool_values(monkeypatch: pytest.MonkeyPatch) -> None:
    awkward = ['Ann "Nan" O\'Neil', "back\\slash", "tab\tnew\nline\x00\x1f", "Zoë 𝒜 李", "%s %d {}", "", "/"]
    pools = twin_pools._pools_for("en_US")

    def cycled(size: int) -> np.ndarray[Any, np.dtype[np.object_]]:
        return twin_pools._objects([awkward[index % len(awkward)] for index in range(size)])

    strange = dataclasses.replace(
        pools,
        first_male=cycled(5),
        first_male_slug=cycled(5),
        first_female=cycled(9),
        first_female_slug=cycled(9),
        last=cycled(11),
        last_slug=cycled(11),
        street_names=cycled(13),
        cities=cycled(3),
        postcodes=cycled(4),
        buildings=cycled(6),
        secondaries=cycled(8),
        company_domains=cycled(10),
    )
    countries = twin_pools._countries()
    strange_countries = dataclasses.replace(
        countries, names=cycled(len(countries.names)), codes=cycled(len(countries.codes))
    )
    monkeypatch.setattr(twin_pools, "_POOLS", {"en_US": strange})
    monkeypatch.setattr(twin_serialise, "_JSON_POOLS", {})
    monkeypatch.setattr(twin_pools, "_COUNTRIES", [strange_countries])

    for seed in range(20):
        body = twin_serialise._persons_body(
            seed, str(seed), 200, "en_US", DEFAULT_BIRTHDAY_START, DEFAULT_BIRTHDAY_END
        )
        assert body == expected_body(
            seed, str(seed), 200, "en_US", DEFAULT_BIRTHDAY_START, DEFAULT_BIRTHDAY_END
        )
    assert b"\\u0000" in body and "Zoë 𝒜 李".encode() in body


def test_float_pieces_match_orjson_for_edge_values() -> None:
    values = [-0.0, 0.0, 1e-06, -5e-05, 6.8e-05, 0.0001, -0.000123, 90.0, -180.0, 12.5, 179.999999, -1e-06]
    assert twin_serialise._float_pieces(np.array(values)) == [orjson.dumps(value) for value in values]
    with_key = twin_serialise._float_pieces(np.array(values), after=b',"longitude":')
    assert with_key == [orjson.dumps(value) + b',"longitude":' for value in values]


@pytest.mark.parametrize(
    "params",
    [
        {"_seed": "11", "_quantity": "50"},
        {"_seed": "-17", "_quantity": "1000", "_locale": "ja_JP"},
        {"_seed": 'a"b\\c ü', "_quantity": "7", "_locale": "de_DE", "_birthday_start": "1990-01-01"},
        {"_seed": "3", "_locale": "xx_YY", "_birthday_start": "2000-01-01", "_birthday_end": "2000-01-02"},
    ],
)
def test_http_body_is_byte_identical_to_orjson_of_generate_page(
    client: httpx.Client, twin: FakerTwin, params: dict[str, str]
) -> None:
    query = twin_server._parse_persons_query(params)
    args = (query.seed, query.quantity, query.locale, query.birthday_start, query.birthday_end)
    assert persons(client, **params).content == orjson.dumps(
        {**generate_page(*args), "seed": query.seed_text}
    )

    # Record-altering faults take the dict path; its bytes are what the handler always sent.
    twin.set_faults(TwinFaults(bad_record_rate=0.5, extra_fields=True))
    page = generate_page(*args, bad_record_rate=0.5, extra_fields=True)
    assert persons(client, **params).content == orjson.dumps({**page, "seed": query.seed_text})


def test_common_case_skips_the_dict_path(
    client: httpx.Client, twin: FakerTwin, monkeypatch: pytest.MonkeyPatch
) -> None:
    def fail(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("unexpected path")

    monkeypatch.setattr(twin_server, "generate_page", fail)
    assert persons(client, _seed=1, _quantity=10).status_code == 200
    twin.set_faults(TwinFaults(coordinates="nested"))
    assert persons(client, _seed=1, _quantity=10).status_code == 500


# ------------------------------------------------------------ faults over HTTP


def test_error_rate_answers_5xx(client: httpx.Client, twin: FakerTwin) -> None:
    twin.set_faults(TwinFaults(error_rate=1.0))
    statuses = [persons(client, _seed=1, _quantity=2).status_code for _ in range(12)]
    assert set(statuses) <= {500, 502, 503} and len(set(statuses)) > 1

    twin.set_faults(TwinFaults(error_rate=0.3))
    twin.reset()
    mixed = Counter(persons(client, _seed=1, _quantity=2).status_code for _ in range(60))
    assert 5 <= sum(mixed[s] for s in (500, 502, 503)) <= 35 and mixed[200] >= 25


def test_error_decisions_are_deterministic_per_request_number(client: httpx.Client, twin: FakerTwin) -> None:
    twin.set_faults(TwinFaults(error_rate=0.5))
    first = [persons(client, _seed=1, _quantity=1).status_code for _ in range(20)]
    twin.reset()
    assert [persons(client, _seed=1, _quantity=1).status_code for _ in range(20)] == first


def test_rate_limit_every_nth_request_with_retry_after(client: httpx.Client, twin: FakerTwin) -> None:
    twin.set_faults(TwinFaults(rate_limit_every=3, retry_after_s=2))
    responses = [persons(client, _seed=1, _quantity=1) for _ in range(9)]

    assert [r.status_code for r in responses] == [200, 200, 429] * 3
    assert all(r.headers["Retry-After"] == "2" for r in responses if r.status_code == 429)


def test_truncated_body_is_malformed_json_with_matching_length(client: httpx.Client, twin: FakerTwin) -> None:
    full = persons(client, _seed=8, _quantity=20).content
    twin.set_faults(TwinFaults(truncate_rate=1.0))
    response = persons(client, _seed=8, _quantity=20)

    assert response.status_code == 200
    assert int(response.headers["Content-Length"]) == len(response.content) < len(full)
    assert full.startswith(response.content)
    with pytest.raises(orjson.JSONDecodeError):
        orjson.loads(response.content)
    # The connection survives: the next request on the same keep-alive client works.
    twin.set_faults(TwinFaults())
    assert persons(client, _seed=8, _quantity=20).content == full


def test_latency_is_added(client: httpx.Client, twin: FakerTwin) -> None:
    twin.set_faults(TwinFaults(latency_ms=150))
    started = time.perf_counter()
    assert persons(client, _quantity=1).status_code == 200
    assert time.perf_counter() - started >= 0.15


def test_bad_records_and_shapes_over_http(client: httpx.Client, twin: FakerTwin) -> None:
    twin.set_faults(TwinFaults(bad_record_rate=0.5, coordinates="nested", extra_fields=True))
    body = persons(client, _seed=21, _quantity=100).json()
    expected = generate_page(21, 100, bad_record_rate=0.5, coordinates="nested", extra_fields=True)
    assert body["data"] == expected["data"]


def test_stats_and_served_log(client: httpx.Client, twin: FakerTwin) -> None:
    persons(client, _seed=1, _quantity=3)
    persons(client, _seed=2, _quantity=4, _locale="de_DE")
    persons(client, _quantity="nope")
    client.get("/unknown")

    stats = client.get(control_url(twin, "stats")).json()
    assert stats == {
        "requests": 4,
        "persons_requests": 3,
        "by_status": {"200": 2, "400": 1, "404": 1},
        "persons_served": 7,
    }
    served = client.get(control_url(twin, "served")).json()
    assert served == [{"_seed": "1", "_quantity": "3"}, {"_seed": "2", "_quantity": "4", "_locale": "de_DE"}]
    assert twin.stats() == stats and twin.served() == served

    assert client.post(control_url(twin, "reset")).status_code == 200
    assert twin.stats() == {"requests": 0, "persons_requests": 0, "by_status": {}, "persons_served": 0}
    assert twin.served() == []


def test_truncated_pages_are_logged_as_served(client: httpx.Client, twin: FakerTwin) -> None:
    twin.set_faults(TwinFaults(truncate_rate=1.0, rate_limit_every=2))
    persons(client, _seed=1, _quantity=3)
    persons(client, _seed=2, _quantity=3)
    assert twin.served() == [{"_seed": "1", "_quantity": "3"}]
    assert twin.stats()["by_status"] == {"200": 1, "429": 1}


def test_faults_can_be_switched_at_runtime_over_http(client: httpx.Client, twin: FakerTwin) -> None:
    response = client.post(control_url(twin, "faults"), json={"error_rate": 1, "latency_ms": 0})
    assert response.status_code == 200
    assert response.json() == {**TwinFaults().to_dict(), "error_rate": 1.0}
    assert twin.faults == TwinFaults(error_rate=1.0)
    assert persons(client, _quantity=1).status_code >= 500

    assert client.post(control_url(twin, "faults"), json={}).json() == TwinFaults().to_dict()
    assert persons(client, _quantity=1).status_code == 200
    assert client.get(control_url(twin, "faults")).json() == TwinFaults().to_dict()


@pytest.mark.parametrize(
    "body", [b'{"nope": 1}', b'{"error_rate": 2}', b'{"coordinates": "round"}', b"[1]", b"not json"]
)
def test_invalid_fault_posts_are_rejected(client: httpx.Client, twin: FakerTwin, body: bytes) -> None:
    response = client.post(control_url(twin, "faults"), content=body)
    assert response.status_code == 400
    assert response.json()["status"] == "ERROR"
    assert twin.faults == TwinFaults()


def test_concurrent_requests_are_all_counted(twin: FakerTwin) -> None:
    twin.set_faults(TwinFaults())
    twin.reset()
    statuses: list[int] = []

    def fetch(seed: int) -> None:
        with httpx.Client(base_url=twin.url, timeout=10) as http:
            statuses.extend(persons(http, _seed=seed, _quantity=50).status_code for _ in range(5))

    threads = [threading.Thread(target=fetch, args=(seed,)) for seed in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert statuses == [200] * 40
    assert twin.stats()["persons_served"] == 40 * 50


# ------------------------------------------------------------ API, lifecycle, CLI


def test_twin_faults_from_dict_defaults_and_validation() -> None:
    assert TwinFaults.from_dict({}) == TwinFaults()
    assert TwinFaults.from_dict({"rate_limit_every": 5, "coordinates": "mixed"}) == TwinFaults(
        rate_limit_every=5, coordinates="mixed"
    )
    assert TwinFaults.from_dict({"hostile_rate": 0.1}) == TwinFaults(hostile_rate=0.1)
    for bad in ({"error_rate": -0.1}, {"rate_limit_every": 1.5}, {"extra_fields": 1}, {"unknown": 0},
                {"hostile_rate": 1.5}):  # fmt: skip
        with pytest.raises(ValueError):
            TwinFaults.from_dict(bad)


def test_stop_closes_keep_alive_connections_and_the_port() -> None:
    running = FakerTwin().start()
    with httpx.Client(base_url=running.url, timeout=5) as http:
        assert persons(http, _quantity=1).status_code == 200
        running.stop()
        with pytest.raises(httpx.TransportError):
            persons(http, _quantity=1)
    running.stop()  # idempotent
    assert running.url.endswith(f":{running.port}/api/v2")


def test_add_twin_arguments_defaults_and_options() -> None:
    parser = argparse.ArgumentParser()
    add_twin_arguments(parser)
    defaults = parser.parse_args([])
    assert (defaults.host, defaults.port, defaults.port_file) == ("127.0.0.1", 0, None)
    options = {
        "--error-rate": "0.1",
        "--rate-limit-every": "4",
        "--retry-after": "3",
        "--truncate-rate": "0.2",
    }
    options |= {"--latency-ms": "5", "--bad-record-rate": "0.05", "--coordinates": "mixed"}
    options |= {"--hostile-rate": "0.02"}
    args = parser.parse_args([*(part for pair in options.items() for part in pair), "--extra-fields"])
    assert args.hostile_rate == 0.02
    assert (args.error_rate, args.rate_limit_every, args.retry_after, args.truncate_rate) == (0.1, 4, 3, 0.2)
    assert (args.latency_ms, args.bad_record_rate, args.coordinates, args.extra_fields) == (
        5,
        0.05,
        "mixed",
        True,
    )


def test_cli_serves_until_sigterm(tmp_path: Path) -> None:
    port_file = tmp_path / "twin.port"
    command = [
        sys.executable,
        "-m",
        "faker_twin.cli",
        "--port-file",
        str(port_file),
        "--rate-limit-every",
        "2",
    ]
    process = subprocess.Popen(command, cwd=REPO_ROOT, stdout=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 20
        while not port_file.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        port = int(port_file.read_text())
        with httpx.Client(base_url=f"http://127.0.0.1:{port}/api/v2", timeout=5) as http:
            assert [persons(http, _quantity=1).status_code for _ in range(2)] == [200, 429]
    finally:
        process.send_signal(signal.SIGTERM)
        stdout, _ = process.communicate(timeout=10)
    assert process.returncode == 0
    assert stdout.strip() == f"faker twin listening on http://127.0.0.1:{port}/api/v2"
