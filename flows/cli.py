"""persons-pipeline: extract persons from the Faker API, anonymise, land, validate, publish and report.

Commands: run (one run of the pipeline), rekey (re-key the published state), forget (erase persons, GDPR Art.
17), build-models (the dbt layers above staging), status (what the warehouse publishes now), history (the last
runs), serve (the run's pages over http), server (the local Prefect server), completion (a shell's
completion script).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import asdict
from datetime import date
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any, Literal, NoReturn, get_args, get_origin

from pydantic import ValidationError

from flows.parameters import (
    PARAMETER_NAMES,
    UNSET_MEANS,
    ParameterError,
    RunDefaults,
    RunParameters,
    flow_annotation,
    resolve_parameters,
)
from flows.runtime.docs_server import stop_docs_server
from flows.runtime.preflight import EnvironmentProblem, check_data_dir, keep_files_private
from flows.runtime.server import (
    LocalServerError,
    ensure_server,
    exit_if_server_dies,
    running_server,
    stop_server,
)
from flows.runtime.stopping import stop_on_signals, stop_signal
from flows.runtime.terminal import LOG_FORMATS, LogFormat, configure_terminal
from flows.settings import PipelineSettings, get_settings, variable_of

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


def add_parameter_options(
    parser: argparse.ArgumentParser, defaults: RunDefaults, skip: tuple[str, ...] = ()
) -> None:
    """One `--name` option per run parameter, typed and explained by its declaration."""
    for name, declared in RunParameters.model_fields.items():
        if name in skip:
            continue
        base = flow_annotation(name)
        kind = next(member for member in get_args(base) if member is not type(None))
        default = getattr(defaults, name, None)
        shown = f" (default {default})" if default is not None else ""
        if default is None and name in UNSET_MEANS:
            shown = f" (default: {UNSET_MEANS[name]})"
        if get_origin(kind) is Literal:
            parser.add_argument(
                "--" + name.replace("_", "-"),
                dest=name,
                choices=get_args(kind),
                help=f"{declared.description}{shown}",
            )
            continue
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


def add_output_options(parser: argparse.ArgumentParser) -> None:
    """How a command that runs a flow shows its progress (flows.runtime.terminal)."""
    parser.add_argument(
        "--log-format",
        choices=LOG_FORMATS,
        default="text",
        help="text: progress and one line per batch (default); verbose: every log line as Prefect prints "
        "it; json: every log line as a JSON object",
    )
    parser.add_argument(
        "-v",
        "--verbose",
        dest="log_format",
        action="store_const",
        const="verbose",
        help="--log-format verbose",
    )


def add_place_options(parser: argparse.ArgumentParser, names: tuple[str, ...]) -> None:
    """The options that say which warehouse and data folder a command works on."""
    for name in names:
        declared = RunParameters.model_fields[name]
        kind = get_args(flow_annotation(name))[0]
        parser.add_argument(
            "--" + name.replace("_", "-"),
            dest=name,
            choices=get_args(kind) if get_origin(kind) is Literal else None,
            help=f"{declared.description} (default: {UNSET_MEANS[name]})",
        )


def build_parser() -> OneLineParser:
    """The command line (`run`'s options are the flow's parameters, generated from their declaration)."""
    parser = OneLineParser(
        prog="persons-pipeline", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {package_version()}")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=OneLineParser)
    _run_commands(commands)
    forget = commands.add_parser(
        "forget",
        help="erase persons (GDPR Art. 17) from every layer and the landed files",
        description="Erase the persons named in a JSON-lines file of identifying fields (firstname, "
        "lastname, email, phone, birthday) from staging, every layer on it, landing and the landed files; "
        "tombstones keep them from being loaded again. Prints counts only.",
    )
    forget.add_argument("--identity-file", required=True, type=Path, help="JSON lines, one person each")
    add_place_options(forget, ("data_dir", "warehouse", "landing_url"))
    add_output_options(forget)
    models = commands.add_parser(
        "build-models",
        help="build the dbt models above staging (transform, analytics, reporting) if they changed",
        description="dbt build of the models above staging and their docs, if they changed.",
    )
    models.add_argument("--force", action="store_true", help="build even if the models did not change")
    add_place_options(models, ("warehouse", "data_dir"))
    add_output_options(models)
    _reading_commands(commands)
    server = commands.add_parser(
        "server",
        help="the local Prefect server runs use when PREFECT_API_URL is not set",
        description="The local Prefect server (started on demand by `run`, reused by later runs).",
    )
    server.add_argument("action", choices=["status", "start", "stop"], help="show, start or stop it")
    completion = commands.add_parser(
        "completion",
        help="print the shell's completion script",
        description="Print a completion script: e.g. `persons-pipeline completion bash > "
        "~/.local/share/bash-completion/completions/persons-pipeline`, or add "
        '`eval "$(persons-pipeline completion zsh)"` to ~/.zshrc.',
    )
    completion.add_argument("shell", choices=["bash", "zsh", "tcsh"], help="the shell")
    return parser


def _run_commands(commands: Any) -> None:
    """`run` and `rekey`: every flow parameter is an option."""
    run = commands.add_parser(
        "run", help="run the pipeline once", description="Run the pipeline once (each option is a parameter)."
    )
    add_parameter_options(run, _help_defaults())
    add_output_options(run)
    rekey = commands.add_parser(
        "rekey",
        help="reload the published state under the current key into a new generation",
        description="Re-key: PERSONS_HMAC_SECRET is the new key, PERSONS_PREVIOUS_HMAC_SECRET the one "
        "staging holds. Every published page is fetched again, keyed and published into a new generation, "
        "which replaces the old one in one transaction when it is complete (the run's options apply).",
    )
    add_parameter_options(rekey, _help_defaults(), skip=("rekey",))
    add_output_options(rekey)


def _reading_commands(commands: Any) -> None:
    """`status`, `history` and `serve`: they read what runs made, and change nothing."""
    status = commands.add_parser(
        "status",
        help="what the warehouse publishes now: key, reference date, persons, freshness, the last runs",
        description="The published state (generation, key fingerprint, reference date, persons), its "
        "freshness, the persons held back, and the last runs with their verdicts (read-only; no Prefect).",
    )
    history = commands.add_parser(
        "history",
        help="the last runs: verdict, batches, persons, quarantined",
        description="The last runs on the warehouse, newest first (read-only; no Prefect).",
    )
    history.add_argument("-n", "--runs", type=int, default=10, help="how many runs (default 10)")
    for reader in (status, history):
        add_place_options(reader, ("data_dir", "warehouse"))
        reader.add_argument("--json", action="store_true", help="as one JSON document")
    serve = commands.add_parser(
        "serve",
        help="serve the run pages (report pages, data docs, dbt docs) over http on 127.0.0.1",
        description="Serve the data folder's reports/ and data_docs/ read-only on 127.0.0.1, in the "
        "background (one server for all your data folders; a run landing in a local folder starts it too, so "
        "the Prefect UI's artifact links open).",
    )
    add_place_options(serve, ("data_dir",))
    serve.add_argument("--port", type=int, help="its port (default: PERSONS_PAGES_SERVER_PORT, 8765)")
    serve.add_argument("--stop", action="store_true", help="stop it")


@contextmanager
def terminal(log_format: LogFormat) -> Iterator[None]:
    """The console chosen for a command that runs a flow (once Prefect is imported), closed after it."""
    console = configure_terminal(log_format)
    try:
        yield
    finally:
        console.close()


def package_version() -> str:
    """The installed pipeline's version."""
    try:
        return version("persons-pipeline")
    except PackageNotFoundError:  # run from a checkout that was not installed
        return "unknown"


