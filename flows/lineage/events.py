"""OpenLineage events of one run, built by pure functions from names and counts (never a personal value).

The run is one job (the Prefect flow); its input is the Faker API's persons endpoint, its outputs the landed
files, the landing and staging tables it writes and the layers dbt builds above staging. Datasets are named by
the OpenLineage naming spec (`openlineage.client.naming`): `file` + path or `s3://bucket` + key prefix for
the landing place, `snowflake://<org>-<account>` + DATABASE.SCHEMA.TABLE, and `duckdb://<file>` +
catalog.schema.table for the embedded warehouse (the spec has no DuckDB entry: its URL form, the file's path).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from itertools import groupby
from pathlib import PurePosixPath
from typing import Any
from urllib.parse import urlsplit

from openlineage.client.event_v2 import InputDataset, Job, OutputDataset, Run, RunEvent, RunState
from openlineage.client.facet_v2 import (
    DatasetFacet,
    InputDatasetFacet,
    OutputDatasetFacet,
    RunFacet,
    dataset_type_dataset,
    documentation_job,
    error_message_run,
    input_statistics_input_dataset,
    job_type_job,
    output_statistics_output_dataset,
    processing_engine_run,
    schema_dataset,
    tags_run,
)
from openlineage.client.naming.dataset import S3, LocalFileSystem, Snowflake

PRODUCER = "urn:persons-pipeline"
# The relations a run writes itself (the layers above staging are found in the catalog: whatever dbt built).
WRITTEN_TABLES = (
    ("landing", "persons"),
    ("landing", "quarantined_persons"),
    ("landing", "batches"),
    ("staging", "persons"),
)
PUBLISHED_SCHEMAS = ("transform", "analytics", "reporting")
MAX_REASON_CHARS = 500


@dataclass(frozen=True)
class JobRef:
    """Who the events are about: the flow as a job, and how it runs."""

    namespace: str
    name: str
    description: str
    prefect_version: str
    pipeline_version: str
    tags: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Places:
    """Where the run reads and writes, as OpenLineage (namespace, name) pairs or their parts."""

    api: tuple[str, str]
    landing: tuple[str, str]
    warehouse_namespace: str
    warehouse_database: str
    upper_case: bool  # Snowflake folds unquoted identifiers to upper case; DuckDB keeps lower case


@dataclass(frozen=True)
class RunCounts:
    """What the run's batches moved, from its audit rows (counts only)."""

    received: int  # records the API served to this run (batches fetched from cache: none)
    landed_rows: int  # persons and quarantined rows in the files this run wrote
    landed_files: int
    loaded_persons: int
    loaded_quarantined: int
    batch_rows: int
    merged_persons: int


@dataclass(frozen=True)
class Relation:
    """A table or view of the warehouse: its columns (names and types) and, where counted, its rows."""

    schema: str
    name: str
    kind: str  # the catalog's table_type: BASE TABLE or VIEW
    columns: tuple[tuple[str, str], ...]
    rows: int | None = None


def api_dataset(api_url: str) -> tuple[str, str]:
    """(scheme://host[:port], path of the persons endpoint) of the API, without credentials or query."""
    parts = urlsplit(api_url)
    host = parts.hostname or ""
    authority = f"{host}:{parts.port}" if parts.port else host
    return f"{parts.scheme}://{authority}", f"{parts.path.rstrip('/')}/persons"


def landing_dataset(identity: str) -> tuple[str, str]:
    """(namespace, name) of the landing place: `file` + its folder, or `s3://bucket` + the key prefix."""
    if identity.startswith("s3://"):
        parts = urlsplit(identity)
        prefix = parts.path.strip("/") or "/"
        naming: S3 | LocalFileSystem = S3(bucket_name=parts.netloc, object_key=prefix)
    else:
        naming = LocalFileSystem(path=identity.removeprefix("file://"))
    return naming.get_namespace(), naming.get_name()


