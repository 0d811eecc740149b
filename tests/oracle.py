"""An independent model of what the pipeline must produce for the pages the twin served.

Written from the specification in plain Python (datetime, hmac, dicts), sharing no code with `flows`
beyond the twin's page generator, so that a report or key computed by the pipeline is checked, not copied.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections import Counter
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from faker_twin.server import TwinFaults, generate_page

GMAIL = {"gmail.com", "googlemail.com"}
DOMAIN = re.compile(r"^(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z0-9-]{2,63}$")


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


def person_key(record: dict[str, Any], secret: bytes) -> str:
    """HMAC-SHA256 over trimmed, lower-cased identity fields (phone: digits and +), joined by 0x1F."""
    parts = []
    for name in ("firstname", "lastname", "email", "phone", "birthday"):
        value = record.get(name)
        if not isinstance(value, str):
            value = None if value is None or isinstance(value, (bool, dict, list)) else str(value)
        if value is None:
            parts.append("\x00")
            continue
        value = value.strip().lower()
        if name == "phone":
            value = re.sub(r"[^0-9+]", "", value)
        parts.append(value)
    return hmac.new(secret, "\x1f".join(parts).encode(), hashlib.sha256).hexdigest()


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
    text = record.get("birthday")
    birthday = None
    if isinstance(text, str) and re.fullmatch(r"\d{4}-\d{2}-\d{2}", text.strip()):
        try:
            birthday = date.fromisoformat(text.strip())
        except ValueError:
            birthday = None
    if birthday is None:
        return "birthday_unparseable", {}
    if birthday > reference:
        return "birthday_in_future", {}
    age = age_on(birthday, reference)
    if age > 130:
        return "age_out_of_range", {}
    email = record.get("email")
    domain = email.strip().lower().rpartition("@")[2] if isinstance(email, str) and "@" in email else ""
    if not domain:
        return "email_without_domain", {}
    if not DOMAIN.match(domain):
        return "email_domain_invalid", {}
    address = record.get("address")
    if not isinstance(address, dict):
        return "address_missing", {}
    country, code = address.get("country"), address.get("country_code")
    if not isinstance(country, str) or not country.strip():
        return "country_missing", {}
    if not isinstance(code, str) or not code.strip():
        return "country_code_missing", {}
    gender = record.get("gender")
    return None, {
        "gender": gender.strip().lower() if isinstance(gender, str) else None,
        "age": age,
        "age_group": age_group(age),
        "email_domain": domain,
        "country": country.strip(),
        "country_code": code.strip().upper(),
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
        )
        for record in envelope["data"]:
            expected.raw_records.append(record)
            key = person_key(record, secret) if isinstance(record, dict) else person_key({}, secret)
            reason, row = classify(record, reference)
            if reason is None:
                expected.persons.setdefault(key, row)
            else:
                expected.quarantined.setdefault(key, reason)
    return expected
