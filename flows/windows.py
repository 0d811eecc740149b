"""Extraction windows: the unit of incremental loads and backfills (pure functions, no I/O).

A window is either a run day (`daily:2026-11-25`: that day's persons, ages at that day) or a birthday range
(`birthdays:1950-01-01..1959-12-31`). Its key names it in the warehouse's high-watermark table; its seed is
derived from the key, so a window always fetches the same people and reloading it changes nothing.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Literal

WindowKind = Literal["daily", "birthdays"]
_KEY = re.compile(
    r"^(?P<kind>daily|birthdays):(?P<start>\d{4}-\d{2}-\d{2})(?:\.\.(?P<end>\d{4}-\d{2}-\d{2}))?$"
)


@dataclass(frozen=True)
class LoadWindow:
    """One window of extraction."""

    kind: WindowKind
    start: date
    end: date

    @property
    def key(self) -> str:
        """`daily:<day>` or `birthdays:<start>..<end>`."""
        if self.kind == "daily":
            return f"daily:{self.start.isoformat()}"
        return f"birthdays:{self.start.isoformat()}..{self.end.isoformat()}"

    @property
    def seed(self) -> int:
        """The run seed of this window (31 bits, from the key)."""
        return int.from_bytes(hashlib.sha256(f"window|{self.key}".encode()).digest()[:4], "big") & 0x7FFF_FFFF

    @classmethod
    def parse(cls, key: str) -> LoadWindow:
        """The window a key names; ValueError if it names none."""
        match = _KEY.match(key)
        if not match:
            raise ValueError("a window is daily:YYYY-MM-DD or birthdays:YYYY-MM-DD..YYYY-MM-DD")
        start = date.fromisoformat(match["start"])
        if match["kind"] == "daily":
            if match["end"]:
                raise ValueError("a daily window names one day")
            return cls("daily", start, start)
        if not match["end"]:
            raise ValueError("a birthdays window needs an end: birthdays:<start>..<end>")
        end = date.fromisoformat(match["end"])
        if end < start:
            raise ValueError("a window must not end before it starts")
        return cls("birthdays", start, end)


def daily_windows(
    last_loaded: date | None, until: date, first_day: date | None, max_days: int
) -> list[LoadWindow]:
    """The days after the last loaded one up to `until` (at most `max_days`, oldest first).

    Without any loaded day, the first is `first_day` (default: `until` alone). A missed day is caught up
    by the next run; `max_days` bounds a catch-up after a long outage (the rest follows on later runs).
    """
    start = last_loaded + timedelta(days=1) if last_loaded else (first_day or until)
    days: list[LoadWindow] = []
    day = start
    while day <= until and len(days) < max_days:
        days.append(LoadWindow("daily", day, day))
        day += timedelta(days=1)
    return days


def date_windows(start: date, end: date) -> list[LoadWindow]:
    """One daily window per day from `start` to `end` (a backfill over run dates)."""
    if end < start:
        raise ValueError("end must not be before start")
    return [
        LoadWindow("daily", start + timedelta(days=n), start + timedelta(days=n))
        for n in range((end - start).days + 1)
    ]


def birthday_windows(start: date, end: date, years: int) -> list[LoadWindow]:
    """Consecutive birthday ranges of `years` calendar years covering [start, end]."""
    if end < start:
        raise ValueError("birthday_end must not be before birthday_start")
    if years < 1:
        raise ValueError("window_years must be at least 1")
    windows = []
    low = start
    while low <= end:
        high = min(date(low.year + years, 1, 1) - timedelta(days=1), end)
        windows.append(LoadWindow("birthdays", low, high))
        low = high + timedelta(days=1)
    return windows
