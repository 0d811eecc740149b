"""Parse Faker API pages into a raw columnar batch: known fields only, both payload shapes, unknowns counted.

The raw batch is personal data: it lives in memory between extraction and anonymisation and nowhere else.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any

import pyarrow as pa

from flows.plan import PageRequest

# Every field the API is known to send; anything else is dropped and counted (never passed through).
KNOWN_PERSON_FIELDS = frozenset(
    {"id", "firstname", "lastname", "email", "phone", "birthday", "gender", "address", "website", "image"}
)
KNOWN_ADDRESS_FIELDS = frozenset(
    {
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
        "coordinates",
    }
)

# The only raw fields anonymisation needs; the rest (street, zipcode, coordinates, ...) is never even copied.
RAW_SCHEMA = pa.schema(
    [
        ("firstname", pa.string()),
        ("lastname", pa.string()),
        ("email", pa.string()),
        ("phone", pa.string()),
        ("birthday", pa.string()),
        ("gender", pa.string()),
        ("country", pa.string()),
        ("country_code", pa.string()),
        ("has_address", pa.bool_()),
        ("is_record", pa.bool_()),
        ("page_number", pa.int32()),
        ("record_index", pa.int32()),
        ("page_seed", pa.int64()),
    ]
)


def as_text(value: object) -> str | None:
    """A JSON scalar as text; objects, arrays and null become None."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool) or value is None or isinstance(value, dict | list):
        return None
    return str(value)


def count_unknown_fields(records: Sequence[object]) -> Counter[str]:
    """Count fields outside the known contract, by name (address fields prefixed with 'address.')."""
    unknown: Counter[str] = Counter()
    for record in records:
        if not isinstance(record, dict):
            continue
        extra = record.keys() - KNOWN_PERSON_FIELDS
        if extra:
            unknown.update(extra)
        address = record.get("address")
        if isinstance(address, dict):
            extra = address.keys() - KNOWN_ADDRESS_FIELDS
            if extra:
                unknown.update(f"address.{name}" for name in extra)
    return unknown


def flatten_page(envelope: dict[str, Any], page: PageRequest) -> tuple[pa.RecordBatch, Counter[str]]:
    """Turn one envelope into a raw record batch (RAW_SCHEMA) and the counts of unknown fields."""
    data: list[object] = envelope["data"]
    records: list[dict[str, Any]] = [record if isinstance(record, dict) else {} for record in data]
    addresses = [record.get("address") for record in records]
    addresses = [address if isinstance(address, dict) else None for address in addresses]
    columns: dict[str, list[Any]] = {
        name: [as_text(record.get(name)) for record in records]
        for name in ("firstname", "lastname", "email", "phone", "birthday", "gender")
    }
    columns["country"] = [as_text(address.get("country")) if address else None for address in addresses]
    columns["country_code"] = [
        as_text(address.get("country_code")) if address else None for address in addresses
    ]
    columns["has_address"] = [address is not None for address in addresses]
    columns["is_record"] = [isinstance(record, dict) for record in data]
    count = len(records)
    columns["page_number"] = [page.number] * count
    columns["record_index"] = list(range(count))
    columns["page_seed"] = [page.seed] * count
    return pa.RecordBatch.from_pydict(columns, schema=RAW_SCHEMA), count_unknown_fields(data)
