"""The README and the docs: every link and repository path they name exists; the settings page is current."""

from __future__ import annotations

import re
import subprocess
import unicodedata
from pathlib import Path

import pytest

from flows import settings_doc

ROOT = Path(__file__).resolve().parents[2]
PAGES = sorted([ROOT / "README.md", *(ROOT / "docs").rglob("*.md")])
LINK = re.compile(r"(?<!!)\[[^\]]*\]\((?P<target>[^)\s]+)\)")
CODE = re.compile(r"`(?P<text>[^`\n]+)`")
FENCE = re.compile(r"^```.*?^```", re.M | re.S)
HOME = ROOT / "docs" / "index.md"
HEADING = re.compile(r"^#{1,6} (?P<text>.+?)\s*$", re.M)
# A path in the repository: a tracked top-level folder or file, then more of it (runtime paths such as
# `data/...`, `reports/<run_id>/` or `~/.persons-pipeline` are not in the repository and are not checked).
# A placeholder (`sql/migrations/V<version>__<name>.sql`) or a glob: the folder before it must exist.
PLACEHOLDER = re.compile(r"[<*]")
NOT_A_PATH = re.compile(r"[{}$~\s|=,;:()\[\]'\"]|\.\.\.")


def tracked_top_level() -> set[str]:
    listed = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    return {line.split("/", 1)[0] for line in listed.splitlines() if line}


def prose(page: Path) -> str:
    """The page without its fenced code blocks (commands and layouts there name runtime paths too)."""
    return FENCE.sub("", page.read_text(encoding="utf-8"))


def slug(heading: str) -> str:
    """The anchor Python-Markdown's toc gives a heading (its default slugify, markup removed)."""
    text = re.sub(r"[`*]|\[([^\]]*)\]\([^)]*\)", r"\1", heading)
    text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
    text = re.sub(r"[^\w\s-]", "", text).strip().lower()
    return re.sub(r"[-\s]+", "-", text)


def anchors(page: Path) -> set[str]:
    if page == HOME:
        page = ROOT / "README.md"  # the site's home page is the README (docs/hooks/front_door.py)
    return {slug(match["text"]) for match in HEADING.finditer(prose(page))}


def links(page: Path) -> list[str]:
    return [match["target"] for match in LINK.finditer(prose(page))]


def repository_paths(page: Path, top_level: set[str]) -> list[str]:
    found = []
    for match in CODE.finditer(prose(page)):
        text = match["text"]
        if "/" not in text or text.startswith(("/", "http", "s3:")) or NOT_A_PATH.search(text):
            continue
        if text.split("/", 1)[0] in top_level:
            placeholder = PLACEHOLDER.search(text)
            found.append(text[: text.rfind("/", 0, placeholder.start()) + 1] if placeholder else text)
    return found


def test_the_pages_are_found() -> None:
    names = {page.relative_to(ROOT).as_posix() for page in PAGES}
    assert {"README.md", "docs/index.md", "docs/settings.md", "docs/privacy.md"} <= names


@pytest.mark.parametrize("page", PAGES, ids=lambda page: page.relative_to(ROOT).as_posix())
def test_every_link_leads_to_a_page_and_heading_that_exist(page: Path) -> None:
    broken = []
    for target in links(page):
        if target.startswith(("http://", "https://", "mailto:")):
            continue
        path, _, anchor = target.partition("#")
        destination = (page.parent / path).resolve() if path else page
        if not destination.exists():
            broken.append(f"{target}: no such file")
        elif anchor and destination.suffix == ".md" and anchor not in anchors(destination):
            broken.append(f"{target}: no heading with that anchor")
    assert not broken, f"{page.relative_to(ROOT)}: {broken}"


@pytest.mark.parametrize("page", PAGES, ids=lambda page: page.relative_to(ROOT).as_posix())
def test_every_repository_path_named_exists(page: Path) -> None:
    missing = [path for path in repository_paths(page, tracked_top_level()) if not (ROOT / path).exists()]
    assert not missing, f"{page.relative_to(ROOT)} names paths that do not exist: {missing}"


def test_the_checks_catch_a_missing_path_a_broken_link_and_a_wrong_anchor(tmp_path: Path) -> None:
    (tmp_path / "other.md").write_text("# Other\n\n## A section (`sql/`)\n")
    page = tmp_path / "page.md"
    page.write_text(
        "See `flows/no_such_module.py`, `flows/settings.py`, `data/reports/<run_id>/`\n"
        "and `sql/gone/<name>.sql`.\n\n"
        "[gone](gone.md) [there](other.md#a-section-sql) [wrong](other.md#nope)\n\n"
        "```\nflows/also_missing_but_in_a_fence.py\n```\n"
    )
    assert repository_paths(page, {"flows", "sql"}) == [
        "flows/no_such_module.py",
        "flows/settings.py",
        "sql/gone/",
    ]
    assert links(page) == ["gone.md", "other.md#a-section-sql", "other.md#nope"]
    assert anchors(tmp_path / "other.md") == {"other", "a-section-sql"}


def test_the_settings_page_is_generated_from_the_settings_model() -> None:
    committed = settings_doc.PAGE.read_text(encoding="utf-8")
    assert committed == settings_doc.render(), "run: python -m flows.settings_doc --write"


def test_the_settings_page_names_every_setting_with_its_default_and_bounds() -> None:
    page = settings_doc.render()
    for variable in settings_doc.every_variable():
        assert variable in page
    assert "| `PERSONS_TOTAL` | `30000` | >= 1, <= 100000000 |" in page
    assert "| `PERSONS_GATE_PROCESS` | `orchestrator` | `orchestrator`, `separate` |" in page
    assert "`~/.persons-pipeline/prefect-server`" in page  # the user's home is not written into the page
