"""Headless Chromium (Debian's `chromium`) opening local pages with every host but 127.0.0.1 unresolvable."""

from __future__ import annotations

import io
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest
from PIL import Image

BUDGET_MS = 5000
TIMEOUT_S = 90
# Offline in effect: no host resolves (so no CDN can answer), no QUIC, none of Chromium's own traffic.
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
)


def chromium() -> str:
    """The browser's path; a clear failure where it is missing (`.ci/run` installs it)."""
    names = ("chromium", "chromium-browser", "google-chrome")  # Debian's, older Debian's, GitHub runners'
    found = next((path for path in map(shutil.which, names) if path), None)
    if not found:
        pytest.fail("headless Chromium is needed: apt-get install -y chromium (.ci/run installs it)")
    return found


def _run(page: Path | str, *options: str, budget_ms: int = BUDGET_MS) -> subprocess.CompletedProcess[bytes]:
    """Chromium on a file (by its path) or a URL on 127.0.0.1."""
    address = page if isinstance(page, str) else page.resolve().as_uri()
    with tempfile.TemporaryDirectory(prefix="chromium-profile-") as profile:
        return subprocess.run(
            [chromium(), *FLAGS, f"--user-data-dir={profile}", f"--virtual-time-budget={budget_ms}", *options,
             address],
            capture_output=True,
            timeout=TIMEOUT_S,
            check=True,
        )  # fmt: skip


def dump_dom_url(url: str, budget_ms: int = BUDGET_MS) -> str:
    """The DOM of a page served on 127.0.0.1, after its scripts ran."""
    return _run(url, "--dump-dom", budget_ms=budget_ms).stdout.decode("utf-8")


def screenshot_url(
    url: str, folder: Path, size: tuple[int, int] = (1200, 900), budget_ms: int = BUDGET_MS
) -> bytes:
    """A PNG of a page served on 127.0.0.1."""
    target = folder / f"page-{size[0]}x{size[1]}.png"
    _run(url, f"--screenshot={target}", f"--window-size={size[0]},{size[1]}", budget_ms=budget_ms)
    return target.read_bytes()


def dump_dom(page: Path) -> str:
    """The page's DOM after its scripts ran (the virtual time budget lets timers and loads finish)."""
    return _run(page, "--dump-dom").stdout.decode("utf-8")


def screenshot(page: Path, folder: Path, size: tuple[int, int] = (1200, 900)) -> bytes:
    """A PNG of the rendered page."""
    target = folder / f"{page.stem}-{size[0]}x{size[1]}.png"
    _run(page, f"--screenshot={target}", f"--window-size={size[0]},{size[1]}")
    return target.read_bytes()


def colours(png: bytes) -> int:
    """Distinct colours of an image (up to 4096): 1 is a blank page."""
    found = Image.open(io.BytesIO(png)).convert("RGB").getcolors(maxcolors=4096)
    return 4096 if found is None else len(found)
