"""`persons-pipeline`: run the flow (`run`), re-key (`rekey`), erase (`forget`), build the dbt models."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from contextlib import suppress
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
from flows.runtime.preflight import EnvironmentProblem, check_data_dir, keep_files_private
from flows.runtime.server import (
    LocalServerError,
    ensure_server,
    exit_if_server_dies,
    running_server,
    stop_server,
)
from flows.runtime.stopping import stop_on_signals, stop_signal
from flows.settings import PipelineSettings, get_settings

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
        if kind is bool:
            parser.add_argument(
                "--" + name.replace("_", "-"),
                dest=name,
                action="store_const",
                const=True,
                help=declared.description,
            )
            continue
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
    rekey = commands.add_parser(
        "rekey",
        help="reload the published state under the current key into a new generation",
        description="Re-key: PERSONS_HMAC_SECRET is the new key, PERSONS_PREVIOUS_HMAC_SECRET the one "
        "staging holds. Every published page is fetched again, keyed and published into a new generation, "
        "which replaces the old one in one transaction when it is complete (run options apply).",
    )
    add_parameter_options(rekey, _help_defaults())
    forget = commands.add_parser(
        "forget",
        help="erase persons (GDPR Art. 17) from every layer and the landed files",
        description="Erase the persons named in a JSON-lines file of identifying fields (firstname, "
        "lastname, email, phone, birthday) from staging, every layer on it, landing and the landed files; "
        "tombstones keep them from being loaded again. Prints counts only.",
    )
    forget.add_argument("--identity-file", required=True, type=Path, help="JSON lines, one person each")
    for name in ("data_dir", "warehouse", "landing_url"):
        forget.add_argument(
            "--" + name.replace("_", "-"), dest=name, help=RunParameters.model_fields[name].description
        )
    server = commands.add_parser(
        "server",
        help="the local Prefect server runs use when PREFECT_API_URL is not set",
        description="The local Prefect server (started on demand by `run`, reused by later runs).",
    )
    server.add_argument("action", choices=["status", "start", "stop"], help="show, start or stop it")
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
    """Validate every parameter and the key, then run the flow; exit code 1 if the run fails."""
    if args.command == "forget":
        try:
            get_settings().check_key_source()
        except ValueError as exc:  # a ValidationError is one
            return _refused(args.command, exc)
        if failed := _connect_prefect(get_settings(), args.command):
            return failed
        from flows.erasure import forget_command  # noqa: PLC0415 - Prefect only once its API is chosen

        return forget_command(args)
    if args.command == "rekey":
        args.rekey = True
    try:
        settings = get_settings()
        params = resolve_parameters(
            settings,
            **{name: getattr(args, name) for name in PARAMETER_NAMES},
        )
        check_data_dir(params.data_dir, settings.min_free_disk_mib)
        settings.check_key_source()  # a missing, empty or short key, before anything starts
    except (ParameterError, ValueError, EnvironmentProblem) as exc:
        return _refused(args.command, exc)
    # Prefect reads its API URL when first imported: choose it before anything imports Prefect.
    if failed := _connect_prefect(settings, args.command):
        return failed
    try:
        check_run_key(params)
    except (ParameterError, ValueError, EnvironmentProblem) as exc:
        return _refused(args.command, exc)

    from flows.pipeline import run_pipeline  # noqa: PLC0415 - Prefect import only once parameters are valid

    state = run_pipeline(**flow_arguments(params))
    if state.is_completed():
        return EXIT_OK
    message = " ".join((state.message or "").split())  # one line, whatever the exception text held
    print(f"persons-pipeline run: {(state.name or 'failed').lower()}: {message}", file=sys.stderr)
    return EXIT_FAILED


def _refused(command: str, exc: Exception) -> int:
    """One line on stderr, exit code 2: nothing was started."""
    print(f"persons-pipeline {command}: error: {_one_line(exc)}", file=sys.stderr)
    return EXIT_USAGE


def check_run_key(params: RunParameters) -> None:
    """Refuse a key other than the one staging holds, or another page size, before any request."""
    from flows.generations import (  # noqa: PLC0415 - Prefect import only once parameters are valid
        check_publication,
    )
    from flows.targets import make_warehouse, resolve_targets  # noqa: PLC0415

    settings = get_settings()
    secret = settings.person_key_secret()
    settings.require_real_secret(secret)
    targets = resolve_targets(settings, params)
    data_dir = params.data_dir.resolve()
    if targets.warehouse == "duckdb" and not (data_dir / "warehouse.duckdb").exists():
        return
    try:
        # A look, not a wait: while another run holds the file, the run itself checks once it has its turn.
        looking = settings.model_copy(update={"duckdb_lock_timeout_s": 0})
        warehouse = make_warehouse(targets, data_dir, looking)
        warehouse.open()
    except EnvironmentProblem:
        raise  # a damaged warehouse file: named, with what to do
    except Exception:
        return  # the run itself reports what it cannot reach
    try:
        check_publication(warehouse, secret, params)
    finally:
        warehouse.close()


def _connect_prefect(settings: PipelineSettings, command: str) -> int:
    """0 once a Prefect API is there for the command's flow run; else one line and exit code 1."""
    try:
        use_prefect_api(settings)
    except LocalServerError as exc:
        print(f"persons-pipeline {command}: error: {exc}", file=sys.stderr)
        return EXIT_FAILED
    return EXIT_OK


