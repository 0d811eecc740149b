"""Scan folders for raw personal values: every file decoded the way a reader would see it.

Two kinds of needle, so common words in static assets do not raise false alarms:
- `substrings`: distinctive values (email local parts, emails, phones, streets, full names, long strings) that
  must not occur anywhere, in any decoded text or raw bytes;
- `values`: single first and last names, which must not occur as a whole value (a Parquet/DuckDB/SQLite cell,
  a JSON string, a CSV field).
"""

from __future__ import annotations

import base64
import gzip
import json
import re
import sqlite3
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import ahocorasick
import duckdb
import pyarrow.parquet as pq
from PIL import Image

KEPT_FIELDS = ("country", "country_code", "gender")


@dataclass
class Needles:
    """What must not be found."""

    substrings: set[str] = field(default_factory=set)
    values: set[str] = field(default_factory=set)

    @classmethod
    def from_records(cls, records: Iterable[Any]) -> Needles:
        """Collect the raw values the twin served (minus values that are also legitimately kept)."""
        needles = cls()
        kept: set[str] = set()
        for record in records:
            if not isinstance(record, dict):
                continue
            address = record.get("address") if isinstance(record.get("address"), dict) else {}
            for name in KEPT_FIELDS:
                for source in (record, address):
                    if isinstance(source.get(name), str):
                        kept.add(source[name].strip())
            first, last = record.get("firstname"), record.get("lastname")
            if isinstance(first, str) and isinstance(last, str):
                needles.substrings.add(f"{first} {last}")
            for name in (first, last, record.get("middlename")):
                if isinstance(name, str) and name.strip():
                    (needles.substrings if len(name) >= 40 else needles.values).add(name.strip())
            email = record.get("email")
            if isinstance(email, str):
                needles.substrings.add(email)
                local = email.split("@")[0]
                if len(local) >= 6:
                    needles.substrings.add(local)
            for value in (record.get("phone"), record.get("ssn"), address.get("street")):
                if isinstance(value, str) and len(value) >= 6:
                    needles.substrings.add(value)
            for value in (address.get("streetName"), address.get("city")):
                if isinstance(value, str) and len(value) >= 40:
                    needles.substrings.add(value)
        needles.substrings -= kept
        needles.values -= kept
        return needles


@dataclass(frozen=True)
class Finding:
    """One leaked value and where it was found."""

    path: Path
    how: str
    needle: str


def _strings(obj: Any) -> Iterator[str]:
    """Every string inside a JSON-like object (keys included)."""
    if isinstance(obj, str):
        yield obj
    elif isinstance(obj, dict):
        for key, value in obj.items():
            yield str(key)
            yield from _strings(value)
    elif isinstance(obj, list | tuple):
        for item in obj:
            yield from _strings(item)


def _decoded_texts(path: Path, data: bytes) -> Iterator[tuple[str, str]]:
    """(how, text) views of a file: raw bytes as text, gunzipped, JSON with base64 payloads decoded."""
    yield "bytes", data.decode("utf-8", "replace")
    if data[:2] == b"\x1f\x8b":
        try:
            data = gzip.decompress(data)
            yield "gunzip", data.decode("utf-8", "replace")
        except OSError:
            pass
    try:
        document = json.loads(data)
    except (ValueError, UnicodeDecodeError):
        return
    for text in _strings(document):
        if len(text) >= 16 and re.fullmatch(r"[A-Za-z0-9+/=\s]+", text):
            try:
                decoded = base64.b64decode(text, validate=False).decode("utf-8", "replace")
            except ValueError:
                continue
            yield "base64", decoded


