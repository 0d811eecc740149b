"""The data docs' vendored assets: pinned by the lock, the exact files GX's pages load, referenced locally."""

from __future__ import annotations

import base64
import hashlib
import re
from pathlib import Path, PurePosixPath

import great_expectations
import pytest

from flows.gate.offline_docs import (
    LOCK_PATH,
    SITE_VENDOR,
    VENDOR_DIR,
    asset_paths,
    css_references,
    html_references,
    is_external,
    load_lock,
    make_docs_offline,
    rewrite_page,
    rewrite_stylesheet,
    vendored_files,
    verify_vendored,
)

GX_TEMPLATES = Path(great_expectations.__file__).parent / "render" / "view" / "templates"
_SCRIPT_WITH_SRI = re.compile(r'<script src="([^"]+)" integrity="(sha384-[^"]+)"')


def test_vendored_files_are_those_of_the_lock() -> None:
    packages = load_lock()
    assert len(packages) >= 11
    for package in packages:
        assert re.fullmatch(r"sha512-[A-Za-z0-9+/]{86}==", package.integrity), package.package
        assert package.tarball.startswith("https://registry.npmjs.org/"), package.package
        assert re.fullmatch(r"\d+\.\d+\.\d+", package.version), package.package
        for item in package.files:
            assert re.fullmatch(r"[0-9a-f]{64}", item.sha256), item.path
    assert verify_vendored() == []


def test_verification_notices_a_changed_missing_or_unlisted_file(tmp_path: Path) -> None:
    root = tmp_path / "vendor"
    files = vendored_files(load_lock())
    for item in files:
        (root / item.path).parent.mkdir(parents=True, exist_ok=True)
        (root / item.path).write_bytes((VENDOR_DIR / item.path).read_bytes())
    assert verify_vendored(root) == []
    changed, missing = files[0], files[1]
    (root / changed.path).write_bytes(b"/* tampered */")
    (root / missing.path).unlink()
    (root / "stray.js").write_text("x")
    assert verify_vendored(root) == [
        f"sha256 differs from the lock: {changed.path}",
        f"missing: {missing.path}",
        "not in the lock: stray.js",
    ]


def test_every_cdn_asset_of_gx_templates_is_vendored() -> None:
    """A GX upgrade that loads another asset (or another version) fails here, not in a reader's browser."""
    assets = asset_paths(load_lock())
    referenced = set()
    for template in GX_TEMPLATES.glob("*.j2"):
        text = template.read_text(encoding="utf-8")
        rewritten, dropped = rewrite_page(text, "", assets)
        assert dropped == [], template.name
        assert [ref for ref in html_references(rewritten) if is_external(ref)] == [], template.name
        referenced |= {ref for ref in html_references(text) if ref in assets}
    assert len(referenced) == 16  # the 16 CDN assets of GX 1.24's pages
    assert referenced == set(assets)  # and nothing vendored that no page loads


def test_vendored_scripts_are_the_exact_files_gx_pins_by_integrity() -> None:
    assets = asset_paths(load_lock())
    pinned = {
        url: sri
        for template in GX_TEMPLATES.glob("*.j2")
        for url, sri in _SCRIPT_WITH_SRI.findall(template.read_text(encoding="utf-8"))
    }
    assert len(pinned) == 2  # popper and bootstrap's script
    for url, sri in pinned.items():
        data = (VENDOR_DIR / assets[url]).read_bytes()
        assert "sha384-" + base64.b64encode(hashlib.sha384(data).digest()).decode() == sri, url


def test_vendored_stylesheets_refer_only_to_vendored_files() -> None:
    """Font Awesome's webfonts are vendored with its CSS; no stylesheet reaches outside."""
    locked = {item.path for item in vendored_files(load_lock())}
    sheets = [path for path in locked if path.endswith(".css")]
    fonts = 0
    for sheet in sheets:
        for reference in css_references((VENDOR_DIR / sheet).read_text(encoding="utf-8")):
            if reference.startswith("data:"):
                continue
            assert not is_external(reference), (sheet, reference)
            target = PurePosixPath(sheet).parent / reference.split("?")[0].split("#")[0]
            resolved = str(Path("/", target).resolve()).lstrip("/")
            assert resolved in locked, (sheet, reference)
            fonts += resolved.endswith((".woff2", ".ttf"))
    assert fonts >= 8


