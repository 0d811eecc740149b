"""GX data docs that render offline: the CDN assets GX's pages load, vendored from npm and referenced locally.

GX 1.24 renders its pages with 16 scripts and stylesheets from CDNs (and its logo from its own bucket);
without internet the index's table of validation results stays empty. The exact files, pinned in
`offline/assets.lock.json` (package, version, npm integrity, sha256 per file), live in `offline/vendor/` and
are linked into one `vendor/` folder beside the runs' sites (data_docs/vendor/<package>@<version>/...);
every page and stylesheet is rewritten to point there. The runs share it: a run adds its pages only, on disk
and in a bucket (the vendored paths carry their versions, so a file uploaded once never changes).
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import orjson

from flows.landing.files import LandingStore

OFFLINE_DIR = Path(__file__).resolve().parent / "offline"
LOCK_PATH = OFFLINE_DIR / "assets.lock.json"
VENDOR_DIR = OFFLINE_DIR / "vendor"
SHARED_VENDOR = "vendor"  # beside the runs' sites: data_docs/vendor
SITE_VENDOR = f"../{SHARED_VENDOR}"  # the same folder, as a site's pages reach it from the site's root
SITE_IMAGES = "static/images"
# GX's own images on its web-assets bucket; the site carries the same logo in static/images.
GX_WEB_ASSETS = "https://great-expectations-web-assets.s3.us-east-2.amazonaws.com/"
GX_IMAGE_STANDINS = {"logo-long.png": "logo-long.png", "full_logo_dark.png": "logo-long.png"}

_TAG = re.compile(r"<([a-zA-Z][a-zA-Z0-9]*)(\s[^<>]*?)?(/?)>")
_URL_ATTRIBUTE = re.compile(r"""(\s)(src|href)(\s*=\s*)(["'])(.*?)\4""", re.IGNORECASE | re.DOTALL)
_CORS_ATTRIBUTE = re.compile(r"""\s(?:integrity|crossorigin)(?:\s*=\s*(["']).*?\1)?(?=[\s/>]|$)""", re.I)
_CSS_URL = re.compile(r"""url\(\s*(?:"([^"]*)"|'([^']*)'|([^"')\s]*))\s*\)""", re.IGNORECASE)
_EXTERNAL = re.compile(r"^(?:[a-zA-Z][a-zA-Z0-9+.-]*:)?//")


@dataclass(frozen=True)
class VendoredFile:
    """One file of an npm package, as the lock pins it."""

    package: str
    version: str
    file: str
    sha256: str
    urls: tuple[str, ...]

    @property
    def path(self) -> str:
        """Where it lives under the vendor folder (and under the shared vendor folder beside the sites)."""
        return f"{self.package}@{self.version}/{self.file}"


@dataclass(frozen=True)
class VendoredPackage:
    """An npm package version and its tarball's integrity."""

    package: str
    version: str
    tarball: str
    integrity: str
    files: tuple[VendoredFile, ...]


@dataclass
class OfflineDocs:
    """What making a site offline did: pages and stylesheets rewritten, references dropped (not vendored)."""

    pages: int = 0
    stylesheets: int = 0
    dropped: list[str] = field(default_factory=list)


def load_lock(path: Path = LOCK_PATH) -> list[VendoredPackage]:
    """The pinned packages and files."""
    document = orjson.loads(path.read_bytes())
    return [
        VendoredPackage(
            package=entry["package"],
            version=entry["version"],
            tarball=entry["tarball"],
            integrity=entry["integrity"],
            files=tuple(
                VendoredFile(
                    entry["package"], entry["version"], item["file"], item["sha256"], tuple(item["urls"])
                )
                for item in entry["files"]
            ),
        )
        for entry in document["packages"]
    ]


def vendored_files(packages: Iterable[VendoredPackage]) -> list[VendoredFile]:
    """Every pinned file."""
    return [item for package in packages for item in package.files]


def asset_paths(packages: Iterable[VendoredPackage]) -> dict[str, str]:
    """CDN URL -> path under the vendor folder."""
    return {url: item.path for item in vendored_files(packages) for url in item.urls}


def verify_vendored(root: Path = VENDOR_DIR, lock: Path = LOCK_PATH) -> list[str]:
    """Problems of the vendor folder against the lock (missing, changed or unlisted files); empty = good."""
    files = vendored_files(load_lock(lock))
    problems = []
    for item in files:
        target = root / item.path
        if not target.is_file():
            problems.append(f"missing: {item.path}")
        elif hashlib.sha256(target.read_bytes()).hexdigest() != item.sha256:
            problems.append(f"sha256 differs from the lock: {item.path}")
    listed = {item.path for item in files}
    present = {path.relative_to(root).as_posix() for path in root.rglob("*") if path.is_file()}
    problems += [f"not in the lock: {path}" for path in sorted(present - listed)]
    return problems


def css_references(text: str) -> list[str]:
    """The targets of every url(...) of a stylesheet."""
    return [_css_target(match) for match in _CSS_URL.finditer(text)]


def _css_target(match: re.Match[str]) -> str:
    """The target of one url(...), whichever way it is quoted."""
    return next(group for group in match.groups() if group is not None).strip()


def html_references(text: str) -> list[str]:
    """The src/href values of every tag of a page, and every url(...) of its inline styles."""
    found = [
        match.group(5) for tag in _TAG.finditer(text) for match in _URL_ATTRIBUTE.finditer(tag.group(2) or "")
    ]
    return found + css_references(text)


def is_external(reference: str) -> bool:
    """A reference the browser would fetch from another host (http:, https:, protocol-relative)."""
    return bool(_EXTERNAL.match(reference.strip()))


def _local_target(url: str, assets: Mapping[str, str]) -> str | None:
    """The site-relative path standing in for an external URL, if there is one."""
    bare = url.split("#", maxsplit=1)[0]
    if bare in assets:
        return f"{SITE_VENDOR}/{assets[bare]}"
    if bare.startswith(GX_WEB_ASSETS):
        name = bare[len(GX_WEB_ASSETS) :].split("?")[0]
        if name in GX_IMAGE_STANDINS:
            return f"{SITE_IMAGES}/{GX_IMAGE_STANDINS[name]}"
    return None


def rewrite_page(text: str, to_root: str, assets: Mapping[str, str]) -> tuple[str, list[str]]:
    """A page with every external src/href/url() made local (`to_root` leads from the page to the root).

    Vendored assets and GX's logo point to the site's copies (without SRI/CORS attributes, which file://
    cannot satisfy; the lock carries the hashes); a link to another site keeps its text but loses its href;
    any other external reference is dropped and returned, so a GX upgrade that adds one is noticed.
    """
    dropped: list[str] = []

    def tag(match: re.Match[str]) -> str:
        name, attributes, closing = match.group(1), match.group(2) or "", match.group(3)
        changed = False

        def attribute(found: re.Match[str]) -> str:
            nonlocal changed
            url = found.group(5)
            if not is_external(url):
                return found.group(0)
            changed = True
            local = _local_target(url, assets)
            if local is not None:
                space, name_, equals, quote = found.group(1, 2, 3, 4)
                return f"{space}{name_}{equals}{quote}{to_root}{local}{quote}"
            if name.lower() != "a":
                dropped.append(url)
            return ""

        rewritten = _URL_ATTRIBUTE.sub(attribute, attributes)
        if changed:
            rewritten = _CORS_ATTRIBUTE.sub("", rewritten)
        return f"<{name}{rewritten}{closing}>"

    text, styled = rewrite_stylesheet(_TAG.sub(tag, text), to_root)  # the page's inline <style> too
    return text, dropped + styled


def rewrite_stylesheet(text: str, to_root: str) -> tuple[str, list[str]]:
    """A stylesheet with GX's external images made local; other external url(...)s dropped and returned."""
    dropped: list[str] = []

    def url(match: re.Match[str]) -> str:
        target = _css_target(match)
        if not is_external(target):
            return match.group(0)
        local = _local_target(target, {})
        if local is None:
            dropped.append(target)
            return "none"
        return f"url('{to_root}{local}')"

    return _CSS_URL.sub(url, text), dropped


def shared_vendor(site: Path) -> Path:
    """The vendor folder the pages of `site` point to (shared by every run's site beside it)."""
    return (site / SITE_VENDOR).resolve()


def upload_site(store: LandingStore, site: Path) -> str:
    """A data docs site put where the landing place keeps files (a local folder stays where it is): the assets
    every site shares first, once, then the site; its index."""
    store.upload_folder(shared_vendor(site), f"data_docs/{SHARED_VENDOR}", only_new=True)
    return f"{store.upload_folder(site, f'data_docs/{site.name}')}/index.html"


def _link_or_copy(source: str, target: str) -> None:
    """A hard link where the folder is on the same disk, else a copy, put in place atomically; nothing where
    the file is there already (its path carries its version: what is there is that file)."""
    if os.path.isfile(target) and os.path.getsize(target) == os.path.getsize(source):
        return
    temporary = f"{target}.{os.getpid()}-{threading.get_ident()}.partial"
    try:
        os.link(source, temporary)
    except OSError:
        shutil.copy2(source, temporary)
    os.replace(temporary, target)


def make_docs_offline(site: Path, vendor: Path = VENDOR_DIR, lock: Path = LOCK_PATH) -> OfflineDocs:
    """Link the vendored assets into the vendor folder beside a built GX site, rewrite the site's pages and
    stylesheets to point there."""
    assets = asset_paths(load_lock(lock))
    shutil.copytree(vendor, shared_vendor(site), dirs_exist_ok=True, copy_function=_link_or_copy)
    summary = OfflineDocs()
    for page in sorted(site.rglob("*.html")):
        to_root = "../" * (len(page.relative_to(site).parts) - 1)
        text, dropped = rewrite_page(page.read_text(encoding="utf-8"), to_root, assets)
        page.write_text(text, encoding="utf-8")
        summary.pages += 1
        summary.dropped += dropped
    for sheet in sorted((site / "static").rglob("*.css")):
        to_root = "../" * (len(sheet.relative_to(site).parts) - 1)
        text, dropped = rewrite_stylesheet(sheet.read_text(encoding="utf-8"), to_root)
        sheet.write_text(text, encoding="utf-8")
        summary.stylesheets += 1
        summary.dropped += dropped
    return summary
