"""`persons-pipeline`: run the flow with parameters, or build the dbt models."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from datetime import date
from pathlib import Path
from typing import Any, NoReturn, get_args

from pydantic import ValidationError

from flows.parameters import (
    PARAMETER_NAMES,
    ParameterError,
    RunDefaults,
    RunParameters,
    flow_annotation,
    resolve_parameters,
)
from flows.settings import get_settings

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


class OneLineParser(argparse.ArgumentParser):
    """Argument errors as a single line, not usage plus error."""

    def error(self, message: str) -> NoReturn:
        """Print `<prog>: error: <message>` and exit 2."""
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\n")


def iso_date(text: str) -> date:
    """A YYYY-MM-DD date for argparse."""
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date in YYYY-MM-DD form") from None


def add_parameter_options(parser: argparse.ArgumentParser, defaults: RunDefaults) -> None:
    """One `--name` option per run parameter, typed and explained by its declaration."""
    for name, declared in RunParameters.model_fields.items():
        base = flow_annotation(name)
        kind = next(member for member in get_args(base) if member is not type(None))
        default = getattr(defaults, name, None)
        shown = f" (default {default})" if default is not None else ""
        parser.add_argument(
            "--" + name.replace("_", "-"),
            dest=name,
            type=iso_date if kind is date else kind if kind in (int, float) else str,
            help=f"{declared.description}{shown}",
        )
    # Deprecated: it always meant the page size, while a batch is --pages-per-batch pages.
    parser.add_argument("--batch-size", dest="page_size", type=int, help="deprecated alias of --page-size")


def build_parser() -> OneLineParser:
    """The command line: `run` (every flow parameter is an option) and `build-models`."""
    parser = OneLineParser(prog="persons-pipeline", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True, parser_class=OneLineParser)
    run = commands.add_parser(
        "run", help="run the pipeline flow once", description="Run the pipeline flow once."
    )
    add_parameter_options(run, _help_defaults())
    models = commands.add_parser(
        "build-models",
        help="build the dbt models above staging (transform, analytics, reporting) if they changed",
        description="dbt build of the models above staging and their docs, if they changed.",
    )
    models.add_argument("--force", action="store_true", help="build even if the models did not change")
    models.add_argument("--warehouse", choices=["duckdb", "snowflake"], help="the warehouse engine")
    models.add_argument("--data-dir", help="root folder of the warehouse file, the docs and dbt's output")
    return parser


def build_models_command(args: argparse.Namespace) -> int:
    """Run the models flow; exit code 1 if a model or test failed."""
    from flows.analytics.flow import persons_models  # noqa: PLC0415 - Prefect import only when needed

    state = persons_models(
        force=args.force, warehouse=args.warehouse, data_dir=args.data_dir, return_state=True
    )
    if state.is_completed():
        print(f"models: {state.result()}")
        return EXIT_OK
    print(
        f"persons-pipeline build-models: {(state.name or 'failed').lower()}: {state.message}", file=sys.stderr
    )
    return EXIT_FAILED


def _help_defaults() -> RunDefaults:
    """The configured defaults for the help texts; a bad setting is reported by `run`, not here."""
    try:
        return get_settings()
    except ValidationError:
        return RunDefaults()


def run_command(args: argparse.Namespace) -> int:
    """Validate every parameter, then run the flow; exit code 1 if the run fails."""
    try:
        settings = get_settings()
        params = resolve_parameters(
            settings,
            **{name: getattr(args, name) for name in PARAMETER_NAMES},
        )
    except (ParameterError, ValueError) as exc:
        message = _one_line(exc)
        print(f"persons-pipeline run: error: {message}", file=sys.stderr)
        return EXIT_USAGE

    from flows.pipeline import run_pipeline  # noqa: PLC0415 - Prefect import only once parameters are valid

    state = run_pipeline(**flow_arguments(params))
    if state.is_completed():
        return EXIT_OK
    print(f"persons-pipeline run: {(state.name or 'failed').lower()}: {state.message}", file=sys.stderr)
    return EXIT_FAILED


def flow_arguments(params: RunParameters) -> dict[str, Any]:
    """RunParameters as the flow's keyword arguments (paths as text, as a deployment would pass them)."""
    return {
        name: str(value) if isinstance(value, Path) else value
        for name, value in ((name, getattr(params, name)) for name in PARAMETER_NAMES)
    }


def _one_line(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        first = exc.errors()[0]
        name = "PERSONS_" + "_".join(str(part) for part in first["loc"]).upper()
        return f"{name}: {first['msg']}"
    return str(exc).splitlines()[0]


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script."""
    args = build_parser().parse_args(argv)
    if args.command == "build-models":
        return build_models_command(args)
    return run_command(args)


if __name__ == "__main__":
    sys.exit(main())
