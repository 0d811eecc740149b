"""Anonymisation with fixed vectors: keys, age bins, birthdays, domains, quarantine, policy, screen."""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from datetime import date
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from flows.anonymise.policy import COUNTRY_CODE_PATTERN, COUNTRY_NAME_PATTERN
from flows.anonymise.transform import (
    AGE_GROUPS,
    COLUMN_POLICY,
    EMAIL_LIKE,
    KNOWN_GENDERS,
    PERSONS_SCHEMA,
    PHONE_LIKE,
    REDACTED_EMAIL,
    REDACTED_PHONE,
    Treatment,
    age_group,
    age_group_bounds,
    age_groups,
    ages_at,
    anonymise_batch,
    clean_text,
    email_domains,
    malformed,
    parse_birthdays,
    person_keys,
    privacy_screen,
)
from flows.plan import PageRequest
from flows.rawdata.records import RAW_SCHEMA, flatten_page

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
REFERENCE = date(2026, 11, 26)
IDENTITY = ["firstname", "lastname", "email", "phone", "birthday"]


def identity_table(rows: list[list[str | None]]) -> pa.Table:
    return pa.table(
        {name: pa.array([row[i] for row in rows], pa.string()) for i, name in enumerate(IDENTITY)}
    )


def raw_table(records: list[dict]) -> pa.Table:
    envelope = {"data": records}
    batch, _ = flatten_page(envelope, PageRequest(number=0, seed=42, quantity=len(records)))
    return pa.Table.from_batches([batch], schema=RAW_SCHEMA)


def person(**overrides) -> dict:
    record = {
        "firstname": "Ada",
        "lastname": "Lovelace",
        "email": "ada.lovelace@Gmail.com",
        "phone": "+441234567890",
        "birthday": "1960-12-10",
        "gender": "female",
        "address": {"street": "1 Analytical Row", "country": "Germany", "country_code": "de"},
    }
    record.update(overrides)
    return record


class TestPersonKey:
    def test_fixed_vector(self) -> None:
        keys = person_keys(
            identity_table([["Brown", "Schroeder", "emilie24@fahey.com", "+18725574706", "1939-03-20"]]),
            b"test-secret",
        ).to_pylist()
        assert keys == ["20af250d8108a9757f666aad09fff5d2643eb77e195a9bdd41e6dd6289771a82"]

    def test_is_hmac_sha256_of_the_canonical_identity(self) -> None:
        canonical = "\x1f".join(["brown", "schroeder", "emilie24@fahey.com", "+18725574706", "1939-03-20"])
        expected = hmac.new(b"test-secret", canonical.encode(), hashlib.sha256).hexdigest()
        keys = person_keys(
            identity_table([["Brown", "Schroeder", "emilie24@fahey.com", "+18725574706", "1939-03-20"]]),
            b"test-secret",
        ).to_pylist()
        assert keys == [expected]

    def test_normalisation_case_whitespace_and_phone_punctuation(self) -> None:
        keys = person_keys(
            identity_table(
                [
                    ["Brown", "Schroeder", "emilie24@fahey.com", "+18725574706", "1939-03-20"],
                    ["  BROWN ", "schroeder", "Emilie24@Fahey.com ", "+1 (872) 557-4706", " 1939-03-20"],
                ]
            ),
            b"test-secret",
        ).to_pylist()
        assert keys[0] == keys[1]

    def test_missing_fields_have_a_fixed_vector_and_differ_from_empty(self) -> None:
        keys = person_keys(
            identity_table([[None, "x", None, None, None], ["", "x", "", "", ""]]), b"test-secret"
        ).to_pylist()
        assert keys[0] == "b551e3d7eae2ff636b11f5c327dafedf622e34aee164eaac3d044337834457c5"
        assert keys[0] != keys[1]

    @pytest.mark.parametrize("secret", [b"k", b"x" * 64, b"y" * 65, "sch\u00fcssel-\U0001f511".encode()])
    def test_matches_the_hmac_module_for_any_key_and_text(self, secret: bytes) -> None:
        rows = [
            ["J\u00f6rg", "M\u00fcller", "j@x.de", "+49 (30) 1", "1990-01-01"],
            ["\u5f20", "\u4f1f", None, "", "2000-02-29"],
            ["a" * 5000, "'; drop table t; --", "x@y.z", "1", "bad"],
        ]
        keys = person_keys(identity_table(rows), secret).to_pylist()
        for row, key in zip(rows, keys, strict=True):
            parts = ["\x00" if v is None else v.strip().lower() for v in row]
            phone = row[3]
            parts[3] = "\x00" if phone is None else "".join(c for c in phone if c.isdigit() or c == "+")
            canonical = "\x1f".join(parts).encode()
            assert key == hmac.new(secret, canonical, hashlib.sha256).hexdigest()

    def test_depends_on_the_secret(self) -> None:
        table = identity_table([["Ada", "Lovelace", "ada@x.org", "+1", "1815-12-10"]])
        assert person_keys(table, b"one").to_pylist() != person_keys(table, b"two").to_pylist()
        with pytest.raises(ValueError, match="secret"):
            person_keys(table, b"")


