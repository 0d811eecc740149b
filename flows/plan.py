"""Run parameters and the deterministic plan of pages and batches a run extracts."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from flows.settings import MAX_PAGE_SIZE, PipelineSettings
from flows.windows import LoadWindow


class ParameterError(ValueError):
    """A run parameter was refused; the message is one line naming the option."""


class RunParameters(BaseModel):
    """The validated parameters of one run (flow parameters and CLI options map 1:1 onto these)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    api_url: str
    total: int = Field(ge=1, le=100_000_000)
    batch_size: int = Field(ge=1, le=MAX_PAGE_SIZE)
    pages_per_batch: int = Field(ge=1, le=1000)
    seed: int = Field(ge=0, le=2**31 - 1)
    locale: str = Field(pattern=r"^[a-z]{2,3}_[A-Z]{2}$")
    birthday_start: date | None = None
    birthday_end: date | None = None
    reference_date: date
    data_dir: Path
    warehouse: Literal["duckdb", "snowflake"] | None = None
    landing_url: str | None = None
    window: str | None = None
    report_json: Path | None = None

    @field_validator("api_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in {"http", "https"} or not parts.netloc:
            raise ValueError("must be an http(s) URL such as https://fakerapi.it/api/v2")
        return value.rstrip("/")

    @field_validator("landing_url")
    @classmethod
    def _landing_place(cls, value: str | None) -> str | None:
        if value is None or not value.startswith("s3://"):
            return value
        if not re.fullmatch(r"s3://[a-z0-9][a-z0-9.\-]{1,61}[a-z0-9](/[A-Za-z0-9!_.*'()/\-]*)?", value):
            raise ValueError("must be a folder or s3://<bucket>/<prefix> with a valid bucket name")
        return value.rstrip("/")

    @field_validator("window")
    @classmethod
    def _known_window(cls, value: str | None) -> str | None:
        if value is not None:
            LoadWindow.parse(value)
        return value

    @property
    def load_window(self) -> LoadWindow | None:
        """The extraction window this run loads, if it loads one."""
        return LoadWindow.parse(self.window) if self.window else None

    @model_validator(mode="after")
    def _window_is_ordered(self) -> RunParameters:
        if self.birthday_start and self.birthday_end and self.birthday_start > self.birthday_end:
            raise ValueError("birthday_start must not be after birthday_end")
        return self

    @classmethod
    def parse(cls, **values: object) -> RunParameters:
        """Validate raw values; raise ParameterError with a single readable line."""
        try:
            return cls.model_validate(values)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(part) for part in first["loc"]) or "parameters"
            option = "--" + where.replace("_", "-") if first["loc"] else where
            raise ParameterError(f"{option}: {first['msg']}") from None


@dataclass(frozen=True)
class PageRequest:
    """One API request: page number within the run, its derived _seed and _quantity."""

    number: int
    seed: int
    quantity: int


@dataclass(frozen=True)
class BatchPlan:
    """Pages that are landed, validated and merged together."""

    index: int
    batch_id: str
    pages: tuple[PageRequest, ...]

    @property
    def persons(self) -> int:
        """Persons requested by this batch."""
        return sum(page.quantity for page in self.pages)


def page_seed(run_seed: int, locale: str, start: date | None, end: date | None, page_number: int) -> int:
    """Derive a page's _seed from what defines the population, so reruns fetch the same people."""
    material = f"persons|{run_seed}|{locale}|{start or ''}|{end or ''}|{page_number}".encode()
    return int.from_bytes(hashlib.sha256(material).digest()[:4], "big") & 0x7FFF_FFFF


def plan_pages(params: RunParameters) -> list[PageRequest]:
    """Split the run's total into pages of at most batch_size persons."""
    pages = []
    for number, offset in enumerate(range(0, params.total, params.batch_size)):
        quantity = min(params.batch_size, params.total - offset)
        seed = page_seed(params.seed, params.locale, params.birthday_start, params.birthday_end, number)
        pages.append(PageRequest(number=number, seed=seed, quantity=quantity))
    return pages


def plan_batches(params: RunParameters) -> list[BatchPlan]:
    """Group pages into batches with ids that depend only on what the batch fetches."""
    pages = plan_pages(params)
    batches = []
    for index, start in enumerate(range(0, len(pages), params.pages_per_batch)):
        chunk = tuple(pages[start : start + params.pages_per_batch])
        identity = "|".join(
            [params.locale, str(params.birthday_start), str(params.birthday_end)]
            + [f"{page.seed}:{page.quantity}" for page in chunk]
        )
        digest = hashlib.sha256(identity.encode()).hexdigest()[:12]
        batches.append(BatchPlan(index=index, batch_id=f"b{index:05d}-{digest}", pages=chunk))
    return batches


def resolve_parameters(settings: PipelineSettings, **given: Any) -> RunParameters:
    """Flow parameters over settings defaults, validated (ParameterError on a bad value)."""
    defaults: dict[str, Any] = {
        "api_url": settings.api_url,
        "total": settings.total,
        "batch_size": settings.batch_size,
        "pages_per_batch": settings.pages_per_batch,
        "seed": settings.seed,
        "locale": settings.locale,
        "birthday_start": settings.birthday_start,
        "birthday_end": settings.birthday_end,
        "reference_date": datetime.now(UTC).date(),
        "data_dir": settings.data_dir,
        "warehouse": settings.warehouse,
        "landing_url": settings.landing_url,
        "window": None,
        "report_json": None,
    }
    unknown = sorted(set(given) - set(defaults))
    if unknown:
        raise ParameterError(f"unknown parameter(s): {', '.join(unknown)}")
    defaults.update(window_defaults(given.get("window")))
    values = {
        name: given[name] if given.get(name) is not None else default for name, default in defaults.items()
    }
    return RunParameters.parse(**values)


def window_defaults(key: object) -> dict[str, Any]:
    """What a window implies unless given: its seed, its birthday range or its day as the reference date."""
    if not isinstance(key, str):
        return {}
    try:
        window = LoadWindow.parse(key)
    except ValueError as exc:
        raise ParameterError(f"--window: {exc}") from None
    if window.kind == "daily":
        return {"seed": window.seed, "reference_date": window.start}
    return {"seed": window.seed, "birthday_start": window.start, "birthday_end": window.end}
