"""The column policy, declared once: what happens to every field the API sends, and what comes out.

Everything else is derived from these two tables: the fields the parser knows (`known_person_fields`,
`known_address_fields`), the raw schema it parses into (`raw_source_fields`), the anonymised persons schema
(`persons_schema`) and the validation gate's columns and patterns (`flows.gate.suite`).
`tests/unit/test_policy.py` checks that none of them can drift from the policy.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

import pyarrow as pa


class Treatment(StrEnum):
    """What happens to a source field."""

    KEEP = "keep"
    GENERALISE = "generalise"
    PSEUDONYMISE = "pseudonymise"
    DROP = "drop"


# The column policy, in one place: every field the API sends, what happens to it, and why.
COLUMN_POLICY: dict[str, tuple[Treatment, str]] = {
    "id": (Treatment.DROP, "restarts at 1 in every response, so it identifies nothing"),
    "firstname": (Treatment.PSEUDONYMISE, "only inside the keyed hash person_key"),
    "lastname": (Treatment.PSEUDONYMISE, "only inside the keyed hash person_key"),
    "email": (Treatment.GENERALISE, "-> email_domain (lower-case); the local part is dropped"),
    "phone": (Treatment.PSEUDONYMISE, "only inside the keyed hash person_key"),
    "birthday": (Treatment.GENERALISE, "-> age_group (10-year bin at the reference date)"),
    "gender": (Treatment.KEEP, "lower-cased; the gate admits only the known set"),
    "address.id": (Treatment.DROP, "meaningless constant"),
    "address.street": (Treatment.DROP, "locates a person"),
    "address.streetName": (Treatment.DROP, "locates a person"),
    "address.buildingNumber": (Treatment.DROP, "locates a person"),
    "address.city": (Treatment.DROP, "not needed by any report (data minimisation)"),
    "address.zipcode": (Treatment.DROP, "locates a person"),
    "address.country": (Treatment.KEEP, "needed by the reports; coarse"),
    "address.country_code": (Treatment.KEEP, "upper-cased ISO code"),
    "address.latitude": (Treatment.DROP, "locates a person"),
    "address.longitude": (Treatment.DROP, "locates a person"),
    "address.coordinates": (Treatment.DROP, "older payload shape of latitude/longitude"),
    "website": (Treatment.DROP, "often personal, not needed"),
    "image": (Treatment.DROP, "not needed"),
}

# Identity of a record for person_key; ids restart per response, so content is the only identity there is.
IDENTITY_FIELDS = ("firstname", "lastname", "email", "phone", "birthday")
KNOWN_GENDERS = ("female", "male")
MAX_AGE = 130
AGE_GROUPS = tuple(f"[{low + 1:02d}-{low + 10}]" for low in range(0, MAX_AGE, 10))
GMAIL_DOMAINS = ("gmail.com", "googlemail.com")
# What an email address or a phone number looks like; kept columns must hold neither (the privacy screen).
# Written without \s so that pandas hands them to pyarrow's RE2 (much faster than Python's re) in the gate.
EMAIL_LIKE = r"[^@ \t\r\n]+@[^@ \t\r\n]+\.[^@ \t\r\n]+"
# 7 to 15 digits (E.164) with the usual separators and an optional extension.
PHONE_LIKE = r"^[ \t]*\+?[ (]*(?:[0-9][ ().\-/]*){6,14}[0-9][ \t]*(?:(?:x|ext\.?)[ \t]*[0-9]{1,6})?[ \t]*$"
REDACTED_EMAIL = "[redacted:email]"
REDACTED_PHONE = "[redacted:phone]"
DOMAIN_PATTERN = r"^(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z0-9-]{2,63}$"
PERSON_KEY_PATTERN = r"^[0-9a-f]{64}$"
# Control (Cc) and format (Cf) characters: invisible, they split one value into several (NUL, bidi overrides,
# zero-width characters, BOM) and break files; removed from every text field before it is keyed or published.
INVISIBLE_CHARACTERS = r"[\p{Cc}\p{Cf}]"
# What a spreadsheet reads as the start of a formula (OWASP CSV injection).
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
# A formula start or an invisible character. RE2 syntax (\p{..}): Python's re cannot parse it, so pandas
# hands it to pyarrow in the gate (the tab and CR stand in the class as themselves).
SPREADSHEET_UNSAFE = "^[" + "".join(FORMULA_START).replace("-", "\\-") + "]|" + INVISIBLE_CHARACTERS
# A country name: a letter first, then letters, marks, digits, spaces and the punctuation country names use
# (the twin's countries and every Faker locale's: "Guinea-Bissau", "Côte d'Ivoire", "Antarctica (the territory
# South of 60 deg S)", Japanese "・", Italian "60° parallelo"); never a formula, never an invisible character.
COUNTRY_NAME_PATTERN = r"^\p{L}[\p{L}\p{M}\p{N} .,'’()&/·・°-]*$"
COUNTRY_CODE_PATTERN = r"^[A-Z]{2}$"


@dataclass(frozen=True)
class OutputColumn:
    """One column of an anonymised batch: where it comes from and what the gate demands of it."""

    name: str
    type: pa.DataType
    sources: tuple[str, ...]  # policy fields it is computed from; empty for run metadata
    nullable: bool = False  # in the Arrow schema (the gate still requires a value, see flows.gate.suite)
    pattern: str | None = None  # every value matches it
    value_set: tuple[str, ...] | None = None  # every value is one of these
    check: str = ""  # the name of that check, after the column's: person_key_is_hmac_sha256_hex
    note: str = ""  # why the pattern or set, for the data docs


OUTPUT_COLUMNS: tuple[OutputColumn, ...] = (
    OutputColumn(
        "person_key",
        pa.string(),
        IDENTITY_FIELDS,
        pattern=PERSON_KEY_PATTERN,
        check="is_hmac_sha256_hex",
        note="A keyed hash, never a raw identifier.",
    ),
    OutputColumn(
        "gender",
        pa.string(),
        ("gender",),
        nullable=True,
        value_set=KNOWN_GENDERS,
        check="in_known_set",
        note="Known genders only.",
    ),
    OutputColumn(
        "age_group",
        pa.string(),
        ("birthday",),
        value_set=AGE_GROUPS,
        check="within_bins",
        note=f"10-year bins {AGE_GROUPS[0]} .. {AGE_GROUPS[-1]}.",
    ),
    OutputColumn(
        "email_domain",
        pa.string(),
        ("email",),
        pattern=DOMAIN_PATTERN,
        check="looks_like_a_domain",
        note="Lower-case domain only; the local part is gone.",
    ),
    OutputColumn(
        "country",
        pa.string(),
        ("address.country",),
        pattern=COUNTRY_NAME_PATTERN,
        check="looks_like_a_name",
        note="A letter, then letters, marks, digits, spaces and .,'’()&/-·・°; anything else is quarantined.",
    ),
    OutputColumn(
        "country_code",
        pa.string(),
        ("address.country_code",),
        pattern=COUNTRY_CODE_PATTERN,
        check="is_two_letters",
        note="Two letters A-Z (upper-cased); anything else is quarantined.",
    ),
    OutputColumn("age_reference_date", pa.date32(), ()),
)


def output_column(name: str) -> OutputColumn:
    """The declaration of one output column."""
    return next(column for column in OUTPUT_COLUMNS if column.name == name)


def persons_schema() -> pa.Schema:
    """The anonymised persons batch, column by column as declared."""
    return pa.schema([pa.field(c.name, c.type, nullable=c.nullable) for c in OUTPUT_COLUMNS])


def screened_columns() -> tuple[str, ...]:
    """Columns that carry source text over: one source, kept, or generalised to a part of the text (not to a
    closed set such as the age bins). The privacy screen replaces any value in them that looks like an email
    address or a phone number."""
    carried = []
    for column in OUTPUT_COLUMNS:
        if len(column.sources) != 1:
            continue
        treatment = COLUMN_POLICY[column.sources[0]][0]
        if treatment is Treatment.KEEP or (treatment is Treatment.GENERALISE and column.value_set is None):
            carried.append(column.name)
    return tuple(carried)


def text_columns() -> tuple[str, ...]:
    """Output columns holding text: none of them may hold an email address or a phone number (the gate)."""
    return tuple(c.name for c in OUTPUT_COLUMNS if pa.types.is_string(c.type))


def known_person_fields() -> frozenset[str]:
    """Every top-level field the API is known to send (anything else is dropped and counted)."""
    return frozenset(name.split(".", 1)[0] for name in COLUMN_POLICY)


def known_address_fields() -> frozenset[str]:
    """Every field of the address object the API is known to send."""
    return frozenset(name.split(".", 1)[1] for name in COLUMN_POLICY if name.startswith("address."))


def raw_source_fields() -> tuple[str, ...]:
    """The policy fields anonymisation reads (any output column is computed from), in policy order; the rest
    (street, zipcode, coordinates, ...) is never even copied out of a page."""
    used = {source for column in OUTPUT_COLUMNS for source in column.sources}
    return tuple(name for name in COLUMN_POLICY if name in used)