class TestAgeGroups:
    @pytest.mark.parametrize(
        ("age", "label"),
        [
            (0, "[01-10]"),
            (1, "[01-10]"),
            (10, "[01-10]"),
            (11, "[11-20]"),
            (20, "[11-20]"),
            (60, "[51-60]"),
            (61, "[61-70]"),
            (99, "[91-100]"),
            (100, "[91-100]"),
            (101, "[101-110]"),
            (130, "[121-130]"),
        ],
    )
    def test_bins(self, age: int, label: str) -> None:
        assert age_group(age) == label
        assert age_groups(np.array([age]))[0] == label

    @pytest.mark.parametrize("age", [-1, 131])
    def test_outside_the_bins(self, age: int) -> None:
        with pytest.raises(ValueError):
            age_group(age)

    def test_thirteen_bins_and_their_bounds(self) -> None:
        assert len(AGE_GROUPS) == 13
        assert age_group_bounds("[01-10]") == (0, 10)
        assert age_group_bounds("[61-70]") == (61, 70)
        assert age_group_bounds("[121-130]") == (121, 130)


class TestBirthdays:
    def test_strict_iso_dates(self) -> None:
        values = pa.array(
            [
                "1990-02-03",
                " 1990-02-03 ",
                "1990-2-3",
                "1990-02-30",
                "2001-02-29",
                "2000-02-29",
                None,
                "",
                "31/12/1990",
                "1990-02-03T00:00:00",
                "0000-01-01",
                "1990-13-01",
            ],
            pa.string(),
        )
        valid, year, month, day = parse_birthdays(values)
        assert valid.tolist() == [
            True,
            True,
            False,
            False,
            False,
            True,
            False,
            False,
            False,
            False,
            False,
            False,
        ]
        assert (year[0], month[0], day[0]) == (1990, 2, 3)

    def test_ages_at_the_reference_date(self) -> None:
        year, month, day = (
            np.array([2000, 2000, 2000, 2004]),
            np.array([11, 11, 11, 2]),
            np.array([25, 26, 27, 29]),
        )
        assert ages_at(year, month, day, REFERENCE).tolist() == [26, 26, 25, 22]
        # 29 February counts from 1 March in a common year
        assert ages_at(np.array([2004]), np.array([2]), np.array([29]), date(2005, 2, 28)).tolist() == [0]
        assert ages_at(np.array([2004]), np.array([2]), np.array([29]), date(2005, 3, 1)).tolist() == [1]


def test_email_domains() -> None:
    domain, valid = email_domains(
        pa.array(
            ["a@Gmail.COM", " b@googlemail.com ", "nodomain", "x@", "a@b@c.de", None, "y@localhost"],
            pa.string(),
        )
    )
    assert domain.to_pylist() == ["gmail.com", "googlemail.com", None, None, "c.de", None, "localhost"]
    assert valid.tolist() == [True, True, False, False, True, False, False]


