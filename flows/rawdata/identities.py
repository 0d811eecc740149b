"""Right to be forgotten, raw side: an identity file's lines become person_keys, in a process of its own.

The identity file holds raw personal data. It is read here (in the raw-data process, never in the one that
talks to Prefect), nothing of it is copied, logged or put into an error: a bad line is reported by its number.
The keys are derived by the anonymiser's own function, so they are the keys the pipeline published.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import orjson
import pyarrow as pa

from flows.anonymise.policy import IDENTITY_FIELDS
from flows.anonymise.transform import person_keys


class IdentityFileError(ValueError):
    """The identity file cannot be used; the message names a line number or the problem, never a value."""


@dataclass(frozen=True)
class IdentityKeys:
    """The distinct person_keys of an identity file, and how many persons it named."""

    keys: tuple[str, ...]
    identities: int


def read_identities(path: Path) -> pa.Table:
    """The identifying fields of every line of a JSON-lines file (strings, as the API serves them)."""
    columns: dict[str, list[str | None]] = {name: [] for name in IDENTITY_FIELDS}
    try:
        handle = path.open("rb")
    except OSError as exc:
        raise IdentityFileError(f"the identity file cannot be read ({type(exc).__name__})") from None
    with handle:
        for number, line in enumerate(handle, 1):
            if not line.strip():
                continue
            try:
                record = orjson.loads(line)
            except orjson.JSONDecodeError:
                raise IdentityFileError(f"line {number} of the identity file is not JSON") from None
            if not isinstance(record, dict) or not all(
                isinstance(record.get(name), str) for name in IDENTITY_FIELDS
            ):
                raise IdentityFileError(
                    f"line {number} of the identity file does not hold every identifying field as text "
                    f"({', '.join(IDENTITY_FIELDS)})"
                )
            for name in IDENTITY_FIELDS:
                columns[name].append(record[name])
    return pa.table({name: pa.array(values, pa.string()) for name, values in columns.items()})


class IdentityKeyer:
    """Lives in its own process (flows.runtime.remote): file in, keys out."""

    def keys_of_file(self, path: str, secret: bytes) -> IdentityKeys:
        """The person_keys of the persons an identity file names, under `secret`."""
        try:
            identities = read_identities(Path(path))
            keys = person_keys(identities, secret).to_pylist() if identities.num_rows else []
        except IdentityFileError:
            raise
        except Exception as exc:
            raise IdentityFileError(f"deriving keys failed with {type(exc).__name__}") from None
        return IdentityKeys(tuple(sorted(set(keys))), identities.num_rows)
