"""The run parameters, declared once.

`RunDefaults` names each parameter that has a configurable default, with its type, bounds and help; the
settings inherit it (so every one is also a `PERSONS_<NAME>` variable). `RunParameters` adds the parameters
that are per run only. The CLI options (`flows.cli`) and the flow's signature (`flows.run.pipeline`) are
generated from `RunParameters.model_fields`; `tests/unit/test_parameters.py` checks they cannot drift.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar, get_args, get_type_hints
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from flows.windows import LoadWindow

DEFAULT_API_URL = "https://fakerapi.it/api/v2"
MAX_PAGE_SIZE = 1000
F = TypeVar("F", bound=Callable[..., Any])


class ParameterError(ValueError):
    """A run parameter was refused; the message is one line naming the option."""


class RunDefaults(BaseModel):
    """Run parameters whose default is a setting: name, type, bounds and help, in one place."""

    api_url: str = Field(DEFAULT_API_URL, description="Faker API base URL, without /persons")
    total: int = Field(30_000, ge=1, le=100_000_000, description="persons to extract in one run")
    page_size: int = Field(
        MAX_PAGE_SIZE, ge=1, le=MAX_PAGE_SIZE, description="persons per API request (the API caps it at 1000)"
    )
    pages_per_batch: int = Field(
        100, ge=1, le=1000, description="API pages landed, validated and merged together as one batch"
    )
    shards: int = Field(
        1,
        ge=1,
        le=64,
        description="shards in flight: 1 fetches in the run's own process; more fans the pages out as "
        "persons-shard flow runs on the work pool while this run publishes what they land",
    )
    shard_pages: int = Field(
        500, ge=1, le=100_000, description="API pages per shard (whole batches; with --shards above 1)"
    )
    seed: int = Field(42, ge=0, le=2**31 - 1, description="run seed; every page's _seed is derived from it")
    locale: str = Field("en_US", pattern=r"^[a-z]{2,3}_[A-Z]{2}$", description="Faker locale, e.g. de_DE")
    birthday_start: date | None = Field(None, description="earliest birthday requested, YYYY-MM-DD")
    birthday_end: date | None = Field(None, description="latest birthday requested, YYYY-MM-DD")
    data_dir: Path = Field(
        Path("data"), description="folder for landing files, warehouse, data docs and reports"
    )
    warehouse: Literal["duckdb", "snowflake"] | None = Field(
        None, description="warehouse engine (unset: the environment's, duckdb when local)"
    )
    landing_url: str | None = Field(
        None,
        description="folder or s3://bucket/prefix to land files in (unset: the environment's landing place)",
    )

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


class RunParameters(RunDefaults):
    """The validated parameters of one run: the defaults above plus what is given per run only."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    reference_date: date = Field(
        default_factory=lambda: datetime.now(UTC).date(),
        description="date ages are computed at (default: today, UTC)",
    )
    window: str | None = Field(
        None,
        pattern=r"^(daily:\d{4}-\d{2}-\d{2}|birthdays:\d{4}-\d{2}-\d{2}\.\.\d{4}-\d{2}-\d{2})$",
        description="load one window and record it: daily:YYYY-MM-DD or birthdays:YYYY-MM-DD..YYYY-MM-DD "
        "(sets seed and dates unless given)",
    )
    report_json: Path | None = Field(None, description="also write the report as JSON to this path")
    rekey: bool = Field(
        False,
        description="re-key: reload every published page under the current key (and reference date) into a "
        "new generation, switched over when complete",
    )

    @field_validator("window")
    @classmethod
    def _known_window(cls, value: str | None) -> str | None:
        if value is not None:
            LoadWindow.parse(value)
        return value

    @model_validator(mode="after")
    def _birthdays_are_ordered(self) -> RunParameters:
        if self.birthday_start and self.birthday_end and self.birthday_start > self.birthday_end:
            raise ValueError("birthday_start must not be after birthday_end")
        return self

    @property
    def load_window(self) -> LoadWindow | None:
        """The extraction window this run loads, if it loads one."""
        return LoadWindow.parse(self.window) if self.window else None

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


PARAMETER_NAMES = tuple(RunParameters.model_fields)


