"""Completeness of a page: the plan says how many records each page must bring; anything else is the source's
fault, retried like a malformed body (the message names counts and the page, never a value)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol, TypeVar

from flows.plan import PageRequest
from flows.rawdata.client import MalformedPageError


class Sized(Protocol):
    """What a parsed page exposes: its number of records."""

    @property
    def num_rows(self) -> int:
        """Records in the page."""
        ...


T = TypeVar("T", bound=tuple[Sized, object])


class IncompletePageError(MalformedPageError):
    """A page brought fewer or more records than its `_quantity` (short, empty or over-long)."""


def incomplete_page_reason(received: int, page: PageRequest) -> str:
    """The one reason text a short, empty or over-long page is rejected with."""
    return f"source returned {received} of {page.quantity} records for page {page.number}"


def check_page_count(received: int, page: PageRequest) -> None:
    """Raise IncompletePageError unless the page holds exactly the records the plan asked for."""
    if received != page.quantity:
        raise IncompletePageError(incomplete_page_reason(received, page))


def complete_pages(parse: Callable[[bytes, PageRequest], T]) -> Callable[[bytes, PageRequest], T]:
    """Wrap a page parser so that an incomplete page is refused (and therefore retried) like a broken one."""

    def parse_complete(body: bytes, page: PageRequest) -> T:
        parsed = parse(body, page)
        check_page_count(parsed[0].num_rows, page)
        return parsed

    return parse_complete