def warehouse_places(
    kind: str, duckdb_file: str, snowflake_account: str | None, snowflake_database: str | None
) -> tuple[str, str]:
    """(namespace, database) of the warehouse: duckdb://<file> and the file's catalog, or Snowflake's."""
    if kind == "snowflake":
        account = (snowflake_account or "unknown").lower()
        database = (snowflake_database or "unknown").upper()
        organization, _, name = account.partition("-")
        if not name:  # an account locator (xy12345.eu-west-1) has no organisation part
            return f"snowflake://{account}", database
        naming = Snowflake(organization, name, database, "schema", "table")
        return naming.get_namespace(), database
    return f"duckdb://{duckdb_file}", PurePosixPath(duckdb_file).stem


def run_uuid(run_id: str) -> str:
    """The OpenLineage run id: the Prefect flow run id (a UUID), or a stable UUID made from a local id."""
    try:
        return str(uuid.UUID(run_id))
    except ValueError:
        return str(uuid.uuid5(uuid.NAMESPACE_URL, f"persons-pipeline:{run_id}"))


def one_line_reason(exc: BaseException) -> str:
    """The failure as one short line: its type and the first line of its message (counts and names only)."""
    lines = str(exc).strip().splitlines()
    text = f"{type(exc).__name__}: {lines[0]}" if lines else type(exc).__name__
    return text if len(text) <= MAX_REASON_CHARS else text[: MAX_REASON_CHARS - 3] + "..."


def run_counts(batches: Iterable[Sequence[Any]], run_id: str) -> RunCounts:
    """Sum a run's audit rows (batch_id, status, persons, quarantined, extracted, landed_file)."""
    received = landed_rows = landed_files = loaded_persons = loaded_quarantined = merged = rows = 0
    for _, status, persons, quarantined, extracted, landed_file in batches:
        rows += 1
        if landed_file is None:  # rejected before landing: the source did not deliver it
            continue
        loaded_persons += int(persons)
        loaded_quarantined += int(quarantined)
        if f"/{run_id}/" in f"/{landed_file}":  # fetched and landed by this run, not taken from the cache
            received += int(extracted)
            landed_rows += int(persons) + int(quarantined)
            landed_files += 2
        if status == "merged":
            merged += int(persons)
    return RunCounts(received, landed_rows, landed_files, loaded_persons, loaded_quarantined, rows, merged)


def relations_from_columns(rows: Iterable[Sequence[Any]]) -> list[Relation]:
    """Group catalog rows (schema, table, table_type, column, data_type), in column order, by relation."""
    relations = []
    for (schema, name, kind), columns in groupby(rows, key=lambda row: (row[0], row[1], row[2])):
        relations.append(
            Relation(str(schema), str(name), str(kind), tuple((str(c[3]), str(c[4])) for c in columns))
        )
    return relations


def is_published(relation: Relation) -> bool:
    """Whether the relation belongs to a layer dbt builds above staging."""
    return relation.schema.lower() in PUBLISHED_SCHEMAS


def _qualified(places: Places, schema: str, table: str) -> str:
    name = f"{places.warehouse_database}.{schema}.{table}"
    return name.upper() if places.upper_case else name.lower()


def _schema_facet(relation: Relation | None) -> dict[str, DatasetFacet]:
    if relation is None:
        return {}
    fields = [
        schema_dataset.SchemaDatasetFacetFields(
            name=column.lower(), type=data_type, ordinal_position=position
        )
        for position, (column, data_type) in enumerate(relation.columns, start=1)
    ]
    kind = "VIEW" if "VIEW" in relation.kind.upper() else "TABLE"
    return {
        "schema": schema_dataset.SchemaDatasetFacet(fields=fields),
        "datasetType": dataset_type_dataset.DatasetTypeDatasetFacet(datasetType=kind),
    }


def _statistics(rows: int | None, files: int | None = None) -> dict[str, OutputDatasetFacet]:
    if rows is None:
        return {}
    return {
        "outputStatistics": output_statistics_output_dataset.OutputStatisticsOutputDatasetFacet(
            rowCount=rows, fileCount=files
        )
    }


