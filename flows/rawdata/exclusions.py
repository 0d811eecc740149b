"""Persons a batch must never carry: the tombstones of the right to be forgotten (pure, no I/O).

The raw-data worker drops a tombstoned record before anything is anonymised or landed. While re-keying, the
tombstones are under the previous key, so the worker also derives each record's previous key; the current
keys of the records it dropped that way become the tombstones under the new key.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from flows.anonymise.transform import person_keys


@dataclass(frozen=True)
class Exclusions:
    """Tombstoned person_keys (under the current key, and under the previous key while re-keying)."""

    forgotten: frozenset[str] = frozenset()
    forgotten_previous: frozenset[str] = frozenset()
    previous_secret: bytes | None = field(default=None, repr=False)

    @property
    def digest(self) -> str:
        """Changes whenever a person is forgotten (part of the landed batch's cache key)."""
        material = "\n".join(sorted(self.forgotten)) + "|" + "\n".join(sorted(self.forgotten_previous))
        return hashlib.sha256(material.encode()).hexdigest()[:16]

    def __bool__(self) -> bool:
        return bool(self.forgotten or self.forgotten_previous)


def drop_forgotten(raw: pa.Table, secret: bytes, exclusions: Exclusions) -> tuple[pa.Table, int, list[str]]:
    """(raw without tombstoned records, records dropped, current keys of those found by previous key)."""
    if not exclusions or not raw.num_rows:
        return raw, 0, []
    keys = person_keys(raw, secret)
    forgotten = np.asarray(
        pc.is_in(keys, value_set=pa.array(sorted(exclusions.forgotten), pa.string())), dtype=bool
    )
    translated: list[str] = []
    if exclusions.forgotten_previous and exclusions.previous_secret:
        previous = person_keys(raw, exclusions.previous_secret)
        by_previous = np.asarray(
            pc.is_in(previous, value_set=pa.array(sorted(exclusions.forgotten_previous), pa.string())),
            dtype=bool,
        )
        translated = sorted(set(keys.filter(pa.array(by_previous & ~forgotten)).to_pylist()))
        forgotten |= by_previous
    dropped = int(forgotten.sum())
    if not dropped:
        return raw, 0, translated
    return raw.filter(pa.array(~forgotten)), dropped, translated