class TestAnonymiseBatch:
    def test_a_clean_record(self) -> None:
        batch = anonymise_batch(raw_table([person()]), b"k", REFERENCE)
        assert batch.persons.schema == PERSONS_SCHEMA
        row = batch.persons.to_pylist()[0]
        assert row["gender"] == "female"
        assert row["age_group"] == "[61-70]"  # 65 at 2026-11-26
        assert row["email_domain"] == "gmail.com"
        assert row["country_code"] == "DE"
        assert row["age_reference_date"] == REFERENCE
        assert batch.quarantine.num_rows == 0

    @pytest.mark.parametrize(
        ("overrides", "reason"),
        [
            ({"birthday": "1990-02-30"}, "birthday_unparseable"),
            ({"birthday": None}, "birthday_unparseable"),
            ({"birthday": 19900101}, "birthday_unparseable"),
            ({"birthday": "2100-01-01"}, "birthday_in_future"),
            ({"birthday": "2026-11-27"}, "birthday_in_future"),
            ({"birthday": "1890-01-01"}, "age_out_of_range"),
            ({"email": "ada.lovelacegmail.com"}, "email_without_domain"),
            ({"email": "ada@"}, "email_without_domain"),
            ({"email": None}, "email_without_domain"),
            ({"email": "ada@localhost"}, "email_domain_invalid"),
            ({"address": None}, "address_missing"),
            ({"address": "Main Street 1"}, "address_missing"),
            ({"address": {"country": None, "country_code": "DE"}}, "country_missing"),
            ({"address": {"country": "  ", "country_code": "DE"}}, "country_missing"),
            ({"address": {"country": "Germany"}}, "country_code_missing"),
        ],
    )
    def test_quarantine_reasons(self, overrides: dict, reason: str) -> None:
        batch = anonymise_batch(raw_table([person(), person(**overrides)]), b"k", REFERENCE)
        assert batch.persons.num_rows == 1
        assert batch.quarantine.to_pylist()[0]["quarantine_reason"] == reason
        assert batch.quarantine.to_pylist()[0]["record_index"] == 1
        assert batch.reasons == {reason: 1}

    def test_born_on_the_reference_date_is_age_zero(self) -> None:
        batch = anonymise_batch(raw_table([person(birthday="2026-11-26")]), b"k", REFERENCE)
        assert batch.persons["age_group"].to_pylist() == ["[01-10]"]

    def test_non_record_items_are_quarantined(self) -> None:
        envelope = {"data": [person(), None, "text"]}
        batch_rows, _ = flatten_page(envelope, PageRequest(0, 1, 3))
        batch = anonymise_batch(pa.Table.from_batches([batch_rows]), b"k", REFERENCE)
        assert batch.reasons == {"not_a_record": 2}

    def test_duplicates_within_a_batch_are_kept_once_and_counted(self) -> None:
        batch = anonymise_batch(
            raw_table([person(), person(firstname=" ADA "), person(lastname="Byron")]), b"k", REFERENCE
        )
        assert batch.persons.num_rows == 2
        assert batch.duplicates == 1
        assert batch.extracted == 3

    def test_unknown_gender_passes_to_the_gate(self) -> None:
        batch = anonymise_batch(raw_table([person(gender=" Unknown ")]), b"k", REFERENCE)
        assert batch.persons["gender"].to_pylist() == ["unknown"]

    def test_injection_strings_are_keyed_or_quarantined_never_published(self) -> None:
        injection = "Robert'); DROP TABLE staging.persons;--"
        records = [
            person(lastname=injection),  # inside the key only
            person(firstname="Other", address={"country": injection, "country_code": "XX"}),
        ]
        batch = anonymise_batch(raw_table(records), b"k", REFERENCE)
        assert batch.persons.num_rows == 1 and batch.persons["country"].to_pylist() == ["Germany"]
        assert batch.reasons == {"country_invalid": 1}


class TestPrivacyScreen:
    def test_emails_and_phones_in_kept_columns_never_land(self) -> None:
        records = [
            person(address={"country": "ada@example.org", "country_code": "DE"}),
            person(address={"country": "+49 30 1234567", "country_code": "DE"}, firstname="Other"),
            person(firstname="Third"),
        ]
        batch = anonymise_batch(raw_table(records), b"k", REFERENCE)
        assert batch.persons["country"].to_pylist() == [REDACTED_EMAIL, REDACTED_PHONE, "Germany"]
        assert batch.redactions == {"country:email": 1, "country:phone": 1}
        text = json.dumps(batch.persons.to_pylist(), default=str)
        assert "ada@example.org" not in text and "1234567" not in text

    def test_clean_tables_are_unchanged(self) -> None:
        batch = anonymise_batch(raw_table([person()]), b"k", REFERENCE)
        screened, redactions = privacy_screen(batch.persons)
        assert screened.equals(batch.persons) and not redactions


