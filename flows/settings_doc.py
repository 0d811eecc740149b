"""The docs' settings page (docs/settings.md), generated from the settings model so that it cannot drift.

``python -m flows.settings_doc --write`` rewrites the page; ``tests/unit/test_docs.py`` fails when the
committed page differs from what the model gives. The groups are the ``# --- group: note ---`` comments of the
declarations.
"""

from __future__ import annotations

import ast
import inspect
import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from enum import Enum
from pathlib import Path
from typing import Any, Literal, Union, get_args, get_origin

from pydantic import AliasChoices, BaseModel, SecretStr
from pydantic.fields import FieldInfo

from flows.parameters import RunDefaults
from flows.settings import GROUPS, PipelineSettings

PAGE = Path(__file__).resolve().parent.parent / "docs" / "settings.md"
KEEP_CASE = {"dbt"}  # names written in lower case, also at the start of a heading
GROUP_COMMENT = re.compile(r"^\s*# --- (?P<text>.+?) ---\s*$")
RUN_PARAMETERS = (
    "Run parameters: every one is also a CLI option and a flow parameter (declared once, in "
    "`flows/parameters.py`); an option or parameter given wins over the setting"
)

HEADER = """# Settings

Every setting of the pipeline is read from the environment by one settings object (`flows/settings.py`,
pydantic-settings), with the prefix `PERSONS_`, in groups (`settings.client`, `settings.duckdb`, ...): a value
out of its bounds stops the run before any work with one line naming the variable, never quoting the value.
This page is generated from that object (`python -m flows.settings_doc --write`); a test fails when it
differs.
"""


@dataclass(frozen=True)
class Row:
    variable: str
    default: str
    values: str
    meaning: str


def group_of_fields(model: type[BaseModel]) -> dict[str, str]:
    """Each field declared in the model's own class body, with the ``# --- group ---`` comment above it."""
    source_lines, _ = inspect.getsourcelines(model)
    tree = ast.parse("".join(source_lines))
    comments = [
        (number, match["text"])
        for number, line in enumerate(source_lines, start=1)
        if (match := GROUP_COMMENT.match(line))
    ]
    groups: dict[str, str] = {}
    cls = next(node for node in tree.body if isinstance(node, ast.ClassDef))
    for node in cls.body:
        if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            above = [text for number, text in comments if number < node.lineno]
            groups[node.target.id] = above[-1] if above else ""
    return groups


def variable_of(name: str, info: FieldInfo) -> str:
    alias = info.validation_alias
    if isinstance(alias, AliasChoices):
        return written([choice for choice in alias.choices if isinstance(choice, str)])
    return written([f"PERSONS_{name.upper()}"])


def written(variables: Sequence[str]) -> str:
    """Environment variables as the page writes them: `A` or `B`."""
    return " or ".join(f"`{variable}`" for variable in variables)


def shown(value: Any) -> str:
    """A default as it would be written in the environment."""
    if value is None:
        return "unset"
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    if isinstance(value, SecretStr):
        return "(secret)"
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, Enum):
        value = value.value
    if isinstance(value, Path):
        home = str(Path.home())
        text = str(value)
        value = "~" + text[len(home) :] if text.startswith(home + "/") else text
    if isinstance(value, date):
        value = value.isoformat()
    return f"`{value}`"


def default_of(info: FieldInfo) -> str:
    if info.default_factory is not None:
        return shown(info.default_factory())  # type: ignore[call-arg]
    return shown(info.default)


def literal_values(annotation: Any) -> list[str]:
    if get_origin(annotation) is Literal:
        return [str(value) for value in get_args(annotation)]
    if get_origin(annotation) is Union:
        return [value for arg in get_args(annotation) for value in literal_values(arg)]
    return []


def values_of(info: FieldInfo) -> str:
    """The values a setting admits: its choices, bounds or pattern."""
    choices = literal_values(info.annotation)
    if choices:
        return ", ".join(f"`{choice}`" for choice in choices)
    bounds: list[str] = []
    for item in info.metadata:
        for attribute, sign in (("gt", ">"), ("ge", ">="), ("lt", "<"), ("le", "<=")):
            bound = getattr(item, attribute, None)
            if bound is not None:
                bounds.append(f"{sign} {shown(bound).strip('`')}")
        pattern = getattr(item, "pattern", None)
        if pattern:
            bounds.append(f"`{pattern}`")
    return ", ".join(bounds)


def cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


def heading_and_note(comment: str) -> tuple[str, str]:
    """``where to: the environment picks ...`` -> ``Where to`` and ``The environment picks ....``"""
    head, _, note = comment.partition(": ")
    note = note.strip()
    if note:
        note = note[:1].upper() + note[1:] + ("" if note.endswith(".") else ".")
    return (head if head.split()[0] in KEEP_CASE else head[:1].upper() + head[1:]), note


def rows_by_group(model: type[BaseModel] = PipelineSettings) -> dict[str, list[Row]]:
    """The top-level settings under their ``# --- group ---`` comments, then each settings group under its
    docstring's ``title: note``."""
    groups = {name: RUN_PARAMETERS for name in RunDefaults.model_fields}
    groups.update({name: text for name, text in group_of_fields(model).items() if name not in groups})
    table: dict[str, list[Row]] = {}
    for name, info in model.model_fields.items():
        if name in GROUPS:
            continue
        row = Row(variable_of(name, info), default_of(info), values_of(info), info.description or "")
        table.setdefault(groups.get(name, "other"), []).append(row)
    for attribute, group in GROUPS.items():
        title, _, note = " ".join((group.__doc__ or attribute).split()).partition(": ")
        rows = table.setdefault(f"{title} (`settings.{attribute}`): {note}", [])
        for name, info in group.model_fields.items():
            rows.append(
                Row(written(group.variables(name)), default_of(info), values_of(info), info.description or "")
            )
    return table


def every_variable() -> list[str]:
    """Every environment variable the settings read, as the page writes it."""
    top = [
        variable_of(name, info) for name, info in PipelineSettings.model_fields.items() if name not in GROUPS
    ]
    grouped = [written(group.variables(name)) for group in GROUPS.values() for name in group.model_fields]
    return top + grouped


def render(model: type[BaseModel] = PipelineSettings) -> str:
    parts = [HEADER]
    for comment, rows in rows_by_group(model).items():
        head, note = heading_and_note(comment)
        parts.append(f"## {head}\n")
        if note:
            parts.append(f"{note}\n")
        parts.append("| variable | default | values | meaning |\n|---|---|---|---|")
        parts.extend(
            f"| {row.variable} | {cell(row.default)} | {cell(row.values)} | {cell(row.meaning)} |"
            for row in rows
        )
        parts.append("")
    return "\n".join(parts)


def main(argv: list[str] | None = None) -> int:
    arguments = sys.argv[1:] if argv is None else argv
    text = render()
    if arguments == ["--write"]:
        PAGE.write_text(text, encoding="utf-8")
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
