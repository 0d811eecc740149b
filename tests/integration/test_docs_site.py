"""The docs site: `make docs` builds it offline and strictly; headless Chromium renders it with no network."""

from __future__ import annotations

import functools
import http.server
import json
import os
import re
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from tests.browser import colours, dump_dom, dump_dom_url, screenshot_url

ROOT = Path(__file__).resolve().parents[2]
# An asset a page loads from another host (script, stylesheet, font, image): offline it would be blank.
EXTERNAL_ASSET = re.compile(r"<(?:script|link|img)\b[^>]*\b(?:src|href)=\"(?:https?:)?//", re.I)


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The site built as `make docs` builds it (strict: a missing page, link or anchor fails the build)."""
    folder = tmp_path_factory.mktemp("site")
    mkdocs = Path(sys.executable).with_name("mkdocs")
    environment = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    built = subprocess.run(
        [str(mkdocs), "build", "--strict", "--site-dir", str(folder)],
        cwd=ROOT, env=environment, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert built.returncode == 0, built.stderr[-3000:]
    return folder


@pytest.fixture(scope="module")
def served(site: Path) -> Iterator[str]:
    """The built site over http on 127.0.0.1, as `make docs-serve` shows it."""
    handler = functools.partial(QuietHandler, directory=str(site))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        del format, args


def nav_titles() -> list[str]:
    def titles(entries: list[object]) -> Iterator[str]:
        for entry in entries:
            assert isinstance(entry, dict)
            for title, target in entry.items():
                yield title
                if isinstance(target, list):
                    yield from titles(target)

    config = yaml.safe_load((ROOT / "mkdocs.yml").read_text(encoding="utf-8"))
    return list(titles(config["nav"]))


def test_every_page_is_built_and_loads_nothing_from_another_host(site: Path) -> None:
    pages = sorted(site.rglob("*.html"))
    assert {"index.html", "settings.html", "privacy.html", "operations/deploy.html"} <= {
        page.relative_to(site).as_posix() for page in pages
    }
    loading_from_elsewhere = [page.name for page in pages if EXTERNAL_ASSET.search(page.read_text("utf-8"))]
    assert not loading_from_elsewhere


def test_the_home_page_is_the_readme_with_its_links_made_for_the_site(
    site: Path, served: str, tmp_path: Path
) -> None:
    dom = dump_dom_url(f"{served}/index.html")
    for title in nav_titles():
        assert f">{title}<" in dom.replace("\n", "").replace("  ", ""), title
    assert "Deploy in five commands" in dom
    assert 'href="docs/' not in dom  # the README's links to docs/ lead to the site's own pages
    assert 'href="settings.html"' in dom
    png = screenshot_url(f"{served}/index.html", tmp_path, size=(1300, 1000))
    assert colours(png) > 50


def test_the_settings_page_renders_every_setting_and_the_search_index_finds_one(
    site: Path, served: str
) -> None:
    dom = dump_dom_url(f"{served}/settings.html")
    assert "PERSONS_TOTAL" in dom
    assert "PERSONS_HMAC_SECRET" in dom
    index = json.loads((site / "search" / "search_index.json").read_text("utf-8"))
    found = {doc["location"] for doc in index["docs"] if "PERSONS_RUN_DEADLINE_S" in doc["text"]}
    assert any(location.startswith("settings.html#") for location in found)


def test_the_built_site_opens_from_the_file_system_too(site: Path) -> None:
    dom = dump_dom(site / "privacy.html")
    assert "The right to be forgotten" in dom
    assert (
        'href="operations/deploy.html"' in dom
    )  # pages link to files, not to folders a file:// page cannot open