class TestColumnPolicy:
    def test_every_payload_field_has_a_treatment(self) -> None:
        nested = json.loads((FIXTURES / "person_v1_nested_coordinates.json").read_text())
        flat = json.loads((FIXTURES / "persons_v2_envelope.json").read_text())["data"][0]
        fields = set()
        for record in (nested, flat):
            fields |= {key for key in record if key != "address"} | {
                f"address.{key}" for key in record["address"]
            }
        assert fields <= set(COLUMN_POLICY)

    def test_no_removed_field_is_an_output_column(self) -> None:
        output = set(PERSONS_SCHEMA.names)
        for source, (treatment, _) in COLUMN_POLICY.items():
            name = source.split(".")[-1]
            if treatment in {Treatment.DROP, Treatment.PSEUDONYMISE}:
                assert name not in output, source
        assert {"firstname", "lastname", "phone", "street", "zipcode", "latitude", "longitude"}.isdisjoint(
            output
        )

    def test_both_payload_shapes_anonymise_the_same_way(self) -> None:
        nested = json.loads((FIXTURES / "person_v1_nested_coordinates.json").read_text())
        flat = json.loads((FIXTURES / "persons_v2_envelope.json").read_text())["data"]
        batch = anonymise_batch(raw_table([nested, *flat]), b"k", REFERENCE)
        assert batch.persons.num_rows == 3
        assert batch.persons["country_code"].to_pylist() == ["BN", "KP", "SO"]
        assert batch.persons["age_group"].to_pylist() == ["[121-130]", "[81-90]", "[11-20]"]

    def test_the_suite_admits_exactly_the_policy(self) -> None:
        suite = json.loads(
            (Path(__file__).resolve().parents[2] / "expectations" / "persons_batch.json").read_text()
        )
        by_name = {item["meta"]["name"]: item["kwargs"] for item in suite["expectations"]}
        assert by_name["columns_are_exactly_the_policy_columns"]["column_set"] == PERSONS_SCHEMA.names
        assert by_name["age_group_within_bins"]["value_set"] == list(AGE_GROUPS)
        assert by_name["gender_in_known_set"]["value_set"] == list(KNOWN_GENDERS)
        email = EMAIL_LIKE + "|" + re.escape(REDACTED_EMAIL)
        phone = PHONE_LIKE + "|" + re.escape(REDACTED_PHONE)
        for column in ("gender", "email_domain", "country", "country_code", "person_key"):
            assert by_name[f"{column}_holds_no_email_address"]["regex"] == email
            assert by_name[f"{column}_holds_no_phone_number"]["regex"] == phone


class TestPageParsing:
    """The columnar and the exact parsing paths must agree on every input."""

    PAGE = PageRequest(number=3, seed=77, quantity=0)

    @pytest.mark.parametrize(
        "records",
        [
            [person(), person(address=None), person(gender=None)],
            [person(birthday=19900101)],  # a number where text belongs: exact path
            [person(address="Main Street 1")],  # not an object: exact path
            [None, person()],
            ["text", person()],
            [person(ssn="123-45-6789", address={"country": "Germany", "country_code": "DE", "county": "X"})],
            [],
        ],
    )
    def test_both_paths_agree(self, records: list) -> None:
        from flows.rawdata.records import flatten_page, parse_page

        body = json.dumps({"status": "OK", "total": len(records), "data": records}).encode()
        parsed, unknown = parse_page(body, self.PAGE)
        exact, exact_unknown = flatten_page(json.loads(body), self.PAGE)
        assert parsed.to_pylist() == exact.to_pylist()
        assert unknown == exact_unknown

    def test_fixture_shapes_parse_columnar(self) -> None:
        from flows.rawdata.records import arrow_page

        envelope = json.loads((FIXTURES / "persons_v2_envelope.json").read_text())
        envelope["data"].append(json.loads((FIXTURES / "person_v1_nested_coordinates.json").read_text()))
        envelope["total"] = 3
        parsed = arrow_page(json.dumps(envelope).encode(), self.PAGE)
        assert parsed is not None
        assert parsed[0].column("country_code").to_pylist() == ["KP", "SO", "BN"]

    @pytest.mark.parametrize(
        "body",
        [
            b'{"total": 2, "data": [{"firstname": "Zebedee"}]}',
            b'{"data": [{"firstname": "Zeb',
            b"[]",
            b'{"x": 1}',
        ],
    )
    def test_malformed_pages_are_refused_without_their_content(self, body: bytes) -> None:
        from flows.rawdata.client import MalformedPageError
        from flows.rawdata.records import parse_page

        with pytest.raises(MalformedPageError) as refused:
            parse_page(body, self.PAGE)
        assert "Zeb" not in str(refused.value)


