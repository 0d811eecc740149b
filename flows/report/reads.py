"""The report's reads: the reporting models and the batch audit trail, read through the engine port."""

from __future__ import annotations

from datetime import datetime

from flows.report.charts import RunQuality
from flows.report.render import TOP_COUNTRIES, Report, accounting_of, protection_counts
from flows.warehouse import Warehouse


def read_quality_trend(warehouse: Warehouse, runs: int) -> list[RunQuality]:
    """The last `runs` runs' batch verdicts and quarantine rates, oldest first (the report's trend).

    Read from landing.batches, the audit trail every engine keeps; the one place to switch to a monitoring
    view once the warehouse has one.
    """
    with warehouse.cursor() as cursor:
        rows = cursor.execute(warehouse.sql("reporting/select_quality_trend"), runs=runs)
    return [
        RunQuality(
            run_id=str(run_id),
            started_at=started.isoformat(timespec="seconds")
            if isinstance(started, datetime)
            else str(started),
            batches=int(batches),
            merged_batches=int(merged),
            rejected_batches=int(rejected),
            held_back_batches=int(held_back),
            merged_pct=None if merged_pct is None else float(merged_pct),
            quarantined_pct=None if quarantined_pct is None else float(quarantined_pct),
        )
        for run_id, started, batches, merged, rejected, held_back, merged_pct, quarantined_pct in rows
    ]


def read_report(warehouse: Warehouse, top_n: int = TOP_COUNTRIES) -> Report:
    """The report, read from the reporting models (with how published persons are protected), under the
    engine's caps for reads over the published layers."""
    return warehouse.heavy_reads(lambda: _read_report(warehouse, top_n))


def _read_report(warehouse: Warehouse, top_n: int) -> Report:
    with warehouse.cursor() as cursor:
        summary = cursor.execute(warehouse.sql("reporting/select_report_summary"))[0]
        total, share, over_60, quarantined, rejected = summary
        top = cursor.execute(warehouse.sql("reporting/select_top_gmail_countries"), top_n=top_n)
        groups = cursor.execute(warehouse.sql("reporting/select_age_groups"))
        reasons = cursor.execute(warehouse.sql("reporting/select_quarantine_reasons"))
        accounting = cursor.execute(warehouse.sql("reporting/select_report_accounting"))[0]
        protection = cursor.execute(warehouse.sql("reporting/select_k_anonymity"))
    _, fingerprint, reference_date, requested, received, erased, rejected_records = accounting
    if isinstance(reference_date, datetime):
        reference_date = reference_date.date()
    return Report(
        total_persons=int(total),
        gmail_germany_share_pct=None if share is None else float(share),
        top_gmail_countries=[{"country": country, "gmail_users": int(users)} for country, users in top],
        gmail_over_60=int(over_60),
        age_groups=[{"age_group": group, "persons": int(persons)} for group, persons in groups],
        quarantined=int(quarantined),
        quarantine_reasons={reason: int(records) for reason, records in reasons},
        rejected_batches=int(rejected),
        reference_date=reference_date.isoformat() if reference_date else None,
        key_fingerprint=fingerprint,
        accounting=accounting_of(
            int(requested) + int(rejected_records),
            int(received),
            int(total),
            int(quarantined),
            int(rejected_records),
            int(erased),
        ),
        k_anonymity=protection_counts(protection[0]) if protection else {},
    )
