"""Runtime settings: the one place configuration is read from the environment (prefix ``PERSONS_``)."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

from pydantic import AliasChoices, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from flows.parameters import RunDefaults

# Deliberately obvious: the offline quickstart and the tests ask for it explicitly
# (PERSONS_ALLOW_DEMO_SECRET); everything else must bring its own key (see `person_key_secret`).
OFFLINE_DEMO_SECRET = "offline-quickstart-secret-NOT-FOR-PRODUCTION"  # noqa: S105
# The shortest person_key key accepted: 256 bits, so that the key cannot be guessed.
MIN_SECRET_BYTES = 32
# A memory size as DuckDB takes it (the caps below).
MEMORY_SIZE = r"\d+(\.\d+)?\s*(KB|MB|GB|KiB|MiB|GiB)"


class PipelineSettings(RunDefaults, BaseSettings):  # type: ignore[misc]  # two pydantic bases, one model
    """Every tunable of the pipeline, with a default, a description and bounds."""

    model_config = SettingsConfigDict(
        env_prefix="PERSONS_",
        extra="ignore",
        frozen=True,
        populate_by_name=True,
        hide_input_in_errors=True,  # an error must never quote a value: several settings are secrets
    )

    # --- where to: the environment picks the warehouse and the landing place; run parameters may override ---
    environment: Literal["local", "dev", "prod"] = Field(
        "local", description="local = DuckDB + folder; dev/prod = Snowflake + S3 with per-environment names."
    )
    dev_landing_url: str = Field("s3://persons-landing-dev/persons", description="Landing place of dev.")
    prod_landing_url: str = Field("s3://persons-landing-prod/persons", description="Landing place of prod.")
    dev_snowflake_database: str = Field("PERSONS_DEV", description="Snowflake database of dev.")
    prod_snowflake_database: str = Field("PERSONS_PROD", description="Snowflake database of prod.")
    s3_bucket_block: str | None = Field(
        None,
        description="Name of a saved prefect-aws S3Bucket block to land with (else the AWS environment).",
    )
    aws_endpoint_url: str | None = Field(
        None,
        validation_alias=AliasChoices("AWS_ENDPOINT_URL", "PERSONS_AWS_ENDPOINT_URL"),
        description="Non-default S3 endpoint (the standard AWS_ENDPOINT_URL).",
    )

    # --- the run parameters' defaults are inherited from RunDefaults (flows/parameters.py) ---

    # --- HTTP client ---
    request_timeout_s: float = Field(
        15.0,
        gt=0,
        le=300,
        description="Longest one request may take as a whole: connect, send and every read of the answer "
        "(a source that trickles its answer is cut there).",
    )
    max_attempts: int = Field(10, ge=1, le=50, description="Attempts per page before the page fails.")
    backoff_initial_s: float = Field(0.25, ge=0, le=60, description="First retry delay (doubles, jittered).")
    backoff_max_s: float = Field(15.0, ge=0, le=600, description="Upper bound of one retry delay.")
    retry_after_max_s: float = Field(
        120.0, ge=0, le=3600, description="Longest Retry-After that is honoured."
    )
    rate_limit_per_s: float = Field(
        100.0, ge=0, le=10_000, description="Client-side request rate limit (0 = unlimited)."
    )
    max_in_flight: int = Field(4, ge=1, le=64, description="Requests in flight at once.")
    batches_in_flight: int = Field(
        2, ge=1, le=8, description="Batches extracted ahead of the one being validated (bounds memory)."
    )

    gate_process: Literal["orchestrator", "separate"] = Field(
        "orchestrator",
        description="Where the validation gate runs: in the orchestrating process (leaner, no batch copied) "
        "or in a process of its own.",
    )

    # --- DuckDB: the embedded warehouse ---
    duckdb_memory_limit: str = Field(
        "auto",
        pattern=rf"^(auto|{MEMORY_SIZE})$",
        description="DuckDB's memory cap; auto = 128MB, more for batches whose transaction needs it.",
    )
    duckdb_report_memory_limit: str = Field(
        "256MB",
        pattern=rf"^{MEMORY_SIZE}$",
        description="DuckDB's memory cap while the report reads the k-anonymous views (the raw-data worker "
        "has stopped by then): at 10,000,000 persons they ran out of 128MB.",
    )
    duckdb_threads: int = Field(2, ge=1, le=64, description="DuckDB worker threads.")
    duckdb_lock_timeout_s: float = Field(
        900.0, ge=0, le=86_400, description="How long to wait for another process's write lock on the file."
    )

    # --- Snowflake: Snowflake's own environment names, so existing setups carry over ---
    snowflake_account: str | None = Field(
        None,
        validation_alias=AliasChoices("SNOWFLAKE_ACCOUNT"),
        description="Account identifier (e.g. xy12345.eu-central-1).",
    )
    snowflake_user: str | None = Field(
        None, validation_alias=AliasChoices("SNOWFLAKE_USER"), description="User the pipeline logs in as."
    )
    snowflake_password: SecretStr | None = Field(
        None,
        validation_alias=AliasChoices("SNOWFLAKE_PASSWORD"),
        description="Password (or a key pair, or a block or AWS secret holding the password).",
    )
    snowflake_private_key_path: Path | None = Field(
        None,
        validation_alias=AliasChoices("SNOWFLAKE_PRIVATE_KEY_PATH"),
        description="Private key file for key-pair authentication, instead of a password.",
    )
    snowflake_private_key_passphrase: SecretStr | None = Field(
        None,
        validation_alias=AliasChoices("SNOWFLAKE_PRIVATE_KEY_PASSPHRASE"),
        description="Passphrase of that private key.",
    )
    snowflake_role: str | None = Field(
        None, validation_alias=AliasChoices("SNOWFLAKE_ROLE"), description="Role the session uses."
    )
    snowflake_warehouse: str | None = Field(
        None,
        validation_alias=AliasChoices("SNOWFLAKE_WAREHOUSE"),
        description="Virtual warehouse that runs the queries.",
    )
    snowflake_database: str | None = Field(
        None,
        validation_alias=AliasChoices("SNOWFLAKE_DATABASE"),
        description="Database (unset: the environment's, PERSONS_DEV_/PROD_SNOWFLAKE_DATABASE).",
    )
    snowflake_host: str | None = Field(
        None, validation_alias=AliasChoices("SNOWFLAKE_HOST"), description="Host of a non-default endpoint."
    )
    snowflake_port: int | None = Field(
        None,
        ge=1,
        le=65535,
        validation_alias=AliasChoices("SNOWFLAKE_PORT"),
        description="Port of a non-default endpoint.",
    )
    snowflake_protocol: Literal["https", "http"] | None = Field(
        None,
        validation_alias=AliasChoices("SNOWFLAKE_PROTOCOL"),
        description="Protocol of a non-default endpoint.",
    )
    snowflake_password_block: str | None = Field(
        None,
        description="Name of a Prefect Secret block holding the Snowflake password (instead of the env).",
    )
    snowflake_password_aws_secret: str | None = Field(
        None,
        description="Name or ARN of an AWS Secrets Manager secret holding the Snowflake password.",
    )
    snowflake_create_database: bool = Field(
        False,
        description="Create the database if missing (dev and tests; production databases are provisioned).",
    )
    snowflake_login_timeout_s: int = Field(60, ge=1, le=600, description="Login timeout.")

    # --- concurrency: runs that write one warehouse at once (DuckDB allows one writer process) ---
    snowflake_concurrent_runs: int = Field(
        4, ge=1, le=64, description="Runs writing one Snowflake database at once."
    )
    warehouse_slot_timeout_s: float = Field(
        3600.0, ge=1, le=86_400, description="How long a run waits for its turn on the warehouse."
    )
    warehouse_slot_lease_s: float = Field(
        60.0,
        ge=60,
        le=3600,
        description="Lease of a run's warehouse slot, renewed while it runs; a dead run's slot ends with it.",
    )

    # --- the Prefect runtime: the local server, used when PREFECT_API_URL is not set ---
    prefect_server_home: Path = Field(
        Path.home() / ".persons-pipeline" / "prefect-server",
        description="PREFECT_HOME of the local Prefect server (its database; never a client's home).",
    )
    prefect_server_port: int = Field(
        4200, ge=0, le=65535, description="Port of the local Prefect server (0 or taken: a free one)."
    )
    prefect_server_start_timeout_s: float = Field(
        300.0, ge=5, le=3600, description="How long a run waits for the local Prefect server to start."
    )

    # --- pages over http: the report pages, data docs and dbt docs, read-only on 127.0.0.1 ---
    pages_server: bool = Field(
        True,
        description="Serve the run's pages read-only on 127.0.0.1 (one server per user, started by the first "
        "run landing in a local folder) so that the Prefect UI's links open them.",
    )
    pages_server_home: Path = Field(
        Path.home() / ".persons-pipeline" / "pages-server",
        description="Home of that server: its state and the data folders it may show.",
    )
    pages_server_port: int = Field(8765, ge=0, le=65535, description="Its port (0, or taken: a free one).")

    # --- bounds of a run: time and disk ---
    min_free_disk_mib: float = Field(
        64.0, ge=0, le=10_000_000, description="Free space a run needs on the data folder's disk to start."
    )
    run_deadline_s: float = Field(
        21_600.0,
        ge=0,
        le=7 * 86_400,
        description="Longest a run may take (0 = no limit); Retry-After waits count against it.",
    )

    # --- dbt: the layers above staging (`sql/dbt`) and what they publish ---
    k_anonymity: int = Field(
        5,
        ge=2,
        le=1000,
        description="Smallest published class of quasi-identifiers (gender, age group, country, domain).",
    )
    dbt_threads: int = Field(2, ge=1, le=32, description="Models and tests dbt builds at once.")
    dbt_duckdb_memory_limit: str = Field(
        "1GB",
        pattern=rf"^{MEMORY_SIZE}$",
        description="DuckDB's memory cap while dbt builds and tests the models (the run's own connection is "
        "closed then; the k-anonymity tests over a million persons need more than the run's 128MB).",
    )

    # --- the report page: `reports/<run_id>/report.html` and its charts ---
    report_trend_runs: int = Field(
        10, ge=1, le=200, description="Runs shown in the report page's quality trend (the latest ones)."
    )

    # --- alerts ---
    alert_webhook_url: SecretStr | None = Field(
        None, description="Webhook that failed or crashed runs are reported to (usually embeds a token)."
    )
    alert_webhook_block: str | None = Field(
        None, description="Name of a Prefect Secret block holding the alert webhook URL (wins over the env)."
    )

    # --- lineage: the OpenLineage events of each run (`flows/lineage`) ---
    lineage_enabled: bool = Field(True, description="Emit OpenLineage START and COMPLETE/FAIL run events.")
    lineage_url: str | None = Field(
        None, description="OpenLineage receiver (e.g. Marquez at http://host:5000) the events are posted to."
    )
    lineage_endpoint: str = Field("api/v1/lineage", description="Path of the receiver's lineage endpoint.")
    lineage_api_key: SecretStr | None = Field(None, description="Bearer key of the receiver, if any.")
    lineage_timeout_s: float = Field(5.0, gt=0, le=120, description="Per-attempt timeout of a post.")
    lineage_dir: Path | None = Field(
        None, description="Folder of the events file <run_id>.jsonl (default <data_dir>/lineage)."
    )
    lineage_namespace: str | None = Field(
        None, description="Job namespace of the events (default persons-<environment>)."
    )
    lineage_count_published: bool = Field(
        True,
        description="Count the rows of every relation above staging for the end event of a run that built "
        "them with dbt (counting a k-anonymous view computes it again: 19 s at 2,000,000 persons).",
    )

    # --- monitoring: thresholds of the quality metrics; a breach emits a Prefect event ---
    monitor_max_quarantine_rate: float = Field(
        0.05, ge=0, le=1, description="Largest share of a run's received records that may be quarantined."
    )
    monitor_max_duplicate_rate: float = Field(
        0.01, ge=0, le=1, description="Largest share of a run's received records that may be duplicates."
    )
    monitor_max_schema_drift_fields: int = Field(
        0, ge=0, le=1000, description="Unknown source fields (distinct names) a run may receive."
    )
    monitor_freshness_hours: float = Field(
        26.0,
        gt=0,
        le=24 * 366,
        description="Longest time without a merged batch (a run's check and the proactive automation).",
    )

    # --- privacy ---
    hmac_secret: SecretStr | None = Field(
        None,
        description="Key of the HMAC-SHA256 person_key, at least 32 bytes (e.g. `openssl rand -hex 32`); "
        "required unless PERSONS_HMAC_SECRET_BLOCK or _AWS_SECRET names one.",
    )
    previous_hmac_secret: SecretStr | None = Field(
        None,
        description="The key being replaced, only while re-keying (keeps forgotten persons forgotten).",
    )
    hmac_secret_block: str | None = Field(
        None, description="Name of a Prefect Secret block holding the person_key secret (wins over the env)."
    )
    hmac_secret_aws_secret: str | None = Field(
        None, description="Name or ARN of an AWS Secrets Manager secret holding the person_key secret."
    )
    allow_demo_secret: bool = Field(
        False,
        description="Use the built-in offline demo key when no key is set: asked for by the offline "
        "quickstart and the tests only; never used with PERSONS_ENVIRONMENT dev or prod.",
    )

    @model_validator(mode="before")
    @classmethod
    def _empty_is_unset(cls, values: object) -> object:
        # Deployment templates pass every variable, set or not: an empty string means "not set". Not for the
        # key itself, which no template passes: set but empty, it is a failed injection and refused.
        if isinstance(values, dict):
            return {key: value for key, value in values.items() if value != "" or key == "hmac_secret"}
        return values

    @field_validator("hmac_secret")
    @classmethod
    def _key_is_strong(cls, value: SecretStr | None) -> SecretStr | None:
        return None if value is None else check_key_strength(value, "the key")

    @model_validator(mode="after")
    def _one_source_per_secret(self) -> PipelineSettings:
        for block, aws in (
            ("hmac_secret_block", "hmac_secret_aws_secret"),
            ("snowflake_password_block", "snowflake_password_aws_secret"),
        ):
            if getattr(self, block) and getattr(self, aws):
                raise ValueError(f"set PERSONS_{block.upper()} or PERSONS_{aws.upper()}, not both")
        return self

    def client_fields(self) -> dict[str, Any]:
        """The raw-data client's part of the settings, by the names of its configuration (`ClientConfig` of
        `flows.rawdata.client`, which receives these and nothing else of the settings)."""
        return {
            "timeout_s": self.request_timeout_s,
            "max_attempts": self.max_attempts,
            "backoff_initial_s": self.backoff_initial_s,
            "backoff_max_s": self.backoff_max_s,
            "retry_after_max_s": self.retry_after_max_s,
            "rate_limit_per_s": self.rate_limit_per_s,
            "max_in_flight": self.max_in_flight,
        }

    def person_key_secret(self) -> SecretStr:
        """The person_key key: from a Prefect Secret block or an AWS secret if named, else the environment,
        else the demo key where asked for; ValueError (one line naming the setting) if there is none."""
        if self.hmac_secret_block:
            from prefect.blocks.system import Secret  # noqa: PLC0415 - only where a block is named

            secret = SecretStr(str(Secret.load(self.hmac_secret_block).get()))  # type: ignore[union-attr]
            return check_key_strength(secret, f"the Secret block {self.hmac_secret_block!r}")
        if self.hmac_secret_aws_secret:
            from flows.secrets import aws_secret  # noqa: PLC0415 - only where a secret is named

            secret = aws_secret(
                self.hmac_secret_aws_secret,
                "PERSONS_HMAC_SECRET_AWS_SECRET",
                endpoint_url=self.aws_endpoint_url,
            )
            return check_key_strength(secret, "the secret PERSONS_HMAC_SECRET_AWS_SECRET names")
        return self.local_person_key_secret()

    def local_person_key_secret(self) -> SecretStr:
        """The key from the environment (or the demo key where asked for), checked without any service."""
        if self.hmac_secret is not None:
            return self.hmac_secret
        if self.allow_demo_secret and self.environment == "local":
            return SecretStr(OFFLINE_DEMO_SECRET)
        why = (
            f"the demo key is never used with PERSONS_ENVIRONMENT={self.environment}"
            if self.allow_demo_secret
            else "PERSONS_ALLOW_DEMO_SECRET=true uses the offline demo key, for a local try-out only"
        )
        raise ValueError(
            "PERSONS_HMAC_SECRET is not set (nor PERSONS_HMAC_SECRET_BLOCK, PERSONS_HMAC_SECRET_AWS_SECRET): "
            f"the person_key needs a key of at least {MIN_SECRET_BYTES} bytes, e.g. `openssl rand -hex 32` "
            f"({why})"
        )

    def check_key_source(self) -> None:
        """Refuse a missing or weak key before any work, where that needs no service (a block or an AWS
        secret is checked when it is read)."""
        if not (self.hmac_secret_block or self.hmac_secret_aws_secret):
            self.local_person_key_secret()

    def require_real_secret(self, secret: SecretStr | None = None) -> None:
        """Refuse an empty or short key, and the demo key where it was not asked for."""
        key = secret if secret is not None else self.person_key_secret()
        check_key_strength(key, "the person_key key")
        if key.get_secret_value() == OFFLINE_DEMO_SECRET and not (
            self.allow_demo_secret and self.environment == "local"
        ):
            raise ValueError(
                "PERSONS_HMAC_SECRET must be set: the built-in offline demo key is not allowed here"
            )


def check_key_strength(secret: SecretStr, name: str) -> SecretStr:
    """The key itself if it is at least MIN_SECRET_BYTES long; ValueError naming where it came from if not."""
    size = len(secret.get_secret_value().encode())
    if size == 0:
        raise ValueError(f"{name} is empty: the person_key needs a key of at least {MIN_SECRET_BYTES} bytes")
    if size < MIN_SECRET_BYTES:
        raise ValueError(
            f"{name} is {size} byte{'' if size == 1 else 's'} long: the person_key needs a key of at least "
            f"{MIN_SECRET_BYTES} bytes (e.g. `openssl rand -hex 32`)"
        )
    return secret


@lru_cache(maxsize=1)
def get_settings() -> PipelineSettings:
    """Settings read once per process from the environment."""
    return PipelineSettings()
