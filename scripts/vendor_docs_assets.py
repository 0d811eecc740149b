"""Fetch the data docs' CDN assets from npm into flows/gate/offline/vendor, verified (make vendor).

The lock (flows/gate/offline/assets.lock.json) is the one declaration: package, version, the files taken from
its tarball and the CDN URLs GX's pages load them from. Every tarball is checked against the registry's
sha512 integrity and the lock's; every extracted file against the lock's sha256. `--update` records the
hashes of a new or changed entry (and the files a vendored stylesheet refers to, e.g. Font Awesome's
webfonts) instead of refusing it.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import io
import re
import shutil
import sys
import tarfile
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import quote

import httpx
import orjson

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from flows.gate.offline_docs import LOCK_PATH, VENDOR_DIR, css_references, verify_vendored  # noqa: E402


def sri_sha512(data: bytes) -> str:
    """The npm `integrity` form of a tarball's hash."""
    return "sha512-" + base64.b64encode(hashlib.sha512(data).digest()).decode()


def fetch_package(
    client: httpx.Client, registry: str, entry: dict[str, Any], update: bool
) -> dict[str, bytes]:
    """The tarball's files (verified), by path inside the package."""
    name, version = entry["package"], entry["version"]
    meta = client.get(f"{registry}/{quote(name, safe='@')}/{version}").raise_for_status().json()
    dist = meta["dist"]
    tarball = client.get(dist["tarball"]).raise_for_status().content
    integrity = sri_sha512(tarball)
    if integrity != dist["integrity"]:
        raise SystemExit(f"{name}@{version}: tarball does not match the registry's integrity")
    if entry.get("integrity") and entry["integrity"] != integrity and not update:
        raise SystemExit(f"{name}@{version}: tarball integrity {integrity} differs from the lock")
    entry["tarball"], entry["integrity"] = dist["tarball"], integrity
    files: dict[str, bytes] = {}
    with tarfile.open(fileobj=io.BytesIO(tarball), mode="r:gz") as archive:
        for member in archive.getmembers():
            if member.isfile():
                inner = PurePosixPath(*PurePosixPath(member.name).parts[1:])  # strip the `package/` folder
                extracted = archive.extractfile(member)
                if extracted is not None:
                    files[str(inner)] = extracted.read()
    return files


def referenced_files(path: str, text: str) -> list[str]:
    """Package-relative files a vendored stylesheet refers to (fonts, images), without query or fragment."""
    folder = PurePosixPath(path).parent
    found = []
    for reference in css_references(text):
        if reference.startswith(("data:", "#")) or re.match(r"^[a-z]+:", reference):
            continue
        target = str(PurePosixPath(*_normalise(folder / reference.split("?")[0].split("#")[0])))
        found.append(target)
    return sorted(set(found))


def _normalise(path: PurePosixPath) -> list[str]:
    parts: list[str] = []
    for part in path.parts:
        if part == "..":
            parts.pop()
        elif part != ".":
            parts.append(part)
    return parts


def vendor(update: bool) -> int:
    lock = orjson.loads(LOCK_PATH.read_bytes())
    staged = VENDOR_DIR.with_name("vendor.new")
    shutil.rmtree(staged, ignore_errors=True)
    with httpx.Client(timeout=60, follow_redirects=True) as client:
        for entry in lock["packages"]:
            contents = fetch_package(client, lock["registry"], entry, update)
            listed = {item["file"]: item for item in entry["files"]}
            for item in list(entry["files"]):
                if item["file"].endswith(".css"):
                    text = contents[item["file"]].decode("utf-8")
                    for extra in referenced_files(item["file"], text):
                        if extra not in listed:
                            if not update:
                                raise SystemExit(f"{entry['package']}: {item['file']} needs {extra}")
                            listed[extra] = {"file": extra, "sha256": "", "urls": []}
                            entry["files"].append(listed[extra])
            for item in entry["files"]:
                data = contents.get(item["file"])
                if data is None:
                    raise SystemExit(f"{entry['package']}@{entry['version']} has no file {item['file']}")
                digest = hashlib.sha256(data).hexdigest()
                if item["sha256"] and item["sha256"] != digest and not update:
                    raise SystemExit(f"{entry['package']}/{item['file']}: sha256 differs from the lock")
                item["sha256"] = digest
                target = staged / f"{entry['package']}@{entry['version']}" / item["file"]
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(data)
            entry["files"].sort(key=lambda item: item["file"])
            count = len(entry["files"])
            print(f"{entry['package']}@{entry['version']}: {count} file(s), {entry['integrity'][:23]}...")
    shutil.rmtree(VENDOR_DIR, ignore_errors=True)
    staged.rename(VENDOR_DIR)
    if update:
        LOCK_PATH.write_bytes(orjson.dumps(lock, option=orjson.OPT_INDENT_2) + b"\n")
    problems = verify_vendored()
    for problem in problems:
        print(problem, file=sys.stderr)
    return 1 if problems else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--update", action="store_true", help="record new hashes instead of refusing")
    return vendor(parser.parse_args().update)


if __name__ == "__main__":
    raise SystemExit(main())