def input_datasets(places: Places, counts: RunCounts | None) -> list[InputDataset]:
    """The API's persons endpoint, with the records it served to this run."""
    facets: dict[str, InputDatasetFacet] = (
        {}
        if counts is None
        else {
            "inputStatistics": input_statistics_input_dataset.InputStatisticsInputDatasetFacet(
                rowCount=counts.received
            )
        }
    )
    namespace, name = places.api
    return [InputDataset(namespace=namespace, name=name, inputFacets=facets)]


def output_datasets(
    places: Places, counts: RunCounts | None, relations: Sequence[Relation]
) -> list[OutputDataset]:
    """Landed files, the tables the run wrote (rows written) and the published layers (rows they hold)."""
    catalog = {(r.schema.lower(), r.name.lower()): r for r in relations}
    landing_namespace, landing_name = places.landing
    written: list[int | None] = (
        [None, None, None, None]
        if counts is None
        else [counts.loaded_persons, counts.loaded_quarantined, counts.batch_rows, counts.merged_persons]
    )
    outputs = [
        OutputDataset(
            namespace=landing_namespace,
            name=landing_name,
            facets={"datasetType": dataset_type_dataset.DatasetTypeDatasetFacet(datasetType="FILE")},
            outputFacets=_statistics(
                None if counts is None else counts.landed_rows,
                None if counts is None else counts.landed_files,
            ),
        )
    ]
    for (schema, table), rows in zip(WRITTEN_TABLES, written, strict=True):
        outputs.append(
            OutputDataset(
                namespace=places.warehouse_namespace,
                name=_qualified(places, schema, table),
                facets=_schema_facet(catalog.get((schema, table))),
                outputFacets=_statistics(rows),
            )
        )
    for relation in relations:
        if is_published(relation):
            outputs.append(
                OutputDataset(
                    namespace=places.warehouse_namespace,
                    name=_qualified(places, relation.schema, relation.name),
                    facets=_schema_facet(relation),
                    outputFacets=_statistics(relation.rows),
                )
            )
    return outputs


def _job(job: JobRef) -> Job:
    return Job(
        namespace=job.namespace,
        name=job.name,
        facets={
            "jobType": job_type_job.JobTypeJobFacet(
                processingType="BATCH", integration="PREFECT", jobType="FLOW"
            ),
            "documentation": documentation_job.DocumentationJobFacet(description=job.description),
        },
    )


def _run(job: JobRef, run_id: str, failure: str | None) -> Run:
    facets: dict[str, RunFacet] = {
        "processing_engine": processing_engine_run.ProcessingEngineRunFacet(
            version=job.prefect_version, name="prefect", openlineageAdapterVersion=job.pipeline_version
        ),
        "tags": tags_run.TagsRunFacet(
            tags=[
                tags_run.TagsRunFacetFields(key=key, value=value, source="persons-pipeline")
                for key, value in sorted(job.tags.items())
            ]
        ),
    }
    if failure is not None:
        facets["errorMessage"] = error_message_run.ErrorMessageRunFacet(
            message=failure, programmingLanguage="python"
        )
    return Run(runId=run_uuid(run_id), facets=facets)


def start_event(job: JobRef, run_id: str, event_time: datetime, places: Places) -> RunEvent:
    """The run began: the job, the run and the datasets it will read and write (no counts yet)."""
    return RunEvent(
        eventType=RunState.START,
        eventTime=event_time.isoformat(),
        run=_run(job, run_id, None),
        job=_job(job),
        producer=PRODUCER,
        inputs=input_datasets(places, None),
        outputs=output_datasets(places, None, []),
    )


def end_event(
    job: JobRef,
    run_id: str,
    event_time: datetime,
    places: Places,
    counts: RunCounts | None,
    relations: Sequence[Relation],
    failure: str | None,
) -> RunEvent:
    """The run ended: COMPLETE, or FAIL with the one-line reason; datasets with their row counts."""
    return RunEvent(
        eventType=RunState.FAIL if failure is not None else RunState.COMPLETE,
        eventTime=event_time.isoformat(),
        run=_run(job, run_id, failure),
        job=_job(job),
        producer=PRODUCER,
        inputs=input_datasets(places, counts),
        outputs=output_datasets(places, counts, relations),
    )