def status_command(args: argparse.Namespace) -> int:
    """`status` / `history`: read the warehouse (no Prefect); exit 1 if it cannot be read."""
    from flows.operations.status import read_history, read_status, render_history, render_status  # noqa: PLC0415
    from flows.targets import make_warehouse, resolve_targets  # noqa: PLC0415

    try:
        settings = get_settings()
        params = resolve_parameters(settings, data_dir=args.data_dir, warehouse=args.warehouse)
        targets = resolve_targets(settings, params)
        looking = without_lock_wait(settings)
        with make_warehouse(targets, params.data_dir.resolve(), looking, read_only=True) as warehouse:
            if args.command == "history":
                runs = read_history(warehouse, args.runs)
                document: Any = [{**asdict(run), "verdict": run.verdict} for run in runs]
                text = render_history(runs)
            else:
                status = read_status(warehouse, settings.monitoring.freshness_hours)
                document, text = status.to_dict(), render_status(status)
    except (ParameterError, ValueError, EnvironmentProblem) as exc:
        return _refused(args.command, exc)
    except Exception as exc:  # the warehouse in use by a run, or unreachable
        print(f"persons-pipeline {args.command}: error: {_reading_problem(exc)}", file=sys.stderr)
        return EXIT_FAILED
    print(json.dumps(document, indent=2) if args.json else text)
    return EXIT_OK


def _reading_problem(exc: Exception) -> str:
    """Why the warehouse could not be read, in one line."""
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    if "lock" in text.lower():
        return f"the warehouse is being written by a run right now; try again when it ends ({text})"
    return f"the warehouse cannot be read ({type(exc).__name__}: {text})"


