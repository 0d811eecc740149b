"""The faults the twin can inject, as one frozen configuration (rates, delays, shapes)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from typing import Any

from faker_twin.constants import COORDINATE_SHAPES, CoordinateShape

# ------------------------------------------------------------ faults


@dataclass(frozen=True)
class TwinFaults:
    """Switchable misbehaviour of the twin; every fault is off by default."""

    error_rate: float = 0.0
    rate_limit_every: int = 0
    retry_after_s: int = 1
    truncate_rate: float = 0.0
    latency_ms: int = 0
    bad_record_rate: float = 0.0
    coordinates: CoordinateShape = "flat"
    extra_fields: bool = False
    pii_country_rate: float = (
        0.0  # an upstream bug: the email shifted into address.country (gate must stop it)
    )
    hostile_rate: float = 0.0  # formula-like or invisible-character countries, non-records, invalid UTF-8

    def __post_init__(self) -> None:
        """Reject out-of-range settings early, so a typo fails loudly instead of silently doing nothing."""
        for name in ("error_rate", "truncate_rate", "bad_record_rate", "pii_country_rate", "hostile_rate"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be within [0, 1], got {value!r}")
        for name in ("rate_limit_every", "retry_after_s", "latency_ms"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)!r}")
        if self.coordinates not in COORDINATE_SHAPES:
            raise ValueError(f"coordinates must be one of {COORDINATE_SHAPES}, got {self.coordinates!r}")

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TwinFaults:
        """Build from a JSON-like mapping; missing fields take defaults, unknown fields are an error."""
        known = {f.name: f.type for f in fields(cls)}
        unknown = sorted(set(data) - set(known))
        if unknown:
            raise ValueError(f"unknown fault fields: {unknown}")
        return cls(**{name: _coerce_fault(name, known[name], value) for name, value in data.items()})

    def to_dict(self) -> dict[str, Any]:
        """Plain dict of all fields (the shape ``from_dict`` and ``POST /__twin/faults`` accept)."""
        return asdict(self)


def _coerce_fault(name: str, type_name: object, value: object) -> Any:
    """Check one JSON value against the field's declared type (annotations are strings here)."""
    kind = str(type_name)
    if kind == "bool":
        if not isinstance(value, bool):
            raise ValueError(f"{name} must be a boolean, got {value!r}")
        return value
    if isinstance(value, bool):
        raise ValueError(f"{name} must be a number, got {value!r}")
    if kind == "float" and isinstance(value, int | float):
        return float(value)
    if kind == "int" and isinstance(value, int):
        return value
    if kind == "int" and isinstance(value, float) and value.is_integer():
        return int(value)
    if kind == "CoordinateShape" and isinstance(value, str):
        return value
    raise ValueError(f"{name} has an invalid value {value!r}")
