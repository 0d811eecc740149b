"""The model builds' repository: each dbt build's outcome, and the fingerprint of the last good one."""

from __future__ import annotations

from dataclasses import dataclass

from flows.warehouse.base import Warehouse, utc_now


@dataclass(frozen=True)
class BuildOutcome:
    """One dbt build of the models: what it built, under which fingerprint and k, and how it ended."""

    fingerprint: str
    k_anonymity: int
    status: str
    run_id: str
    models: int
    tests: int
    seconds: float


def models_fingerprint(warehouse: Warehouse) -> str | None:
    """The fingerprint of the models' last successful dbt build here (None: never built)."""
    with warehouse.cursor() as cursor:
        rows = cursor.execute(warehouse.sql("landing/select_models_fingerprint"))
    return str(rows[0][0]) if rows else None


def record_models_build(warehouse: Warehouse, build: BuildOutcome) -> None:
    """Append a dbt build's outcome to landing.model_builds."""
    with warehouse.cursor() as cursor:
        cursor.execute(
            warehouse.sql("landing/insert_model_build"),
            fingerprint=build.fingerprint,
            k_anonymity=build.k_anonymity,
            status=build.status,
            run_id=build.run_id,
            models=build.models,
            tests=build.tests,
            seconds=build.seconds,
            built_at=utc_now(),
        )
