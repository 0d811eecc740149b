"""An independent model of what the pipeline must produce for the pages the twin served.

Written from the specification in plain Python (datetime, hmac, dicts), sharing no code with `flows`
beyond the twin's page generator, so that a report or key computed by the pipeline is checked, not copied.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import unicodedata
from collections import Counter
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from faker_twin import TwinFaults, generate_page

GMAIL = {"gmail.com", "googlemail.com"}
DOMAIN = re.compile(r"^(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z0-9-]{2,63}$")
# Text that is not valid Unicode, as Python holds it (undecodable bytes, lone surrogates).
SURROGATE = re.compile(r"[\ud800-\udfff]")
# What a country name may hold besides letters, marks and digits (a letter first).
NAME_PUNCTUATION = set(" .,'\u2019()&/\u00b7\u30fb\u00b0-")
# The privacy screen's view of an email address or a phone number: such a value is left to it (and the gate).
EMAIL_LIKE = re.compile(r"[^@ \t\r\n]+@[^@ \t\r\n]+\.[^@ \t\r\n]+")
PHONE_LIKE = re.compile(
    r"^[ \t]*\+?[ (]*(?:[0-9][ ().\-/]*){6,14}[0-9][ \t]*(?:(?:x|ext\.?)[ \t]*[0-9]{1,6})?[ \t]*$"
)


@dataclass
class Expected:
    """The persons, keys and report the pipeline should end with."""

    persons: dict[str, dict[str, Any]] = field(default_factory=dict)  # person_key -> anonymised row
    quarantined: dict[str, str] = field(default_factory=dict)  # person_key -> reason
    raw_records: list[dict[str, Any]] = field(default_factory=list)

    def report(self, top_n: int = 3, k: int = 5) -> dict[str, Any]:
        """The report keys, computed the slow and obvious way; a group of fewer than k persons is withheld."""
        rows = list(self.persons.values())
        gmail = [row for row in rows if row["email_domain"] in GMAIL]
        by_country: dict[str, list[str]] = {}
        for row in gmail:
            by_country.setdefault(row["country"].strip().lower(), []).append(row["country"].strip())
        counted = sorted((-len(names), min(names)) for names in by_country.values() if len(names) >= k)
        top = [{"country": name, "gmail_users": -count} for count, name in counted[:top_n]]
        groups = Counter(row["age_group"] for row in rows)
        order = sorted(
            (label for label in groups if groups[label] >= k),
            key=lambda label: int(label.strip("[]").split("-")[0]),
        )
        quarantined = {key for key in self.quarantined if key not in self.persons}
        germany = sum(1 for row in gmail if row["country_code"] == "DE")
        return {
            "total_persons": len(rows),
            "gmail_germany_share_pct": 100.0 * germany / len(rows) if rows else None,
            "top_gmail_countries": top,
            "gmail_over_60": sum(1 for row in gmail if row["age"] > 60),
            "age_groups": [{"age_group": label, "persons": groups[label]} for label in order],
            "quarantined": len(quarantined),
        }


def text_of(value: Any) -> str | None:
    """A JSON scalar as the pipeline reads it into text; objects, arrays, booleans and null are no text."""
    if isinstance(value, str):
        return value
    return None if value is None or isinstance(value, (bool, dict, list)) else str(value)


def cleaned(value: Any) -> str | None:
    """Text without control (Cc) and format (Cf) characters, in NFC, stripped; invalid text as U+FFFD."""
    text = text_of(value)
    if text is None:
        return None
    kept = "".join(c for c in SURROGATE.sub("\ufffd", text) if unicodedata.category(c) not in ("Cc", "Cf"))
    return unicodedata.normalize("NFC", kept).strip()


def person_key(record: dict[str, Any], secret: bytes, position: tuple[int, int] | None = None) -> str:
    """HMAC-SHA256 over cleaned, lower-cased identity fields (phone: digits and +), joined by 0x1F; an entry
    without any identity is keyed by its position (page seed, record index) when it is known."""
    parts: list[str | None] = []
    for name in ("firstname", "lastname", "email", "phone", "birthday"):
        value = cleaned(record.get(name))
        if value is not None:
            value = value.lower()
            if name == "phone":
                value = re.sub(r"[^0-9+]", "", value)
        parts.append(value)
    material = "\x1f".join("\x00" if part is None else part for part in parts)
    if position is not None and not any(parts):
        material = f"entry|{position[0]}|{position[1]}"
    return hmac.new(secret, material.encode(), hashlib.sha256).hexdigest()


def holds_invalid_text(value: Any) -> bool:
    """Whether any string in a JSON value is not valid Unicode."""
    if isinstance(value, str):
        return SURROGATE.search(value) is not None
    if isinstance(value, dict):
        return any(holds_invalid_text(key) or holds_invalid_text(item) for key, item in value.items())
    if isinstance(value, list):
        return any(holds_invalid_text(item) for item in value)
    return False


def malformed(text: str, looks_right: bool) -> bool:
    """Not what the column holds, and not a value the privacy screen replaces (that stops the batch)."""
    return not looks_right and not EMAIL_LIKE.search(text) and not PHONE_LIKE.search(text)


def is_country_name(text: str) -> bool:
    """A letter, then letters, marks, digits, spaces and the punctuation country names use."""
    return unicodedata.category(text[0]).startswith("L") and all(
        unicodedata.category(c)[0] in "LMN" or c in NAME_PUNCTUATION for c in text
    )


def age_on(birthday: date, reference: date) -> int:
    """Completed years."""
    return (
        reference.year - birthday.year - ((reference.month, reference.day) < (birthday.month, birthday.day))
    )


def age_group(age: int) -> str:
    """[01-10] for 0..10, then [11-20], ..."""
    low = 1 if age <= 10 else (age - 1) // 10 * 10 + 1
    return f"[{low:02d}-{low + 9}]"


def classify(record: Any, reference: date) -> tuple[str | None, dict[str, Any]]:
    """(quarantine reason or None, anonymised row)."""
    if not isinstance(record, dict):
        return "not_a_record", {}
    if holds_invalid_text(record):
        return "invalid_utf8", {}
    text = cleaned(record.get("birthday"))
    birthday = None
    if text is not None and re.fullmatch(r"[0-9]{4}-[0-9]{2}-[0-9]{2}", text):
        try:
            birthday = date.fromisoformat(text)
        except ValueError:
            birthday = None
    if birthday is None:
        return "birthday_unparseable", {}
    if birthday > reference:
        return "birthday_in_future", {}
    age = age_on(birthday, reference)
    if age > 130:
        return "age_out_of_range", {}
    email = cleaned(record.get("email"))
    domain = email.lower().rpartition("@")[2] if email is not None and "@" in email else ""
    if not domain:
        return "email_without_domain", {}
    if not DOMAIN.match(domain):
        return "email_domain_invalid", {}
    address = record.get("address")
    if not isinstance(address, dict):
        return "address_missing", {}
    country, code = cleaned(address.get("country")), cleaned(address.get("country_code"))
    if not country:
        return "country_missing", {}
    if malformed(country, is_country_name(country)):
        return "country_invalid", {}
    if not code:
        return "country_code_missing", {}
    if malformed(code.upper(), re.fullmatch("[A-Z]{2}", code.upper()) is not None):
        return "country_code_invalid", {}
    gender = cleaned(record.get("gender"))
    return None, {
        "gender": gender.lower() if gender is not None else None,
        "age": age,
        "age_group": age_group(age),
        "email_domain": domain,
        "country": country,
        "country_code": code.upper(),
    }


def expected_from_served(
    served: list[dict[str, str]], faults: TwinFaults, reference: date, secret: bytes
) -> Expected:
    """Regenerate every distinct page the twin served and apply the specification to it."""
    expected = Expected()
    pages = {tuple(sorted(params.items())) for params in served}
    for items in sorted(pages):
        params = dict(items)
        envelope = generate_page(
            int(params["_seed"]),
            int(params["_quantity"]),
            params.get("_locale", "en_US"),
            date.fromisoformat(params["_birthday_start"]) if params.get("_birthday_start") else None,
            date.fromisoformat(params["_birthday_end"]) if params.get("_birthday_end") else None,
            faults.bad_record_rate,
            faults.coordinates,
            faults.extra_fields,
            faults.pii_country_rate,
            faults.hostile_rate,
        )
        for index, record in enumerate(envelope["data"]):
            expected.raw_records.append(record)
            position = (int(params["_seed"]), index)
            key = person_key(record if isinstance(record, dict) else {}, secret, position)
            reason, row = classify(record, reference)
            if reason is None:
                expected.persons.setdefault(key, row)
            else:
                expected.quarantined.setdefault(key, reason)
    return expected
