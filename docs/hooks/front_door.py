"""mkdocs hook: the site's home page is the README (one front door), its links rewritten for the site."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

README = Path(__file__).resolve().parents[2] / "README.md"
DOCS_LINK = re.compile(r"\]\(docs/")


def on_page_markdown(markdown: str, page: Any, **_: Any) -> str:
    if page.file.src_uri != "index.md":
        return markdown
    return DOCS_LINK.sub("](", README.read_text(encoding="utf-8"))