def serve_command(args: argparse.Namespace) -> int:
    """`serve`: the data folder's pages over http (the server starts in the background, or runs already)."""
    from flows.runtime.docs_server import (  # noqa: PLC0415
        ensure_docs_server,
        register_folder,
        stop_docs_server,
    )

    settings = get_settings()
    home = settings.pages.server_home
    if args.stop:
        stopped = stop_docs_server(home)
        print(f"stopped: {stopped.url} (pid {stopped.pid})" if stopped else "not running")
        return EXIT_OK
    data_dir = Path(args.data_dir or settings.data_dir).resolve()
    identifier = register_folder(home, data_dir)
    try:
        server = ensure_docs_server(home, args.port if args.port is not None else settings.pages.server_port)
    except RuntimeError as exc:
        print(f"persons-pipeline serve: error: {exc}", file=sys.stderr)
        return EXIT_FAILED
    print(f"serving {data_dir} (read-only, 127.0.0.1; stop it with `persons-pipeline serve --stop`):")
    print(f"  data docs:    {server.url}/{identifier}/data_docs/index.html")
    print(f"  model docs:   {server.url}/{identifier}/data_docs/dbt/index.html")
    print(f"  report pages: {server.url}/{identifier}/reports/<run id>/report.html")
    return EXIT_OK


def completion_command(args: argparse.Namespace) -> int:
    """`completion <shell>`: the completion script, generated from this parser (shtab)."""
    import shtab  # noqa: PLC0415 - only for this command

    print(shtab.complete(build_parser(), shell=args.shell))
    return EXIT_OK


def build_models_command(args: argparse.Namespace) -> int:
    """Run the models flow; exit code 1 if a model or test failed."""
    from flows.operations.models import persons_models  # noqa: PLC0415 - Prefect import only when needed

    with terminal(args.log_format):
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
        return forget(args)
    if args.command == "rekey":
        args.rekey = True
    try:
        settings = get_settings()
        params = resolve_parameters(
            settings,
            **{name: getattr(args, name) for name in PARAMETER_NAMES},
        )
        check_data_dir(params.data_dir, settings.runs.min_free_disk_mib)
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

    from flows.run.pipeline import run_pipeline  # noqa: PLC0415 - Prefect import only once parameters are valid

    with terminal(args.log_format):
        state = run_pipeline(**flow_arguments(params))
    if state.is_completed():
        return EXIT_OK
    message = " ".join((state.message or "").split())  # one line, whatever the exception text held
    message = re.sub(r"^Flow run encountered an exception: (PipelineFailed: )?", "", message)
    print(f"persons-pipeline run: {(state.name or 'failed').lower()}: {message}", file=sys.stderr)
    return EXIT_FAILED


def forget(args: argparse.Namespace) -> int:
    """`forget`: check the key, connect to Prefect, erase the persons of the identity file."""
    try:
        get_settings().check_key_source()
    except ValueError as exc:  # a ValidationError is one
        return _refused(args.command, exc)
    if failed := _connect_prefect(get_settings(), args.command):
        return failed
    from flows.operations.forget import forget_command  # noqa: PLC0415 - Prefect only once its API is chosen

    with terminal(args.log_format):
        return forget_command(args)


def without_lock_wait(settings: PipelineSettings) -> PipelineSettings:
    """The settings for a look at the DuckDB file: no wait for another process's write lock."""
    return settings.model_copy(update={"duckdb": settings.duckdb.model_copy(update={"lock_timeout_s": 0})})


def _refused(command: str, exc: Exception) -> int:
    """One line on stderr, exit code 2: nothing was started."""
    print(f"persons-pipeline {command}: error: {_one_line(exc)}", file=sys.stderr)
    return EXIT_USAGE


def check_run_key(params: RunParameters) -> None:
    """Refuse a key other than the one staging holds, or another page size, before any request."""
    from flows.run.publication import (  # noqa: PLC0415 - Prefect import only once parameters are valid
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
        warehouse = make_warehouse(targets, data_dir, without_lock_wait(settings))
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
        settings.prefect_server.home, settings.prefect_server.port, settings.prefect_server.start_timeout_s
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
    home = settings.prefect_server.home
    try:
        if args.action == "start":
            state, started = ensure_server(
                home, settings.prefect_server.port, settings.prefect_server.start_timeout_s
            )
            print(f"{'started' if started else 'running'}: {state.url} (pid {state.pid}, home {home})")
        elif args.action == "stop":
            stopped = stop_server(home)
            print(f"stopped: {stopped.url} (pid {stopped.pid})" if stopped else "not running")
            pages = stop_docs_server(settings.pages.server_home)  # the pages server goes with it
            if pages:
                print(f"stopped the pages server: {pages.url} (pid {pages.pid})")
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
        name = variable_of(tuple(first["loc"]))
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


READING_COMMANDS = {"server", "status", "history", "serve", "completion"}


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script."""
    args = build_parser().parse_args(argv)
    keep_files_private()
    # A pipeline of personal data reports no usage to vendors, and their banners are not the run's output.
    for switch in ("DO_NOT_TRACK", "PREFECT_SERVER_ANALYTICS_ENABLED", "GX_ANALYTICS_ENABLED"):
        os.environ.setdefault(switch, "1" if switch == "DO_NOT_TRACK" else "false")
    if args.command in READING_COMMANDS:
        handler = {
            "server": server_command,
            "status": status_command,
            "history": status_command,
            "serve": serve_command,
            "completion": completion_command,
        }[args.command]
        return handler(args)
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