def use_prefect_api(settings: PipelineSettings) -> None:
    """PREFECT_API_URL as configured, else the local server (started now if it is not running)."""
    if os.environ.get("PREFECT_API_URL"):
        return
    state, started = ensure_server(
        settings.prefect_server_home, settings.prefect_server_port, settings.prefect_server_start_timeout_s
    )
    os.environ["PREFECT_API_URL"] = state.api_url
    exit_if_server_dies(state)
    verb = "started" if started else "running"
    print(
        f"Prefect: local server {verb} at {state.url} (stop it with `persons-pipeline server stop`)",
        file=sys.stderr,
    )


def server_command(args: argparse.Namespace) -> int:
    """`persons-pipeline server status|start|stop`."""
    settings = get_settings()
    home = settings.prefect_server_home
    try:
        if args.action == "start":
            state, started = ensure_server(
                home, settings.prefect_server_port, settings.prefect_server_start_timeout_s
            )
            print(f"{'started' if started else 'running'}: {state.url} (pid {state.pid}, home {home})")
        elif args.action == "stop":
            stopped = stop_server(home)
            print(f"stopped: {stopped.url} (pid {stopped.pid})" if stopped else "not running")
        else:
            found = running_server(home)
            print(f"running: {found.url} (pid {found.pid}, home {home})" if found else "not running")
            return EXIT_OK if found else 3
    except LocalServerError as exc:
        print(f"persons-pipeline server: error: {exc}", file=sys.stderr)
        return EXIT_FAILED
    return EXIT_OK


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
        return f"{name}: {first['msg'].removeprefix('Value error, ')}"
    return str(exc).splitlines()[0]


def exit_now(code: int) -> None:
    """End the process now: what Prefect buffered (logs, events) is sent first, for a few seconds at most;
    no thread the stop interrupted is waited for (one may wait for an import the signal cut short)."""
    if "prefect" in sys.modules:
        from prefect.events.worker import EventsWorker  # noqa: PLC0415 - only where Prefect ran
        from prefect.logging.handlers import APILogWorker  # noqa: PLC0415

        with suppress(Exception):
            APILogWorker.drain_all(timeout=3)
            EventsWorker.drain_all(timeout=3)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script."""
    args = build_parser().parse_args(argv)
    keep_files_private()
    if args.command == "server":
        return server_command(args)
    try:
        with stop_on_signals():  # SIGTERM or Ctrl-C: the run ends at once (flows.runtime.stopping)
            if args.command == "build-models":
                return build_models_command(args)
            return run_command(args)
    except BaseException:  # a stop arrives as Prefect's TerminationSignal, KeyboardInterrupt or SystemExit
        if (stopped := stop_signal()) is None:
            raise
        print(
            f"persons-pipeline {args.command}: stopped by {stopped.name}: nothing half-done was published; "
            "run the same command again to complete it",
            file=sys.stderr,
        )
        exit_now(128 + stopped.value)
        return 128 + stopped.value  # not reached


if __name__ == "__main__":
    sys.exit(main())