def resolve_parameters(defaults: RunDefaults, **given: Any) -> RunParameters:
    """Given values (None = not given) over the configured defaults and a window's, validated."""
    unknown = sorted(set(given) - set(PARAMETER_NAMES))
    if unknown:
        raise ParameterError(f"unknown parameter(s): {', '.join(unknown)}")
    values: dict[str, Any] = {name: getattr(defaults, name) for name in RunDefaults.model_fields}
    values.update(window_defaults(given.get("window")))
    values.update({name: value for name, value in given.items() if value is not None})
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


# Parameters a flow run leaves unset (None) unless they are given, and what applies then: the worker's setting
# (PERSONS_<NAME>), so that one deployment serves every environment, or what a window implies.
UNSET_MEANS = {
    "api_url": f"the worker's PERSONS_API_URL, else {DEFAULT_API_URL}",
    "seed": "the window's own seed when a window is given, else the worker's PERSONS_SEED, else 42",
    "data_dir": "the worker's PERSONS_DATA_DIR, else ./data",
    "warehouse": "the worker's PERSONS_WAREHOUSE, else the environment's: duckdb locally, snowflake in dev "
    "and prod",
    "landing_url": "the worker's PERSONS_LANDING_URL, else the environment's: <data_dir>/landing locally, "
    "s3://persons-landing-<env>/persons",
}


def flow_annotation(name: str) -> Any:
    """A parameter's type as a flow or CLI takes it: optional (None = the setting), paths as text."""
    annotation = RunParameters.model_fields[name].annotation
    members = [member for member in get_args(annotation) if member is not type(None)] or [annotation]
    members = [str if member is Path else member for member in members]
    return members[0] | None if len(members) == 1 else annotation


def flow_parameter(name: str, optional: bool = False) -> inspect.Parameter:
    """One parameter of the flow's signature: its type with its bounds, its default and its help, so that
    Prefect's parameter schema (the run form, and the API's check when a run is created) carries them;
    `optional`: None by default whatever the declared default (the called flow's default then applies)."""
    declared = RunParameters.model_fields[name]
    kind = get_args(flow_annotation(name))[0]
    optional = optional or name in UNSET_MEANS
    optional = optional or declared.default is None or declared.default_factory is not None
    annotation: Any = (kind | None) if optional else kind
    if declared.metadata:  # bounds and patterns travel in the type: Prefect's schema keeps them from there
        annotation = Annotated[annotation, *declared.metadata]
    default = None if optional else declared.default
    description = declared.description or name
    shown = declared.default if declared.default_factory is None and not declared.is_required() else None
    if name in UNSET_MEANS:
        description += f" (default: {UNSET_MEANS[name]})"
    elif optional and shown is not None:
        description += f" (default: {shown})"
    return inspect.Parameter(
        name,
        inspect.Parameter.KEYWORD_ONLY,
        default=Field(default, description=description),
        annotation=annotation,
    )


def flow_defaults() -> dict[str, Any]:
    """The flow's own defaults: what a deployment's run uses for a parameter it was not given."""
    return {
        name: parameter.default.default
        for name, parameter in ((name, flow_parameter(name)) for name in PARAMETER_NAMES)
    }


def with_run_parameters(function: F) -> F:
    """Give a `**parameters` function the run parameters as its signature (what Prefect and its UI read)."""
    parameters = [flow_parameter(name) for name in PARAMETER_NAMES]
    function.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
        parameters, return_annotation=dict[str, Any]
    )
    function.__annotations__ = {
        **{parameter.name: parameter.annotation for parameter in parameters},
        "return": dict[str, Any],
    }
    return function


def with_declared_parameters(**declared_as: str) -> Callable[[F], F]:
    """Give a flow's parameters that are run parameters (by name, or as `declared_as` maps them) the type,
    bounds and help of their declaration, optional (None: the run's own default applies)."""

    def decorate(function: F) -> F:
        signature = inspect.signature(function)
        hints = get_type_hints(function, include_extras=True)  # the module's own annotations, evaluated
        parameters = []
        for own in signature.parameters.values():
            source = declared_as.get(own.name, own.name)
            if source in PARAMETER_NAMES:
                template = flow_parameter(source, optional=True)
                own = own.replace(annotation=template.annotation, default=template.default)  # noqa: PLW2901
            else:
                own = own.replace(annotation=hints.get(own.name, own.annotation))  # noqa: PLW2901
            parameters.append(own)
        function.__signature__ = signature.replace(parameters=parameters)  # type: ignore[attr-defined]
        function.__annotations__ = {
            **{parameter.name: parameter.annotation for parameter in parameters},
            "return": signature.return_annotation,
        }
        return function

    return decorate