class TestHostileText:
    """Text from the source is cleaned before it is keyed or published; what still is not a country (a
    formula, say) is quarantined; entries without identity are quarantined one by one."""

    def test_invisible_characters_go_and_text_is_nfc_and_trimmed(self) -> None:
        values = [
            "Germany\x00",
            "Deutschland\u202e",
            "\u200bGermany ",
            "\ufeffFrance",
            "\u2066Japan\u2069",
            "Ger\u200dmany",
            "Curac\u0327ao",  # decomposed (NFD) cedilla
            "Germany",
            None,
            " Chad ",
        ]
        text, changed = clean_text(pa.chunked_array([values[:4], values[4:]], pa.string()))
        assert text.to_pylist() == [
            "Germany",
            "Deutschland",
            "Germany",
            "France",
            "Japan",
            "Germany",
            "Cura\u00e7ao",
            "Germany",
            None,
            "Chad",
        ]
        assert changed == 7  # trimming alone is not counted

    def test_a_slice_is_cleaned_by_its_own_values(self) -> None:
        column = pa.array(["Germany\x00", "Chad", "Mali\u200b", "Peru"], pa.string()).slice(1, 2)
        text, changed = clean_text(column)
        assert (text.to_pylist(), changed) == (["Chad", "Mali"], 1)

    def test_one_country_stays_one_country(self) -> None:
        countries = ("Germany", "Germany\x00", "\u202eGermany", "Germany")
        records = [
            person(firstname=name, address={"country": country, "country_code": "de"})
            for name, country in zip("ABCD", countries, strict=True)
        ]
        batch = anonymise_batch(raw_table(records), b"k", REFERENCE)
        assert batch.persons["country"].to_pylist() == ["Germany"] * 4
        assert batch.cleaned == {"country": 2}

    def test_the_key_is_derived_after_cleaning(self) -> None:
        plain = person_keys(identity_table([["Jos\u00e9", "Ng", "j@x.de", "+1", "1990-01-01"]]), b"k")
        hostile = person_keys(
            identity_table([["Jose\u0301\x00", "\u200bNg", "j@x.de\u202e", "+1", "1990-01-01"]]), b"k"
        )
        assert plain.to_pylist() == hostile.to_pylist()
        batch = anonymise_batch(raw_table([person(), person(firstname="Ada\u200b")]), b"k", REFERENCE)
        assert (batch.persons.num_rows, batch.duplicates, batch.cleaned) == (1, 1, {"firstname": 1})

    def test_entries_without_identity_are_quarantined_one_by_one(self) -> None:
        envelope = {"data": [person(), 7, None, "text", [1, 2], {}, {"gender": "male"}]}
        rows, _ = flatten_page(envelope, PageRequest(number=4, seed=91, quantity=7))
        batch = anonymise_batch(pa.Table.from_batches([rows]), b"k", REFERENCE)
        assert batch.reasons == {"not_a_record": 4, "birthday_unparseable": 2}
        assert batch.duplicates == 0
        quarantine = batch.quarantine.to_pylist()
        keys = [row["person_key"] for row in quarantine]
        positions = [f"entry|91|{index}".encode() for index in range(1, 7)]
        assert keys == [hmac.new(b"k", position, hashlib.sha256).hexdigest() for position in positions]
        assert [(row["page_number"], row["page_seed"]) for row in quarantine] == [(4, 91)] * 6

    @pytest.mark.parametrize(
        ("address", "reason"),
        [
            ({"country": "+cmd|' /C calc'!A0", "country_code": "DE"}, "country_invalid"),
            ({"country": "=1+1", "country_code": "DE"}, "country_invalid"),
            ({"country": "@SUM(A1)", "country_code": "DE"}, "country_invalid"),
            ({"country": "-2+3", "country_code": "DE"}, "country_invalid"),
            ({"country": "\t=1+1", "country_code": "DE"}, "country_invalid"),  # the tab goes, "=" stays
            ({"country": "\r\n=1+1", "country_code": "DE"}, "country_invalid"),
            ({"country": "Germany;", "country_code": "DE"}, "country_invalid"),
            ({"country": "Germany", "country_code": "D1"}, "country_code_invalid"),
            ({"country": "Germany", "country_code": "DEU"}, "country_code_invalid"),
            ({"country": "Germany", "country_code": "=D"}, "country_code_invalid"),
        ],
    )
    def test_what_is_not_a_country_is_quarantined(self, address: dict, reason: str) -> None:
        records = [person(), person(firstname="B", address=address)]
        batch = anonymise_batch(raw_table(records), b"k", REFERENCE)
        assert batch.reasons == {reason: 1}
        assert batch.persons["country"].to_pylist() == ["Germany"]

    def test_every_known_country_name_is_one(self) -> None:
        from faker_twin import load_countries

        names = [name for name, _ in load_countries()] + [
            "C\u00f4te d'Ivoire",
            "Guinea-Bissau",
            "Antarctica (the territory South of 60 deg S)",
            "Antartide (territori a sud del 60\u00b0 parallelo)",
            "\u30dc\u30b9\u30cb\u30a2\u30fb\u30d8\u30eb\u30c4\u30a7\u30b4\u30d3\u30ca",
            "Korea, Republic of",
            "Bosnia & Herzegovina",
            "Cura\u00e7ao",
            "St. Kitts",
            "Cote d\u2019Ivoire",
            "\u0645\u0648\u0646\u062a\u0647\u0646\u06af\u0631\u0648",
        ]
        assert not malformed(pa.array(names, pa.string()), COUNTRY_NAME_PATTERN).any()
        codes = pa.array([code for _, code in load_countries()], pa.string())
        assert not malformed(codes, COUNTRY_CODE_PATTERN).any()

    def test_personal_data_in_a_country_is_left_to_the_privacy_screen(self) -> None:
        shifted = pa.array(["ada@example.org", "+49 30 1234567", "=1+1"], pa.string())
        assert malformed(shifted, COUNTRY_NAME_PATTERN).tolist() == [False, False, True]

    def test_invalid_utf8_is_quarantined_record_by_record(self) -> None:
        from flows.rawdata.records import parse_page

        good = json.dumps(person()).encode()
        broken = json.dumps(person(firstname="Zebedee")).encode().replace(b"Zebedee", b"Zeb\xffedee")
        body = b'{"total": 3, "data": [' + b", ".join([good, broken, good]) + b"]}"
        rows, _ = parse_page(body, PageRequest(number=0, seed=5, quantity=3))
        batch = anonymise_batch(pa.Table.from_batches([rows]), b"k", REFERENCE)
        assert batch.reasons == {"invalid_utf8": 1}
        assert batch.quarantine["record_index"].to_pylist() == [1]
        assert (batch.persons.num_rows, batch.duplicates) == (1, 1)

    @pytest.mark.parametrize("escaped", [b"\\udc80", b"\\ud800"])
    def test_escaped_lone_surrogates_are_quarantined_too(self, escaped: bytes) -> None:
        from flows.rawdata.records import parse_page

        record = json.dumps(person(firstname="Zebedee")).encode().replace(b"Zebedee", b"Zeb" + escaped)
        rows, _ = parse_page(b'{"total": 1, "data": [' + record + b"]}", PageRequest(0, 5, 1))
        batch = anonymise_batch(pa.Table.from_batches([rows]), b"k", REFERENCE)
        assert batch.reasons == {"invalid_utf8": 1}
