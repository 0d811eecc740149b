"""What a run shows in a terminal: a progress display and one line per batch, or every log line as JSON.

The run logs structured events (`event=<name> key=value ...`, flows.run.context.log_event) and Prefect logs
its engine's lines. All of them go to the Prefect API as they are (the UI shows the whole log). The console
is a reader's view of the same records, chosen by `persons-pipeline run --log-format`:
- `text` (default): the events a person needs in words (the plan, each batch, the models, waits, restarts,
  warnings), a live progress display on a terminal (batch k of N, persons, persons per second, time left),
  no Prefect per-task state lines, no traceback for an expected refusal (a rejected batch, a failed run the
  CLI sums up, a stop signal); a real crash keeps its traceback;
- `verbose`: every line as Prefect prints it;
- `json`: every line as one JSON object (the event's fields as keys), for log shippers.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any, Literal, TextIO

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TextColumn,
    TimeRemainingColumn,
)
from rich.text import Text

LogFormat = Literal["text", "verbose", "json"]
LOG_FORMATS: tuple[str, ...] = ("text", "verbose", "json")
_EVENT = re.compile(r"^event=(\S+)")
_FIELD = re.compile(r'(\w+)=("(?:[^"\\]|\\.)*"|\S*)')
# Exceptions a run expects and words already (a rejected batch, a run that did not publish everything, an
# unreachable source, a refused parameter, a stop): their tracebacks say nothing a person needs.
EXPECTED_ERRORS = frozenset(
    {
        "BatchRejected",
        "PipelineFailed",
        "FakerApiError",
        "SourceUnreachable",
        "WorkerStopped",
        "ParameterError",
        "KeyMismatch",
        "PageSizeMismatch",
        "DbtFailed",
        "EnvironmentProblem",
        "WarehouseDamaged",
        "TerminationSignal",
        "KeyboardInterrupt",
    }
)
# Prefect engine lines that repeat what the run's own lines (or the CLI's verdict) already say.
_ENGINE_NOISE = re.compile(
    r"^(Beginning flow run|Finished in state|Running hook|Hook '|Created task run|Executing)"
)


def parse_event(message: str) -> tuple[str, dict[str, str]] | None:
    """(event, fields) of a structured line; None for any other message."""
    found = _EVENT.match(message)
    if found is None:
        return None
    fields = {}
    for key, value in _FIELD.findall(message[found.end() :]):
        fields[key] = json.loads(value) if value.startswith('"') else value
    return found.group(1), fields


def _count(value: str | None) -> str:
    """A count with thousands separators ("30,000"); as it came if it is no number."""
    try:
        return f"{int(value or 0):,}"
    except ValueError:
        return str(value)


def _batch(fields: Mapping[str, str]) -> str:
    number, batches = fields.get("batch_number"), fields.get("batches")
    return f"batch {number} of {batches}" if number and batches else f"batch {fields.get('batch_id', '?')}"


def _seconds(value: str | None) -> str:
    try:
        return f"{float(value or 0):.1f} s"
    except ValueError:
        return str(value)


# The events shown in words by default, one line each.
EVENT_LINES: dict[str, Callable[[Mapping[str, str]], str]] = {
    "run_planned": lambda f: (
        ""
        if f.get("batches") == "0"
        # nothing to fetch says it below
        else (
            f"planned: {_count(f.get('requested'))} persons to fetch in {f.get('batches')} batch(es) "
            f"of up to {f.get('pages_per_batch')} pages of {_count(f.get('page_size'))} "
            f"({_count(f.get('skipped_pages'))} pages published before; warehouse {f.get('warehouse')})"
        )
    ),
    "batch_merged": lambda f: (
        f"{_batch(f)} merged: {_count(f.get('persons'))} persons, {_count(f.get('quarantined'))} "
        f"quarantined, {_count(f.get('duplicates'))} duplicates ({_seconds(f.get('publish_s'))})"
    ),
    "batch_rejected": lambda f: (
        f"{_batch(f)} rejected by the validation gate: failed "
        f"{', '.join(str(f.get('failed_expectations', '')).split(','))}; "
        f"data docs: {f.get('data_docs')}"
    ),
    "batch_not_merged": lambda f: f"{_batch(f)} not merged: {f.get('error')}",
    "batch_ingest_failed": lambda f: f"{_batch(f)} not landed: {f.get('error')}",
    "batches_not_started": lambda f: f"{f.get('batches')} batch(es) not started: {f.get('reason')}",
    "nothing_to_fetch": lambda f: (
        f"nothing new to fetch: all {_count(f.get('skipped_pages'))} pages of this run were published "
        f"before ({_count(f.get('published'))} persons published); ask for more with --total, or other "
        "persons with --seed"
    ),
    "models_built": lambda f: (
        f"models: dbt built {f.get('models')} models and {f.get('tests')} tests ({f.get('status')}, "
        f"{_seconds(f.get('build_s'))})"
    ),
    "warehouse_slot_wait": lambda f: (
        f"waiting for the warehouse: held by {f.get('held_by')} since {f.get('since')}"
    ),
    "warehouse_slot_reclaimed": lambda f: f"warehouse slot of a dead run ({f.get('dead_run_id')}) freed",
    "abandoned_batches_held_back": lambda f: (
        f"{f.get('batches')} batch(es) a dead run loaded but never merged will be published again"
    ),
    "generation_switched": lambda f: (
        f"published state switched to generation {f.get('generation_id')} "
        f"({_count(f.get('persons'))} persons)"
    ),
    "worker_restarted": lambda f: f"raw-data worker restarted ({_batch(f)} fetched again)",
    "gate_restarted": lambda f: f"validation gate restarted (during {f.get('during')})",
    "erasure_files_rewritten": lambda f: f"landed files of earlier erasures rewritten: {f.get('rewritten')}",
}


def _view_line(message: str, record: logging.LogRecord) -> str | None:
    """Prefect's `View at <url>` as the run's one link to the UI."""
    if message.startswith("View at "):
        name = getattr(record, "flow_run_name", None)
        return f"Prefect: run {name!r} at {message.removeprefix('View at ')}" if name else None
    return None


def quiet_line(record: logging.LogRecord) -> str | None:
    """What the default console shows of a record: words for known events, warnings and errors in one line
    (an expected error without its traceback); None to show nothing."""
    message = record.getMessage()
    parsed = parse_event(message)
    if parsed is not None:
        event, fields = parsed
        if event in EVENT_LINES:
            return EVENT_LINES[event](fields) or None
    elif (view := _view_line(message, record)) is not None:
        return view
    if record.levelno < logging.WARNING:
        return None
    if record.name.startswith("prefect.task_runs") or _ENGINE_NOISE.match(message):
        return None  # a task's failure is told by the batch's own line; the run's by the CLI's verdict
    error = record.exc_info[1] if record.exc_info else None
    if error is not None and type(error).__name__ in EXPECTED_ERRORS:
        return None  # the run's own lines and the CLI's verdict say it, in words
    level = record.levelname.lower()
    return f"{level}: {message.splitlines()[0] if message else ''}"


class _Throughput(ProgressColumn):
    """Persons published per second so far."""

    def render(self, task: Task) -> Text:
        persons = int(task.fields.get("persons", 0))
        rate = persons / task.elapsed if task.elapsed else 0.0
        return Text(f"{persons:,} persons, {rate:,.0f}/s", style="progress.data.speed")


class QuietConsoleHandler(logging.Handler):
    """The default console: one line per known event, and a live progress display on a terminal."""

    def __init__(self, stream: TextIO, live: bool) -> None:
        super().__init__()
        self.console = Console(file=stream, highlight=False, soft_wrap=True)
        self._live = live
        self._progress: Progress | None = None
        self._task: Any = None

    def emit(self, record: logging.LogRecord) -> None:
        try:
            parsed = parse_event(record.getMessage())
            if parsed is not None:
                self._track(*parsed)
            line = quiet_line(record)
            if line is None:
                return
            self.console.print(Text(f"{time.strftime('%H:%M:%S')} {line}"))
            if record.exc_info and record.exc_info[1] is not None:  # a real crash keeps its traceback
                self.console.print(Text(logging.Formatter().formatException(record.exc_info)))
        except Exception:
            self.handleError(record)

    def _track(self, event: str, fields: Mapping[str, str]) -> None:
        """Feed the progress display from the run's events (a terminal only)."""
        if not self._live:
            return
        if event == "run_planned" and int(fields.get("batches") or 0) > 0:
            self._progress = Progress(
                TextColumn("batches"),
                BarColumn(),
                MofNCompleteColumn(),
                _Throughput(),
                TimeRemainingColumn(),
                console=self.console,
                transient=True,
            )
            self._task = self._progress.add_task("batches", total=int(fields["batches"]), persons=0)
            self._progress.start()
        elif self._progress is not None and event.startswith("batch_") and event != "batch_landed":
            persons = int(fields.get("persons") or 0) if event == "batch_merged" else 0
            self._progress.update(self._task, advance=1, persons=self._persons() + persons)
            if self._progress.finished:
                self.stop()

    def _persons(self) -> int:
        assert self._progress is not None
        return int(self._progress.tasks[0].fields.get("persons", 0))

    def stop(self) -> None:
        """End the progress display (the run's remaining lines print below it)."""
        if self._progress is not None:
            self._progress.stop()
            self._progress = None

    def close(self) -> None:
        self.stop()
        super().close()


