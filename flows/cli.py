"""`persons-pipeline`: run the flow with parameters, or serve the Faker API twin."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from datetime import date
from typing import Any, NoReturn

from pydantic import ValidationError

from flows.plan import ParameterError, RunParameters, resolve_parameters
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


def build_parser() -> OneLineParser:
    """The command line: `run` (every flow parameter is an option) and `twin`."""
    parser = OneLineParser(prog="persons-pipeline", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True, parser_class=OneLineParser)
    run = commands.add_parser(
        "run", help="run the pipeline flow once", description="Run the pipeline flow once."
    )
    run.add_argument("--api-url", help="Faker API base URL (default https://fakerapi.it/api/v2)")
    run.add_argument("--total", type=int, help="persons to extract (default 30000)")
    run.add_argument("--batch-size", type=int, help="persons per API request, at most 1000 (default 1000)")
    run.add_argument(
        "--pages-per-batch", type=int, help="pages landed, validated and merged together (default 200)"
    )
    run.add_argument("--seed", type=int, help="run seed; each page's _seed derives from it (default 42)")
    run.add_argument("--locale", help="Faker locale such as en_US or de_DE (default en_US)")
    run.add_argument("--birthday-start", type=iso_date, help="earliest birthday requested, YYYY-MM-DD")
    run.add_argument("--birthday-end", type=iso_date, help="latest birthday requested, YYYY-MM-DD")
    run.add_argument(
        "--reference-date", type=iso_date, help="date ages are computed at (default: today, UTC)"
    )
    run.add_argument(
        "--data-dir", help="folder for landing files, warehouse, docs and reports (default ./data)"
    )
    run.add_argument("--warehouse", help="duckdb or snowflake (default: the environment's, duckdb locally)")
    run.add_argument(
        "--landing-url", help="folder or s3://bucket/prefix to land files in (default: the environment's)"
    )
    run.add_argument(
        "--window",
        help="load one window and record it: daily:YYYY-MM-DD or birthdays:YYYY-MM-DD..YYYY-MM-DD "
        "(sets seed and dates unless given)",
    )
    run.add_argument("--report-json", help="also write the report as JSON to this path")
    twin = commands.add_parser(
        "twin", help="serve the offline Faker API twin", description="Serve the Faker API twin."
    )
    from flows.faker_twin import add_twin_arguments  # noqa: PLC0415 - twin deps only for this command

    add_twin_arguments(twin)
    return parser


def run_command(args: argparse.Namespace) -> int:
    """Validate every parameter, then run the flow; exit code 1 if the run fails."""
    try:
        settings = get_settings()
        params = resolve_parameters(
            settings,
            **{name: getattr(args, name) for name in RunParameters.model_fields if hasattr(args, name)},
        )
    except (ParameterError, ValueError) as exc:
        message = _one_line(exc)
        print(f"persons-pipeline run: error: {message}", file=sys.stderr)
        return EXIT_USAGE

    from flows.pipeline import persons_pipeline  # noqa: PLC0415 - Prefect import only once parameters are valid

    state = persons_pipeline(**flow_arguments(params), return_state=True)
    if state.is_completed():
        return EXIT_OK
    print(f"persons-pipeline run: {(state.name or 'failed').lower()}: {state.message}", file=sys.stderr)
    return EXIT_FAILED


def flow_arguments(params: RunParameters) -> dict[str, Any]:
    """RunParameters as the flow's keyword arguments."""
    return {
        "api_url": params.api_url,
        "total": params.total,
        "batch_size": params.batch_size,
        "pages_per_batch": params.pages_per_batch,
        "seed": params.seed,
        "locale": params.locale,
        "birthday_start": params.birthday_start,
        "birthday_end": params.birthday_end,
        "reference_date": params.reference_date,
        "data_dir": str(params.data_dir),
        "warehouse": params.warehouse,
        "landing_url": params.landing_url,
        "window": params.window,
        "report_json": str(params.report_json) if params.report_json else None,
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
    if args.command == "twin":
        from flows.faker_twin import serve_from_args  # noqa: PLC0415

        return serve_from_args(args)
    return run_command(args)


if __name__ == "__main__":
    sys.exit(main())