def test_a_page_points_to_the_vendored_copies() -> None:
    assets = {"https://cdn.example/lib@1/lib.min.js": "lib@1.0.0/dist/lib.min.js"}
    page = (
        '<html><head><script src="https://cdn.example/lib@1/lib.min.js" integrity="sha384-x" '
        'crossorigin="anonymous"></script><link rel="stylesheet" href="static/styles/own.css"/>'
        '<style>.brand { background: url("https://great-expectations-web-assets.s3.us-east-2.amazonaws.com/'
        'full_logo_dark.png") }</style></head><body>'
        '<img src="https://great-expectations-web-assets.s3.us-east-2.amazonaws.com/logo-long.png?d=1"/>'
        '<a href="https://greatexpectations.io">Great Expectations</a>'
        '<script src="//cdn.example/unknown.js"></script></body></html>'
    )
    rewritten, dropped = rewrite_page(page, "../../", assets)
    assert f'<script src="../../{SITE_VENDOR}/lib@1.0.0/dist/lib.min.js"></script>' in rewritten
    assert 'href="static/styles/own.css"' in rewritten  # local references stay as they are
    assert "url('../../static/images/logo-long.png')" in rewritten
    assert '<img src="../../static/images/logo-long.png"/>' in rewritten
    assert "<a>Great Expectations</a>" in rewritten  # a link to another site keeps its text only
    assert dropped == ["//cdn.example/unknown.js"]  # an asset nobody vendored is dropped and named
    assert [ref for ref in html_references(rewritten) if is_external(ref)] == []


def test_a_stylesheet_keeps_data_uris_and_relative_urls() -> None:
    sheet = (
        "a{background:url(\"data:image/svg+xml,%3csvg xmlns='http://www.w3.org/2000/svg'%3e\")}"
        "b{src:url(../webfonts/fa.woff2) format('woff2')} c{background:url(https://elsewhere.example/x.png)}"
    )
    rewritten, dropped = rewrite_stylesheet(sheet, "../../")
    assert "data:image/svg+xml" in rewritten and "url(../webfonts/fa.woff2)" in rewritten
    assert dropped == ["https://elsewhere.example/x.png"]
    assert "elsewhere" not in rewritten


@pytest.mark.parametrize("reference", ["https://a.example/x", "http://a.example", "//a.example/x.js"])
def test_external_references(reference: str) -> None:
    assert is_external(reference)


@pytest.mark.parametrize(
    "reference", ["static/x.css", "../index.html", "#section-1", "data:image/png;base64,AA"]
)
def test_local_references(reference: str) -> None:
    assert not is_external(reference)


def test_a_built_site_is_made_offline(tmp_path: Path) -> None:
    url, path = next(iter(asset_paths(load_lock()).items()))
    site = tmp_path / "site"
    (site / "validations" / "suite").mkdir(parents=True)
    (site / "static" / "styles").mkdir(parents=True)
    (site / "index.html").write_text(f'<link rel="stylesheet" href="{url}">')
    (site / "validations" / "suite" / "page.html").write_text(f'<link rel="stylesheet" href="{url}">')
    (site / "static" / "styles" / "gx.css").write_text(
        ".x{background:url('https://great-expectations-web-assets.s3.us-east-2.amazonaws.com/full_logo_dark.png')}"
    )
    summary = make_docs_offline(site)
    assert (summary.pages, summary.stylesheets, summary.dropped) == (2, 1, [])
    assert (site / "index.html").read_text() == f'<link rel="stylesheet" href="{SITE_VENDOR}/{path}">'
    assert f'href="../../{SITE_VENDOR}/{path}"' in (site / "validations" / "suite" / "page.html").read_text()
    assert "url('../../static/images/logo-long.png')" in (site / "static" / "styles" / "gx.css").read_text()
    assert verify_vendored(site / SITE_VENDOR, LOCK_PATH) == []  # every vendored file, unchanged
