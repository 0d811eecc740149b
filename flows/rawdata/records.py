"""Parse Faker API pages into a raw columnar batch: known fields only, both payload shapes, unknowns counted.

Pages are parsed by pyarrow's JSON reader against the known schema (in C++, without holding the GIL, so the
fetching threads parse in parallel); a page that does not fit the schema (a number where text belongs, a
record that is not an object, a truncated body) takes the exact path: orjson and field-by-field coercion.
A page whose text is not valid Unicode (invalid UTF-8 bytes, which pyarrow's reader lets through unchecked,
or escaped lone surrogates, which both parsers refuse) is read leniently and its affected records are
flagged, so that anonymisation quarantines them (`invalid_utf8`) instead of failing the batch.
The raw batch is personal data: it lives in memory between extraction and anonymisation and nowhere else.
"""

from __future__ import annotations

import io
import json
import re
from collections import Counter
from collections.abc import Sequence
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pa_json

from flows.anonymise.policy import (
    COLUMN_POLICY,
    known_address_fields,
    known_person_fields,
    raw_source_fields,
)
from flows.plan import PageRequest
from flows.rawdata.client import MalformedPageError, parse_envelope

# Every field the API is known to send (from the column policy); anything else is dropped and counted.
KNOWN_PERSON_FIELDS = known_person_fields()
KNOWN_ADDRESS_FIELDS = known_address_fields()
# What the parser keeps beside the fields anonymisation reads: where a record came from, and its shape.
BOOKKEEPING_FIELDS = (
    ("has_address", pa.bool_()),
    ("is_record", pa.bool_()),
    ("text_is_valid", pa.bool_()),  # false: the record's text held invalid UTF-8 (quarantined)
    ("page_number", pa.int32()),
    ("record_index", pa.int32()),
    ("page_seed", pa.int64()),
)
# The fields anonymisation reads (by their last name part) and the bookkeeping; the rest (street, zipcode,
# coordinates, ...) is never even copied.
PERSON_SOURCE_COLUMNS = tuple(name for name in raw_source_fields() if "." not in name)
ADDRESS_SOURCE_COLUMNS = tuple(name.split(".", 1)[1] for name in raw_source_fields() if "." in name)
RAW_SCHEMA = pa.schema(
    [(name.split(".")[-1], pa.string()) for name in raw_source_fields()] + list(BOOKKEEPING_FIELDS)
)


_TEXT = pa.string()
_COORDINATES = pa.struct([("latitude", pa.float64()), ("longitude", pa.float64())])
# How the known fields arrive on the wire when they are not text.
_WIRE_TYPES = {
    "id": pa.int64(),
    "latitude": pa.float64(),
    "longitude": pa.float64(),
    "coordinates": _COORDINATES,
}
_ADDRESS = pa.struct(
    [
        (name[len("address.") :], _WIRE_TYPES.get(name[len("address.") :], _TEXT))
        for name in COLUMN_POLICY
        if name.startswith("address.")
    ]
)
_PERSON = pa.struct(
    [
        (name, _ADDRESS if name == "address" else _WIRE_TYPES.get(name, _TEXT))
        for name in dict.fromkeys(name.split(".", 1)[0] for name in COLUMN_POLICY)
    ]
)
# The known contract; unexpected fields are still read ("infer") so that they can be counted, then dropped.
ENVELOPE_SCHEMA = pa.schema([("total", pa.int64()), ("data", pa.list_(_PERSON))])
_PARSE_OPTIONS = pa_json.ParseOptions(
    explicit_schema=ENVELOPE_SCHEMA, unexpected_field_behavior="infer", newlines_in_values=True
)


