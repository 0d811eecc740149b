"""The validation site's front page: every run's validation (date, verdict, batches, failed expectations).

Each run's GX site is built in `data_docs/<run_id>/` with a summary beside its index (`RUN_SUMMARY`: counts,
verdicts, expectation names and page paths, never a value); `write_docs_home` reads them and writes
`data_docs/index.html`, which links every run's GX pages and, apart, the dbt model docs (`data_docs/dbt/`).
One self-contained page: styles inline, no script, no URL to another host.
"""

from __future__ import annotations

import html
import os
import threading
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

RUN_SUMMARY = "validation_summary.json"
HOME_NAME = "index.html"
MODEL_DOCS = "dbt"  # dbt's docs: linked as the model docs, never listed as a validation run
_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2rem auto; max-width: 72rem; color: #222; }
body { padding: 0 1rem; }
h1 { margin-bottom: 0.2rem; } p.lead { color: #444; margin-top: 0.3rem; }
table { border-collapse: collapse; margin: 1rem 0; font-size: 0.9rem; width: 100%; }
th, td { border: 1px solid #ddd; padding: 0.35rem 0.6rem; text-align: left; vertical-align: top; }
th { background: #f3f5f8; } ul.batches { margin: 0; padding-left: 1.1rem; }
.passed { color: #1d6b2f; font-weight: 600; } .failed { color: #b3261e; font-weight: 600; }
.unknown { color: #666; } code { font-size: 0.85rem; }
"""


@dataclass(frozen=True)
class ValidatedBatch:
    """One batch's validation: verdict, expectations evaluated, the failed ones by name, its page."""

    batch_id: str
    validated_at: str
    passed: bool
    evaluated: int
    failed: tuple[str, ...]
    page: str | None


@dataclass(frozen=True)
class ValidatedRun:
    """One run's validation site; `batches` is None for a site built before runs wrote their summary."""

    run_id: str
    validated_at: str
    batches: tuple[ValidatedBatch, ...] | None

    @property
    def passed(self) -> bool | None:
        """Whether every batch passed (None when not recorded)."""
        return None if self.batches is None else all(batch.passed for batch in self.batches)

    def failed_expectations(self) -> Counter[str]:
        """Each failed expectation's name and in how many batches it failed, in the order first met."""
        return Counter(name for batch in self.batches or () for name in batch.failed)


def read_validated_run(site: Path) -> ValidatedRun | None:
    """A run's validation from its site folder; None if the folder is no GX site of a run (e.g. dbt's)."""
    if site.name == MODEL_DOCS or not (site / HOME_NAME).is_file():
        return None
    summary = site / RUN_SUMMARY
    if not summary.is_file():
        if not (site / "validations").is_dir():
            return None
        built = datetime.fromtimestamp((site / HOME_NAME).stat().st_mtime, UTC)
        return ValidatedRun(site.name, built.isoformat(timespec="seconds"), None)
    document: dict[str, Any] = orjson.loads(summary.read_bytes())
    batches = tuple(
        ValidatedBatch(
            batch_id=str(item["batch_id"]),
            validated_at=str(item["validated_at"]),
            passed=bool(item["passed"]),
            evaluated=int(item["evaluated"]),
            failed=tuple(str(name) for name in item["failed"]),
            page=item.get("page"),
        )
        for item in document["batches"]
    )
    first = min((batch.validated_at for batch in batches), default="")
    return ValidatedRun(str(document["run_id"]), first, batches)


def _when(timestamp: str) -> str:
    """An ISO timestamp as `YYYY-MM-DD HH:MM UTC`."""
    try:
        moment = datetime.fromisoformat(timestamp).astimezone(UTC)
    except ValueError:
        return html.escape(timestamp)
    return moment.strftime("%Y-%m-%d %H:%M UTC")


def _verdict(run: ValidatedRun) -> str:
    if run.passed is None:
        return '<span class="unknown">not recorded</span>'
    return '<span class="passed">passed</span>' if run.passed else '<span class="failed">failed</span>'


def _batches(run: ValidatedRun) -> str:
    """How many batches passed or failed, then a link to each batch's validation page."""
    if run.batches is None:
        return '<span class="unknown">built before runs recorded their batches</span>'
    failed = sum(not batch.passed for batch in run.batches)
    headline = f"all {len(run.batches)} passed" if not failed else f"{failed} of {len(run.batches)} failed"
    items = []
    for batch in run.batches:
        label = f"{html.escape(batch.batch_id)} &middot; {'passed' if batch.passed else 'failed'}"
        target = f"{run.run_id}/{batch.page}" if batch.page else f"{run.run_id}/{HOME_NAME}"
        items.append(f'<li><a href="{html.escape(target)}">{label}</a></li>')
    return f'{headline}<ul class="batches">{"".join(items)}</ul>'


def _failed(run: ValidatedRun) -> str:
    counted = run.failed_expectations()
    if run.batches is None:
        return '<span class="unknown">not recorded</span>'
    if not counted:
        return "none"
    return "<br>".join(
        f"<code>{html.escape(name)}</code>" + (f" (in {count} batches)" if count > 1 else "")
        for name, count in counted.items()
    )


def render_docs_home(runs: Sequence[ValidatedRun], model_docs: bool = False) -> str:
    """The index page's HTML: one row per run, newest first (names, counts and links only)."""
    ordered = sorted(runs, key=lambda run: (run.validated_at, run.run_id), reverse=True)
    rows = "\n".join(
        "<tr>"
        f"<td>{_when(run.validated_at)}</td><td>{_verdict(run)}</td><td>{_batches(run)}</td>"
        f"<td>{_failed(run)}</td>"
        f'<td><a href="{html.escape(run.run_id)}/{HOME_NAME}">{html.escape(run.run_id)}</a></td>'
        "</tr>"
        for run in ordered
    )
    table = (
        "<table><thead><tr><th>validated</th><th>verdict</th><th>batches</th><th>failed expectations</th>"
        f"<th>run (its validation pages)</th></tr></thead><tbody>\n{rows}\n</tbody></table>"
        if ordered
        else "<p>No run has validated a batch yet.</p>"
    )
    models = (
        f'<p>The models built from the published data: <a href="{MODEL_DOCS}/{HOME_NAME}">model docs '
        "(dbt: models, columns, tests, lineage)</a>.</p>"
        if model_docs
        else ""
    )
    return "\n".join(
        [
            "<!doctype html>",
            '<html lang="en"><head><meta charset="utf-8">',
            '<meta name="viewport" content="width=device-width, initial-scale=1">',
            f"<title>Validation runs</title><style>{_STYLE}</style></head><body>",
            "<h1>Validation runs</h1>",
            '<p class="lead">Every run&#39;s check of its batches by the validation gate (Great Expectations '
            "suite <code>persons_batch</code>), newest first. A batch that fails an expectation is not "
            "published. Failed expectations carry the names the run prints.</p>",
            models,
            table,
            "</body></html>",
            "",
        ]
    )


def write_docs_home(docs_root: Path) -> Path:
    """`<docs_root>/index.html`: every run's validation, newest first, linking each run's GX pages."""
    docs_root.mkdir(parents=True, exist_ok=True)
    runs = [
        run
        for site in sorted(path for path in docs_root.iterdir() if path.is_dir())
        if (run := read_validated_run(site)) is not None
    ]
    home = docs_root / HOME_NAME
    partial = docs_root / f".{HOME_NAME}.{os.getpid()}-{threading.get_ident()}.partial"
    partial.write_text(
        render_docs_home(runs, (docs_root / MODEL_DOCS / HOME_NAME).is_file()), encoding="utf-8"
    )
    partial.replace(home)  # two runs ending at once: each writes a whole page
    return home
