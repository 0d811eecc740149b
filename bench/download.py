"""Download-only reference: fetch exactly the pages a pipeline run fetches, with the same client and
concurrency, and do nothing with them. The pipeline cannot be faster than this against the same twin."""

from __future__ import annotations

import argparse
import json
import sys
import time
from datetime import date

from flows.parameters import resolve_parameters
from flows.plan import PageRequest, plan_pages
from flows.rawdata.client import ClientConfig, FakerApiClient, PageQuery
from flows.settings import get_settings


def body_size(body: bytes, page: PageRequest) -> int:
    """The 'parser' of a download: keep nothing but the size."""
    return len(body)


def main(argv: list[str] | None = None) -> int:
    """Fetch every page of a run; print bytes and seconds as JSON."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--api-url", required=True)
    parser.add_argument("--total", type=int, default=30_000)
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args(argv)
    settings = get_settings()
    params = resolve_parameters(
        settings, api_url=args.api_url, total=args.total, seed=args.seed, reference_date=date.today()
    )
    started = time.perf_counter()
    with FakerApiClient(ClientConfig(base_url=params.api_url, **settings.client.client_fields())) as client:
        pages = client.iter_pages(plan_pages(params), PageQuery(params.locale), body_size)
        downloaded = sum(size for _, size in pages)
    json.dump({"bytes": downloaded, "seconds": time.perf_counter() - started}, sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
