"""Landing zone: anonymised batches as zstd Parquet files and a manifest per run, in a folder or a bucket."""

from __future__ import annotations

import hashlib
import io
import os
import tempfile
from dataclasses import asdict, dataclass, field
from datetime import date
from pathlib import Path
from typing import Any, Protocol

import orjson
import pyarrow as pa
import pyarrow.parquet as pq

from flows.anonymise.transform import AnonymisedBatch

PARQUET_COMPRESSION = "zstd"


class LandingStore(Protocol):
    """Where landed files go; paths are relative keys such as 2026-11-26/<run>/<batch>.persons.parquet."""

    def write_bytes(self, key: str, data: bytes) -> None:
        """Store `data` under `key`, replacing it atomically."""
        ...

    def read_bytes(self, key: str) -> bytes:
        """The bytes stored under `key`."""
        ...

    def exists(self, key: str) -> bool:
        """Whether `key` holds an object."""
        ...

    def uri(self, key: str) -> str:
        """A human-readable location of `key` (file path or s3:// URL)."""
        ...

    @property
    def identity(self) -> str:
        """Stable description of the store (part of cache keys)."""
        ...

    def check_access(self) -> None:
        """Fail before any data moves if the place cannot be written."""
        ...

    def upload_folder(self, folder: Path, key_prefix: str, only_new: bool = False) -> str:
        """Make a local folder (data docs, reports) available beside the landed files; return its location.
        With `only_new`, files already there are left as they are (versioned paths: shared docs assets)."""
        ...


class LocalLandingStore:
    """A folder on local disk (the embedded default)."""

    def __init__(self, root: Path) -> None:
        self.root = root.resolve()

    @property
    def identity(self) -> str:
        """The folder's absolute path."""
        return f"file://{self.root}"

    def _path(self, key: str) -> Path:
        path = (self.root / key).resolve()
        if not path.is_relative_to(self.root):
            raise ValueError(f"landing key {key!r} escapes the landing folder")
        return path

    def write_bytes(self, key: str, data: bytes) -> None:
        """Write to a temporary sibling, then rename, so readers never see half a file."""
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, temp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        try:
            with os.fdopen(handle, "wb") as stream:
                stream.write(data)
            os.replace(temp_name, path)
        except BaseException:
            Path(temp_name).unlink(missing_ok=True)
            raise

    def read_bytes(self, key: str) -> bytes:
        """Read a landed file."""
        return self._path(key).read_bytes()

    def exists(self, key: str) -> bool:
        """Whether the landed file is there."""
        return self._path(key).is_file()

    def uri(self, key: str) -> str:
        """The file's absolute path."""
        return str(self._path(key))

    def check_access(self) -> None:
        """Create the folder and prove it is writable."""
        self.root.mkdir(parents=True, exist_ok=True)
        probe = self.root / ".write-probe"
        probe.write_bytes(b"")
        probe.unlink()

    def upload_folder(self, folder: Path, key_prefix: str, only_new: bool = False) -> str:
        """Local folders stay where they are (data docs and reports already live under the data folder)."""
        return str(folder)


@dataclass
class LandedBatch:
    """What landing one batch produced: keys, counts and checksums (no personal values)."""

    batch_id: str
    batch_index: int
    landed_by_run: str
    persons_key: str
    quarantine_key: str
    persons: int
    quarantined: int
    extracted: int
    duplicates: int
    persons_sha256: str
    requested: int = 0
    forgotten: int = 0
    key_fingerprint: str = ""
    reasons: dict[str, int] = field(default_factory=dict)
    unknown_fields: dict[str, int] = field(default_factory=dict)
    redactions: dict[str, int] = field(default_factory=dict)
    cleaned: dict[str, int] = field(default_factory=dict)  # per raw field: values changed by clean_text
    fetch: dict[str, int] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form for manifests."""
        return asdict(self)


def batch_prefix(run_date: date, run_id: str) -> str:
    """Folder of one run's landed files."""
    return f"{run_date.isoformat()}/{run_id}"


def table_to_parquet(table: pa.Table) -> bytes:
    """Serialise a table as zstd-compressed Parquet."""
    sink = io.BytesIO()
    pq.write_table(table, sink, compression=PARQUET_COMPRESSION)
    return sink.getvalue()


def parquet_to_table(data: bytes) -> pa.Table:
    """Read a Parquet file held in memory."""
    return pq.read_table(io.BytesIO(data))


@dataclass(frozen=True)
class BatchFiles:
    """A batch serialised for landing (anonymised content only) and what went into it."""

    persons_parquet: bytes
    quarantine_parquet: bytes
    persons: int
    quarantined: int
    extracted: int
    duplicates: int
    reasons: dict[str, int]
    redactions: dict[str, int]
    unknown_fields: dict[str, int]
    fetch: dict[str, int]
    cleaned: dict[str, int] = field(default_factory=dict)


def serialise_batch(
    anonymised: AnonymisedBatch, unknown_fields: dict[str, int], fetch: dict[str, int]
) -> BatchFiles:
    """The Parquet files of one anonymised batch, with its counts."""
    return BatchFiles(
        persons_parquet=table_to_parquet(anonymised.persons),
        quarantine_parquet=table_to_parquet(anonymised.quarantine),
        persons=anonymised.persons.num_rows,
        quarantined=anonymised.quarantine.num_rows,
        extracted=anonymised.extracted,
        duplicates=anonymised.duplicates,
        reasons=dict(sorted(anonymised.reasons.items())),
        redactions=dict(sorted(anonymised.redactions.items())),
        unknown_fields=dict(sorted(unknown_fields.items())),
        fetch=fetch,
        cleaned=dict(sorted(anonymised.cleaned.items())),
    )


def write_batch_files(
    store: LandingStore, files: BatchFiles, *, batch_id: str, batch_index: int, run_id: str, run_date: date
) -> LandedBatch:
    """Write a batch's persons and quarantine files under the run's prefix and describe them."""
    prefix = batch_prefix(run_date, run_id)
    persons_key = f"{prefix}/{batch_id}.persons.parquet"
    quarantine_key = f"{prefix}/{batch_id}.quarantine.parquet"
    store.write_bytes(persons_key, files.persons_parquet)
    store.write_bytes(quarantine_key, files.quarantine_parquet)
    return LandedBatch(
        batch_id=batch_id,
        batch_index=batch_index,
        landed_by_run=run_id,
        persons_key=persons_key,
        quarantine_key=quarantine_key,
        persons=files.persons,
        quarantined=files.quarantined,
        extracted=files.extracted,
        duplicates=files.duplicates,
        persons_sha256=hashlib.sha256(files.persons_parquet).hexdigest(),
        reasons=files.reasons,
        unknown_fields=files.unknown_fields,
        redactions=files.redactions,
        cleaned=files.cleaned,
        fetch=files.fetch,
    )


def write_manifest(store: LandingStore, run_date: date, run_id: str, manifest: dict[str, Any]) -> str:
    """Write the run's manifest next to its batches; return its key."""
    key = f"{batch_prefix(run_date, run_id)}/manifest.json"
    store.write_bytes(key, orjson.dumps(manifest, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS))
    return key