class JsonLogHandler(logging.Handler):
    """Every record as one JSON object per line: time, level, logger, run ids, message, the event's fields."""

    def __init__(self, stream: TextIO) -> None:
        super().__init__()
        self.stream = stream

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.stream.write(json.dumps(json_record(record), ensure_ascii=False) + "\n")
            self.stream.flush()
        except Exception:
            self.handleError(record)


def json_record(record: logging.LogRecord) -> dict[str, Any]:
    """The JSON object of one log record (a structured event's fields become keys)."""
    message = record.getMessage()
    document: dict[str, Any] = {
        "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
        "level": record.levelname,
        "logger": record.name,
        "message": message,
    }
    for name in ("flow_run_id", "flow_run_name", "task_run_id", "task_run_name"):
        if (value := getattr(record, name, None)) is not None:
            document[name] = str(value)
    parsed = parse_event(message)
    if parsed is not None:
        document["event"] = parsed[0]
        document.update({key: value for key, value in parsed[1].items() if key not in document})
    if record.exc_info and record.exc_info[1] is not None:
        document["error"] = type(record.exc_info[1]).__name__
    return document


class Terminal:
    """The console a command uses while it runs; `close` puts Prefect's console back."""

    def __init__(self, handler: logging.Handler | None, replaced: list[logging.Handler]) -> None:
        self.handler, self._replaced = handler, replaced

    def close(self) -> None:
        """End the progress display and restore the console as it was."""
        root = logging.getLogger()
        if self.handler is not None:
            self.handler.close()
            root.removeHandler(self.handler)
        for handler in self._replaced:
            root.addHandler(handler)


def configure_terminal(log_format: LogFormat, stream: TextIO | None = None) -> Terminal:
    """Put the chosen console in place of Prefect's (the API's handler stays); call once Prefect is imported.
    `verbose` keeps Prefect's console as it is."""
    logging.getLogger("great_expectations").setLevel(logging.WARNING)  # its INFO lines are not the run's
    if log_format == "verbose":
        return Terminal(None, [])
    target = stream or sys.stderr
    handler: logging.Handler = (
        JsonLogHandler(target) if log_format == "json" else QuietConsoleHandler(target, target.isatty())
    )
    root = logging.getLogger()
    replaced = [existing for existing in root.handlers if type(existing).__name__ == "PrefectConsoleHandler"]
    for existing in replaced:
        root.removeHandler(existing)
    root.addHandler(handler)
    return Terminal(handler, replaced)