class _TextNodes(HTMLParser):
    """The text nodes of an HTML or SVG document (table cells, chart labels), in order."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.nodes: list[str] = []

    def handle_data(self, data: str) -> None:
        if data.strip():
            self.nodes.append(data)


def _cells(path: Path) -> Iterator[tuple[str, str]]:
    """(how, value) for every text cell of structured files."""
    suffix = path.suffix
    if suffix in {".html", ".svg"}:
        parser = _TextNodes()
        parser.feed(path.read_text("utf-8", "replace"))
        for node in parser.nodes:
            yield "html-text", node
    elif suffix == ".png":
        with Image.open(path) as image:  # a chart's text is drawn as pixels; its metadata chunks are text
            for value in getattr(image, "text", {}).values():
                yield "png-text", str(value)
    elif suffix == ".parquet":
        table = pq.read_table(path)
        for column in table.column_names:
            for value in table[column].to_pylist():
                if isinstance(value, str):
                    yield f"parquet:{column}", value
    elif suffix == ".duckdb":
        with duckdb.connect(str(path), read_only=True) as connection:
            columns = connection.execute(
                "select table_schema, table_name, column_name from information_schema.columns "
                "where data_type = 'VARCHAR'"
            ).fetchall()
            for schema, table, column in columns:
                query = f'select "{column}" from "{schema}"."{table}"'
                for (value,) in connection.execute(query).fetchall():
                    if isinstance(value, str):
                        yield f"duckdb:{schema}.{table}.{column}", value
    elif suffix in {".db", ".sqlite", ".sqlite3"}:
        connection = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            tables = [
                row[0] for row in connection.execute("select name from sqlite_master where type='table'")
            ]
            for table in tables:
                for row in connection.execute(f'select * from "{table}"'):
                    for cell in row:
                        text = cell.decode("utf-8", "replace") if isinstance(cell, bytes) else cell
                        if isinstance(text, str):
                            yield f"sqlite:{table}", text
        finally:
            connection.close()
    elif suffix == ".jsonl":  # JSON lines (the OpenLineage events file): every string of every line
        for line in path.read_text("utf-8", "replace").splitlines():
            try:
                document = json.loads(line)
            except ValueError:
                yield "jsonl-line", line
                continue
            for value in _strings(document):
                yield "jsonl", value
    else:
        try:
            document = json.loads(path.read_bytes())
        except (ValueError, UnicodeDecodeError, OSError):
            document = None
        if document is not None:
            for value in _strings(document):
                yield "json", value
        elif suffix in {".csv", ".md", ".txt", ".log"}:
            for value in re.split(r"[,|\n\t]", path.read_text("utf-8", "replace")):
                yield "text-field", value.strip()


def cell_sources(path: Path) -> set[str]:
    """Where the scan reads text cells of a structured file (e.g. duckdb:staging.tombstones.person_key)."""
    return {how for how, _ in _cells(path)}


class _Matcher:
    """Aho-Corasick over all substring needles: one pass per text, however many needles."""

    def __init__(self, needles: Iterable[str]) -> None:
        self._automaton = ahocorasick.Automaton()
        for needle in needles:
            self._automaton.add_word(needle, needle)
        self._empty = len(self._automaton) == 0
        if not self._empty:
            self._automaton.make_automaton()

    def first(self, text: str) -> str | None:
        """The first needle found in `text`, if any."""
        if self._empty:
            return None
        for _, needle in self._automaton.iter(text):
            return str(needle)
        return None


def scan(roots: Iterable[Path], needles: Needles) -> list[Finding]:
    """Every place any needle occurs under the roots (empty list = clean)."""
    findings: list[Finding] = []
    matcher = _Matcher(needles.substrings)
    for root in roots:
        for path in sorted(p for p in Path(root).rglob("*") if p.is_file()):
            data = path.read_bytes()
            for how, text in _decoded_texts(path, data):
                found = matcher.first(text)
                if found:
                    findings.append(Finding(path, how, found))
            try:
                for how, value in _cells(path):
                    stripped = value.strip()
                    found = stripped if stripped in needles.values else matcher.first(value)
                    if found:
                        findings.append(Finding(path, how, found))
            except (duckdb.Error, sqlite3.Error, OSError, SyntaxError) as exc:
                findings.append(Finding(path, f"unreadable: {type(exc).__name__}", ""))
    return findings
