"""The terminal's view of a run's log: events in words, no traceback for an expected refusal, JSON lines."""

from __future__ import annotations

import io
import json
import logging
import sys

from flows.runtime.terminal import JsonLogHandler, QuietConsoleHandler, json_record, parse_event, quiet_line


def record(
    message: str, level: int = logging.INFO, name: str = "prefect.flow_runs", **extra: object
) -> logging.LogRecord:
    made = logging.LogRecord(name, level, __file__, 1, message, None, None)
    for key, value in extra.items():
        setattr(made, key, value)
    return made


def failing(error: BaseException) -> logging.LogRecord:
    try:
        raise error
    except BaseException:
        made = record(f"Encountered exception during execution: {error!r}", logging.ERROR)
        made.exc_info = sys.exc_info()
    return made


class BatchRejected(Exception):
    """Stands for the gate's refusal: the console knows expected errors by their names."""


def test_events_are_parsed_with_quoted_values() -> None:
    assert parse_event('event=batch_rejected batch_id=b1 data_docs="/a b/index.html" n=3') == (
        "batch_rejected",
        {"batch_id": "b1", "data_docs": "/a b/index.html", "n": "3"},
    )
    assert parse_event("View at http://x") is None


def test_known_events_read_as_words_with_the_batch_and_thousands() -> None:
    line = quiet_line(
        record("event=batch_merged run_id=r batch_id=b2 batch_number=2 batches=10 persons=100000 "
               "quarantined=3 duplicates=0 publish_s=2.345")
    )  # fmt: skip
    assert line == "batch 2 of 10 merged: 100,000 persons, 3 quarantined, 0 duplicates (2.3 s)"
    assert quiet_line(record("event=lineage_emitted run_id=r event_type=START")) is None  # for the API's log
    assert quiet_line(record("Finished in state Completed()", name="prefect.task_runs")) is None
    assert quiet_line(record("View at http://127.0.0.1:1/runs/flow-run/x", flow_run_name="odd-cat")) == (
        "Prefect: run 'odd-cat' at http://127.0.0.1:1/runs/flow-run/x"
    )


def test_an_expected_refusal_has_no_traceback_a_crash_keeps_it() -> None:
    assert quiet_line(failing(BatchRejected("batch b1 rejected"))) is None
    assert quiet_line(record("Task run failed with exception: X", logging.ERROR, "prefect.task_runs")) is None
    stream = io.StringIO()
    handler = QuietConsoleHandler(stream, live=False)
    handler.emit(failing(ZeroDivisionError("division by zero")))
    shown = stream.getvalue()
    assert "error: Encountered exception during execution" in shown and "Traceback" in shown


def test_the_progress_display_follows_the_batches() -> None:
    stream = io.StringIO()
    handler = QuietConsoleHandler(stream, live=True)
    handler.emit(
        record("event=run_planned run_id=r requested=2000 batches=2 pages_per_batch=1 page_size=1000")
    )
    assert handler._progress is not None
    for number in (1, 2):
        handler.emit(
            record(f"event=batch_merged batch_id=b{number} batch_number={number} batches=2 persons=1000")
        )
    assert handler._progress is None  # finished: the lines after it print below
    assert "batch 2 of 2 merged" in stream.getvalue()


def test_json_lines_carry_the_events_fields() -> None:
    document = json_record(record("event=batch_merged run_id=r persons=5", flow_run_id="f-1"))
    assert document["event"] == "batch_merged" and document["persons"] == "5"
    assert document["flow_run_id"] == "f-1" and document["level"] == "INFO"
    stream = io.StringIO()
    JsonLogHandler(stream).emit(failing(BatchRejected("no")))
    assert json.loads(stream.getvalue())["error"] == "BatchRejected"
