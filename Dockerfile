# Persons pipeline image: what the ECS work pool runs, and what `make image-test` builds and runs locally.
# BASE_IMAGE defaults to the official slim Python of the version the tests use; any Debian-based Python works.
ARG BASE_IMAGE=python:3.11-slim-bookworm

FROM ${BASE_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
WORKDIR /build
RUN python3 -m venv /opt/venv
# Dependencies first, from the pinned set, so code changes do not invalidate this layer.
COPY requirements.txt ./
RUN /opt/venv/bin/pip install --no-cache-dir --requirement requirements.txt
COPY pyproject.toml README.md ./
COPY flows ./flows
RUN /opt/venv/bin/pip install --no-cache-dir --no-deps . \
    && find /opt/venv -name '__pycache__' -type d -prune -exec rm -rf {} +

FROM ${BASE_IMAGE} AS runtime
LABEL org.opencontainers.image.title="persons-pipeline" \
      org.opencontainers.image.description="Faker API persons: extract, anonymise, land, validate, load, report (Prefect)" \
      org.opencontainers.image.licenses="MIT" \
      org.opencontainers.image.source="https://example.invalid/persons-pipeline"
RUN groupadd --gid 10001 pipeline \
    && useradd --create-home --uid 10001 --gid 10001 --shell /usr/sbin/nologin pipeline
COPY --from=build /opt/venv /opt/venv
COPY sql /app/sql
COPY expectations /app/expectations
COPY flows /app/flows
COPY prefect.yaml /app/prefect.yaml
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PERSONS_SQL_DIR=/app/sql \
    PERSONS_EXPECTATIONS_DIR=/app/expectations \
    PERSONS_DATA_DIR=/home/pipeline/data \
    PREFECT_HOME=/home/pipeline/.prefect \
    GX_ANALYTICS_ENABLED=false \
    DO_NOT_TRACK=1
USER 10001:10001
WORKDIR /app
# A batch job has no port to probe: healthy means the pipeline's code and dependencies import.
HEALTHCHECK --interval=60s --timeout=30s --start-period=10s --retries=2 \
    CMD ["python", "-c", "import flows.run.pipeline"]
# No ENTRYPOINT: Prefect workers (process, ECS) replace the command with `prefect flow-run execute`.
CMD ["persons-pipeline", "run"]