def as_text(value: object) -> str | None:
    """A JSON scalar as text; objects, arrays and null become None."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool) or value is None or isinstance(value, dict | list):
        return None
    return str(value)


def count_unknown_fields(records: Sequence[object]) -> Counter[str]:
    """Count values of fields outside the contract, by name (address fields prefixed with 'address.')."""
    unknown: Counter[str] = Counter()
    for record in records:
        if not isinstance(record, dict):
            continue
        extra = record.keys() - KNOWN_PERSON_FIELDS
        if extra:
            unknown.update(name for name in extra if record[name] is not None)
        address = record.get("address")
        if isinstance(address, dict):
            extra = address.keys() - KNOWN_ADDRESS_FIELDS
            if extra:
                unknown.update(f"address.{name}" for name in extra if address[name] is not None)
    return unknown


def flatten_page(envelope: dict[str, Any], page: PageRequest) -> tuple[pa.RecordBatch, Counter[str]]:
    """Turn one envelope into a raw record batch (RAW_SCHEMA) and the counts of unknown fields."""
    data: list[object] = envelope["data"]
    records: list[dict[str, Any]] = [record if isinstance(record, dict) else {} for record in data]
    addresses = [record.get("address") for record in records]
    addresses = [address if isinstance(address, dict) else None for address in addresses]
    columns: dict[str, list[Any]] = {
        name: [as_text(record.get(name)) for record in records] for name in PERSON_SOURCE_COLUMNS
    }
    for name in ADDRESS_SOURCE_COLUMNS:
        columns[name] = [as_text(address.get(name)) if address else None for address in addresses]
    columns["has_address"] = [address is not None for address in addresses]
    columns["is_record"] = [isinstance(record, dict) for record in data]
    count = len(records)
    columns["text_is_valid"] = [True] * count
    columns["page_number"] = [page.number] * count
    columns["record_index"] = list(range(count))
    columns["page_seed"] = [page.seed] * count
    return pa.RecordBatch.from_pydict(columns, schema=RAW_SCHEMA), count_unknown_fields(data)


def _present(values: pa.Array) -> int:
    """How many entries carry a value."""
    return len(values) - int(values.null_count)


def _count_unknown_columns(records: pa.StructArray, address: pa.Array) -> Counter[str]:
    """Count values of fields outside the contract (address fields prefixed with 'address.')."""
    unknown: Counter[str] = Counter()
    for field in records.type:
        if field.name not in KNOWN_PERSON_FIELDS:
            count = _present(pc.struct_field(records, field.name))
            if count:
                unknown[field.name] = count
    if pa.types.is_struct(address.type):
        for field in address.type:
            if field.name not in KNOWN_ADDRESS_FIELDS:
                count = _present(pc.struct_field(address, field.name))
                if count:
                    unknown[f"address.{field.name}"] = count
    return unknown


def arrow_page(body: bytes, page: PageRequest) -> tuple[pa.RecordBatch, Counter[str]] | None:
    """Columnar parse of a well-formed page; None when the page needs the exact path."""
    try:
        read_options = pa_json.ReadOptions(
            use_threads=False, block_size=len(body) + 1
        )  # the whole page, once
        table = pa_json.read_json(io.BytesIO(body), read_options=read_options, parse_options=_PARSE_OPTIONS)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return None
    if table.num_rows != 1 or table.column("data").null_count:
        return None
    records = pc.list_flatten(table.column("data").combine_chunks())
    total = table.column("total")[0].as_py()
    if total is not None and total != len(records):
        raise MalformedPageError(f"envelope says total={total} but holds {len(records)} records")
    address = pc.struct_field(records, "address")
    count = len(records)
    columns = [pc.struct_field(records, name) for name in PERSON_SOURCE_COLUMNS]
    columns += [pc.struct_field(address, name) for name in ADDRESS_SOURCE_COLUMNS]
    columns += [
        address.is_valid(),
        records.is_valid(),
        pa.array([True] * count, pa.bool_()),
        pa.array([page.number] * count, pa.int32()),
        pa.array(range(count), pa.int32()),
        pa.array([page.seed] * count, pa.int64()),
    ]
    return pa.RecordBatch.from_arrays(columns, schema=RAW_SCHEMA), _count_unknown_columns(records, address)


# What Python makes of text that is not valid Unicode: undecodable bytes (surrogateescape), lone surrogates.
_SURROGATES = re.compile(r"[\ud800-\udfff]")


def _replace_surrogates(value: Any) -> tuple[Any, bool]:
    """`value` with every surrogate in its strings replaced by U+FFFD, and whether there was one."""
    if isinstance(value, str):
        if _SURROGATES.search(value) is None:
            return value, False
        return _SURROGATES.sub("\ufffd", value), True
    if isinstance(value, dict):
        pairs = [(_replace_surrogates(key), _replace_surrogates(item)) for key, item in value.items()]
        return {key: item for (key, _), (item, _) in pairs}, any(k or i for (_, k), (_, i) in pairs)
    if isinstance(value, list):
        items = [_replace_surrogates(item) for item in value]
        return [item for item, _ in items], any(flag for _, flag in items)
    return value, False


def invalid_text_page(body: bytes, page: PageRequest) -> tuple[pa.RecordBatch, Counter[str]] | None:
    """Parse a body that is not valid Unicode leniently; its records holding such text are flagged
    (`text_is_valid` false) and their text repaired with U+FFFD. None if it is not JSON even so."""
    try:
        envelope = json.loads(body.decode("utf-8", "surrogateescape"))
    except ValueError:
        return None
    if not isinstance(envelope, dict) or not isinstance(envelope.get("data"), list):
        return None
    repaired = [_replace_surrogates(record) for record in envelope["data"]]
    envelope = {**envelope, "data": [record for record, _ in repaired]}
    batch, unknown = flatten_page(parse_envelope(orjson.dumps(envelope)), page)  # the usual checks
    valid = pa.array([not flagged for _, flagged in repaired], pa.bool_())
    index = RAW_SCHEMA.get_field_index("text_is_valid")
    return batch.set_column(index, RAW_SCHEMA.field(index), valid), unknown


def parse_page(body: bytes, page: PageRequest) -> tuple[pa.RecordBatch, Counter[str]]:
    """A page's raw record batch and unknown-field counts; MalformedPageError (content-free) if it is none."""
    try:
        body.decode("utf-8")  # ~30 us for a 500 KB page; pyarrow's JSON reader does not check UTF-8
    except UnicodeDecodeError:
        return _lenient(body, page, MalformedPageError("response body is not valid UTF-8 JSON"))
    parsed = arrow_page(body, page)
    if parsed is not None:
        return parsed
    try:
        envelope = parse_envelope(body)
    except MalformedPageError as malformed:
        return _lenient(body, page, malformed)  # escaped lone surrogates: only a lenient parser reads them
    return flatten_page(envelope, page)


def _lenient(
    body: bytes, page: PageRequest, error: MalformedPageError
) -> tuple[pa.RecordBatch, Counter[str]]:
    """`invalid_text_page`, or `error` if the body is not a JSON envelope even when read leniently."""
    parsed = invalid_text_page(body, page)
    if parsed is None:
        raise error
    return parsed
