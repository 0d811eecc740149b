"""The naive baseline the pipeline is measured against, shaped like the case study's original script.

Sequential and in memory: one plain `requests` call per page, the raw records collected in a list, each
record anonymised by a recursive walk over its fields, the whole list normalised into a DataFrame and the
report questions answered on it. Correct, simple and slow; kept in the repository so that the benchmark
runs it side by side with the pipeline, in the same run, against the same twin, for the same pages.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import sys
import time
from datetime import date, datetime
from typing import Any

import pandas as pd
import requests

from flows.plan import page_seed

REMOVED_FIELDS = {"firstname", "lastname", "phone", "street", "streetName", "buildingNumber", "zipcode"}
DROPPED_FIELDS = {"latitude", "longitude", "coordinates", "website", "image", "id"}


def fetch_all(api_url: str, total: int, page_size: int, seed: int, locale: str) -> list[dict[str, Any]]:
    """Page by page, one request at a time, every raw record kept in a list."""
    persons: list[dict[str, Any]] = []
    page = 0
    while len(persons) < total:
        quantity = min(page_size, total - len(persons))
        params = {
            "_quantity": quantity,
            "_seed": page_seed(seed, locale, None, None, page),
            "_locale": locale,
        }
        response = requests.get(f"{api_url}/persons", params=params, timeout=60)
        response.raise_for_status()
        persons += response.json()["data"]
        page += 1
    return persons


def age_group(birthday: str, today: date) -> str:
    """Decade bins, computed per record."""
    born = datetime.strptime(birthday, "%Y-%m-%d").date()
    age = today.year - born.year - ((today.month, today.day) < (born.month, born.day))
    if age < 0:
        raise ValueError("birthday in the future")
    low = 1 if age <= 10 else (age - 1) // 10 * 10 + 1
    return f"[{low:02d}-{low + 9}]"


def anonymise(person: dict[str, Any], today: date) -> dict[str, Any]:
    """Walk one record field by field: mask personal fields, keep the domain and the age group."""
    result: dict[str, Any] = {}
    for key, value in person.items():
        if isinstance(value, dict):
            result[key] = anonymise(value, today)
        elif key in REMOVED_FIELDS:
            result[key] = "****"
        elif key in DROPPED_FIELDS:
            continue
        elif key == "email":
            result["email_domain"] = re.sub(".*@", "", value).lower()
            identity = "|".join(
                str(person.get(k)) for k in ("firstname", "lastname", "email", "phone", "birthday")
            )
            result["person_key"] = hashlib.sha256(identity.encode()).hexdigest()
        elif key == "birthday":
            result["age_group"] = age_group(value, today)
        else:
            result[key] = value
    return result


def analyse(frame: pd.DataFrame) -> dict[str, Any]:
    """The report questions, on the in-memory frame."""
    frame = frame.drop_duplicates("person_key")
    gmail = frame[frame["email_domain"].isin(["gmail.com", "googlemail.com"])]
    top = gmail.groupby("address_country").size().reset_index(name="gmail_users")
    top = top.sort_values(["gmail_users", "address_country"], ascending=[False, True]).head(3)
    low = gmail["age_group"].str.strip("[]").str.split("-").str[0].astype(int)
    return {
        "total_persons": len(frame),
        "gmail_germany_share_pct": 100.0 * (gmail["address_country_code"] == "DE").sum() / len(frame),
        "top_gmail_countries": top.to_dict("records"),
        "gmail_over_60": int((low > 60).sum()),
        "age_groups": frame.groupby("age_group").size().to_dict(),
    }


def main(argv: list[str] | None = None) -> int:
    """Run the baseline; print its report and stage timings as JSON."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--api-url", required=True)
    parser.add_argument("--total", type=int, default=30_000)
    parser.add_argument("--page-size", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--locale", default="en_US")
    parser.add_argument("--reference-date", type=date.fromisoformat, default=date.today())
    args = parser.parse_args(argv)
    started = time.perf_counter()
    persons = fetch_all(args.api_url, args.total, args.page_size, args.seed, args.locale)
    fetched = time.perf_counter()
    anonymised = [anonymise(person, args.reference_date) for person in persons]
    frame = pd.json_normalize(anonymised, sep="_")
    transformed = time.perf_counter()
    report = analyse(frame)
    done = time.perf_counter()
    stages = {"extract": fetched - started, "anonymise": transformed - fetched, "analyse": done - transformed}
    json.dump({"report": report, "stages": stages}, sys.stdout, default=str)
    return 0


if __name__ == "__main__":
    sys.exit(main())
