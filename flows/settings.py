"""Runtime settings: the one place configuration is read from the environment (prefix ``PERSONS_``).

The settings come in groups, one model each (`ClientSettings`, `DuckDBSettings`, ... `PrivacySettings`), held
by `PipelineSettings` as `settings.client`, `settings.duckdb`, ... Every group reads the same environment
variables as before the grouping (`PERSONS_DUCKDB_THREADS` is `settings.duckdb.threads`); `SETTING_PATHS`
maps each flat name to its place, so `PipelineSettings(duckdb_threads=1)` still works. The raw-data side
receives `settings.client` as its client's configuration and nothing else.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from functools import lru_cache
from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator
from pydantic.fields import FieldInfo
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from flows.parameters import RunDefaults

# Deliberately obvious: the offline quickstart and the tests ask for it explicitly
# (PERSONS_ALLOW_DEMO_SECRET); everything else must bring its own key (see `person_key_secret`).
OFFLINE_DEMO_SECRET = "offline-quickstart-secret-NOT-FOR-PRODUCTION"  # noqa: S105
# The shortest person_key key accepted: 256 bits, so that the key cannot be guessed.
MIN_SECRET_BYTES = 32
# A memory size as DuckDB takes it (the caps below).
MEMORY_SIZE = r"\d+(\.\d+)?\s*(KB|MB|GB|KiB|MiB|GiB)"
# The one setting whose empty value is refused rather than read as unset: set but empty, it is a failed
# injection (deployment templates pass every other variable, set or not).
EMPTY_IS_AN_ERROR = frozenset({"hmac_secret"})


class SettingsGroup(BaseModel):
    """One group of settings: its fields are the environment variables ``ENV_PREFIX + NAME`` (or the
    field's own aliases, e.g. Snowflake's names)."""

    model_config = ConfigDict(frozen=True, populate_by_name=True, extra="forbid", hide_input_in_errors=True)
    ENV_PREFIX: ClassVar[str] = "PERSONS_"

    @classmethod
    def variables(cls, name: str) -> tuple[str, ...]:
        """The environment variables a field is read from, first match wins."""
        alias = cls.model_fields[name].validation_alias
        if isinstance(alias, AliasChoices):
            return tuple(choice for choice in alias.choices if isinstance(choice, str))
        return (f"{cls.ENV_PREFIX}{name.upper()}",)

    @classmethod
    def flat_name(cls, name: str) -> str:
        """The field's name in one flat namespace (the environment variable without PERSONS_)."""
        return f"{cls.ENV_PREFIX}{name}".removeprefix("PERSONS_").lower()


class ClientSettings(SettingsGroup):
    """HTTP client: how the raw-data side asks the Faker API (the one part of the settings it receives)."""

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

    def client_fields(self) -> dict[str, Any]:
        """These settings by the names of the raw-data client's configuration (`ClientConfig` of
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


class RunSettings(SettingsGroup):
    """How a run executes: batches ahead, where the gate runs, its bounds in time and disk, its turn on the
    warehouse."""

    batches_in_flight: int = Field(
        2, ge=1, le=8, description="Batches extracted ahead of the one being validated (bounds memory)."
    )
    gate_process: Literal["orchestrator", "separate"] = Field(
        "orchestrator",
        description="Where the validation gate runs: in the orchestrating process (leaner, no batch copied) "
        "or in a process of its own.",
    )
    shard_deployment: str = Field(
        "persons-shard/shard",
        pattern=r"^[^/]+/[^/]+$",
        description="The deployment (flow/deployment) a sharded run starts its shards as.",
    )
    shard_attempts: int = Field(
        3, ge=1, le=10, description="Flow runs a shard gets (a failed or dead one is started again)."
    )
    shard_start_timeout_s: float = Field(
        600.0,
        ge=1,
        le=86_400,
        description="How long a shard may wait for a worker to start it before the run fails naming it.",
    )
    shard_heartbeat_s: float = Field(
        10.0,
        ge=0.5,
        le=600,
        description="How often a running shard says it is alive; one silent for 6 beats (12 before its first)"
        " is taken as dead and started again.",
    )
    min_free_disk_mib: float = Field(
        64.0, ge=0, le=10_000_000, description="Free space a run needs on the data folder's disk to start."
    )
    run_deadline_s: float = Field(
        21_600.0,
        ge=0,
        le=7 * 86_400,
        description="Longest a run may take (0 = no limit); Retry-After waits count against it.",
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


class DuckDBSettings(SettingsGroup):
    """DuckDB: the embedded warehouse."""

    ENV_PREFIX: ClassVar[str] = "PERSONS_DUCKDB_"

    memory_limit: str = Field(
        "auto",
        pattern=rf"^(auto|{MEMORY_SIZE})$",
        description="DuckDB's memory cap; auto = 128MB, more for batches whose transaction needs it.",
    )
    report_memory_limit: str = Field(
        "256MB",
        pattern=rf"^{MEMORY_SIZE}$",
        description="DuckDB's memory cap while the report reads the k-anonymous views (the raw-data worker "
        "has stopped by then): at 10,000,000 persons they ran out of 128MB.",
    )
    threads: int = Field(2, ge=1, le=64, description="DuckDB worker threads.")
    lock_timeout_s: float = Field(
        900.0, ge=0, le=86_400, description="How long to wait for another process's write lock on the file."
    )


class SnowflakeSettings(SettingsGroup):
    """Snowflake: the connection under Snowflake's own environment names, so existing setups carry over."""

    ENV_PREFIX: ClassVar[str] = "PERSONS_SNOWFLAKE_"

    account: str | None = Field(
        None,
        validation_alias=AliasChoices("SNOWFLAKE_ACCOUNT"),
        description="Account identifier (e.g. xy12345.eu-central-1).",
    )
    user: str | None = Field(
        None, validation_alias=AliasChoices("SNOWFLAKE_USER"), description="User the pipeline logs in as."
    )
    password: SecretStr | None = Field(
        None,
        validation_alias=AliasChoices("SNOWFLAKE_PASSWORD"),
        description="Password (or a key pair, or a block or AWS secret holding the password).",
    )
    private_key_path: Path | None = Field(
        None,
        validation_alias=AliasChoices("SNOWFLAKE_PRIVATE_KEY_PATH"),
        description="Private key file for key-pair authentication, instead of a password.",
    )
    private_key_passphrase: SecretStr | None = Field(
        None,
        validation_alias=AliasChoices("SNOWFLAKE_PRIVATE_KEY_PASSPHRASE"),
        description="Passphrase of that private key.",
    )
    role: str | None = Field(
        None, validation_alias=AliasChoices("SNOWFLAKE_ROLE"), description="Role the session uses."
    )
    warehouse: str | None = Field(
        None,
        validation_alias=AliasChoices("SNOWFLAKE_WAREHOUSE"),
        description="Virtual warehouse that runs the queries.",
    )
    database: str | None = Field(
        None,
        validation_alias=AliasChoices("SNOWFLAKE_DATABASE"),
        description="Database (unset: the environment's, PERSONS_DEV_/PROD_SNOWFLAKE_DATABASE).",
    )
    host: str | None = Field(
        None, validation_alias=AliasChoices("SNOWFLAKE_HOST"), description="Host of a non-default endpoint."
    )
    port: int | None = Field(
        None,
        ge=1,
        le=65535,
        validation_alias=AliasChoices("SNOWFLAKE_PORT"),
        description="Port of a non-default endpoint.",
    )
    protocol: Literal["https", "http"] | None = Field(
        None,
        validation_alias=AliasChoices("SNOWFLAKE_PROTOCOL"),
        description="Protocol of a non-default endpoint.",
    )
    password_block: str | None = Field(
        None,
        description="Name of a Prefect Secret block holding the Snowflake password (instead of the env).",
    )
    password_aws_secret: str | None = Field(
        None,
        description="Name or ARN of an AWS Secrets Manager secret holding the Snowflake password.",
    )
    create_database: bool = Field(
        False,
        description="Create the database if missing (dev and tests; production databases are provisioned).",
    )
    login_timeout_s: int = Field(60, ge=1, le=600, description="Login timeout.")
    concurrent_runs: int = Field(4, ge=1, le=64, description="Runs writing one Snowflake database at once.")

    @model_validator(mode="after")
    def _one_source_of_the_password(self) -> SnowflakeSettings:
        if self.password_block and self.password_aws_secret:
            raise ValueError(
                "set PERSONS_SNOWFLAKE_PASSWORD_BLOCK or PERSONS_SNOWFLAKE_PASSWORD_AWS_SECRET, not both"
            )
        return self


class PrefectServerSettings(SettingsGroup):
    """The Prefect runtime: the local server, used when PREFECT_API_URL is not set."""

    ENV_PREFIX: ClassVar[str] = "PERSONS_PREFECT_SERVER_"

    home: Path = Field(
        Path.home() / ".persons-pipeline" / "prefect-server",
        description="PREFECT_HOME of the local Prefect server (its database; never a client's home).",
    )
    port: int = Field(
        4200, ge=0, le=65535, description="Port of the local Prefect server (0 or taken: a free one)."
    )
    start_timeout_s: float = Field(
        300.0, ge=5, le=3600, description="How long a run waits for the local Prefect server to start."
    )


class PagesSettings(SettingsGroup):
    """Pages over http: the report pages, data docs and dbt docs, read-only on 127.0.0.1."""

    ENV_PREFIX: ClassVar[str] = "PERSONS_PAGES_"

    server: bool = Field(
        True,
        description="Serve the run's pages read-only on 127.0.0.1 (one server per user, started by the first "
        "run landing in a local folder) so that the Prefect UI's links open them.",
    )
    server_home: Path = Field(
        Path.home() / ".persons-pipeline" / "pages-server",
        description="Home of that server: its state and the data folders it may show.",
    )
    server_port: int = Field(8765, ge=0, le=65535, description="Its port (0, or taken: a free one).")


class ModelSettings(SettingsGroup):
    """dbt and the report: the layers above staging (`sql/dbt`), what they publish, the report page."""

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
    report_trend_runs: int = Field(
        10, ge=1, le=200, description="Runs shown in the report page's quality trend (the latest ones)."
    )


class LineageSettings(SettingsGroup):
    """Lineage: the OpenLineage events of each run (`flows/lineage`)."""

    ENV_PREFIX: ClassVar[str] = "PERSONS_LINEAGE_"

    enabled: bool = Field(True, description="Emit OpenLineage START and COMPLETE/FAIL run events.")
    url: str | None = Field(
        None, description="OpenLineage receiver (e.g. Marquez at http://host:5000) the events are posted to."
    )
    endpoint: str = Field("api/v1/lineage", description="Path of the receiver's lineage endpoint.")
    api_key: SecretStr | None = Field(None, description="Bearer key of the receiver, if any.")
    timeout_s: float = Field(5.0, gt=0, le=120, description="Per-attempt timeout of a post.")
    dir: Path | None = Field(
        None, description="Folder of the events file <run_id>.jsonl (default <data_dir>/lineage)."
    )
    namespace: str | None = Field(
        None, description="Job namespace of the events (default persons-<environment>)."
    )
    count_published: bool = Field(
        True,
        description="Count the rows of every relation above staging for the end event of a run that built "
        "them with dbt (counting a k-anonymous view computes it again: 19 s at 2,000,000 persons).",
    )


class MonitoringSettings(SettingsGroup):
    """Monitoring: thresholds of the quality metrics; a breach emits a Prefect event."""

    ENV_PREFIX: ClassVar[str] = "PERSONS_MONITOR_"

    max_quarantine_rate: float = Field(
        0.05, ge=0, le=1, description="Largest share of a run's received records that may be quarantined."
    )
    max_duplicate_rate: float = Field(
        0.01, ge=0, le=1, description="Largest share of a run's received records that may be duplicates."
    )
    max_schema_drift_fields: int = Field(
        0, ge=0, le=1000, description="Unknown source fields (distinct names) a run may receive."
    )
    freshness_hours: float = Field(
        26.0,
        gt=0,
        le=24 * 366,
        description="Longest time without a merged batch (a run's check and the proactive automation).",
    )


class AlertSettings(SettingsGroup):
    """Alerts: where failed or crashed runs are reported."""

    ENV_PREFIX: ClassVar[str] = "PERSONS_ALERT_"

    webhook_url: SecretStr | None = Field(
        None, description="Webhook that failed or crashed runs are reported to (usually embeds a token)."
    )
    webhook_block: str | None = Field(
        None, description="Name of a Prefect Secret block holding the alert webhook URL (wins over the env)."
    )


class PrivacySettings(SettingsGroup):
    """Privacy: the person_key's key, where it comes from, and the key being replaced."""

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

    @field_validator("hmac_secret")
    @classmethod
    def _key_is_strong(cls, value: SecretStr | None) -> SecretStr | None:
        return None if value is None else check_key_strength(value, "the key")

    @model_validator(mode="after")
    def _one_source_of_the_key(self) -> PrivacySettings:
        if self.hmac_secret_block and self.hmac_secret_aws_secret:
            raise ValueError("set PERSONS_HMAC_SECRET_BLOCK or PERSONS_HMAC_SECRET_AWS_SECRET, not both")
        return self


GROUPS: dict[str, type[SettingsGroup]] = {
    "client": ClientSettings,
    "runs": RunSettings,
    "duckdb": DuckDBSettings,
    "snowflake": SnowflakeSettings,
    "prefect_server": PrefectServerSettings,
    "pages": PagesSettings,
    "models": ModelSettings,
    "lineage": LineageSettings,
    "monitoring": MonitoringSettings,
    "alerts": AlertSettings,
    "privacy": PrivacySettings,
}
# Each grouped setting's flat name (its environment variable without PERSONS_) -> (group, field).
SETTING_PATHS: dict[str, tuple[str, str]] = {
    group.flat_name(name): (attribute, name)
    for attribute, group in GROUPS.items()
    for name in group.model_fields
}


class GroupedEnvironment(PydanticBaseSettingsSource):
    """The groups' fields from their environment variables (case-insensitive, as pydantic-settings reads
    the top-level ones); an empty value is unset (deployment templates pass every variable, set or not),
    except where empty is an error."""

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False  # every value comes from __call__

    def __call__(self) -> dict[str, Any]:
        environment = {name.lower(): value for name, value in os.environ.items()}
        values: dict[str, Any] = {}
        for attribute, group in GROUPS.items():
            found = {}
            for name in group.model_fields:
                for variable in group.variables(name):
                    value = environment.get(variable.lower())
                    if value is not None and (value != "" or name in EMPTY_IS_AN_ERROR):
                        found[name] = value
                        break
            if found:
                values[attribute] = found
        return values


def _nested(values: Mapping[str, Any]) -> dict[str, Any]:
    """Flat names given as arguments (``duckdb_threads=1``) moved into their groups, over what the
    environment gave; an empty value is unset."""
    nested: dict[str, Any] = {}
    for key, value in values.items():
        if key in SETTING_PATHS:
            if value == "" and SETTING_PATHS[key][1] not in EMPTY_IS_AN_ERROR:
                continue
            attribute, name = SETTING_PATHS[key]
            group = nested.setdefault(attribute, {})
            if isinstance(group, Mapping):
                nested[attribute] = {**group, name: value}
        elif key in GROUPS and isinstance(value, Mapping) and isinstance(nested.get(key), Mapping):
            nested[key] = {**value, **nested[key]}
        elif value != "":
            nested[key] = value
    return nested


def variable_of(location: tuple[int | str, ...]) -> str:
    """The environment variable a validation error's location names (PERSONS_ where it names no field)."""
    if len(location) >= 2 and location[0] in GROUPS:
        group, name = GROUPS[str(location[0])], str(location[1])
        if name in group.model_fields:
            return group.variables(name)[0]
    if len(location) == 1 and str(location[0]) not in GROUPS:
        return f"PERSONS_{str(location[0]).upper()}"
    return "PERSONS_"


class PipelineSettings(RunDefaults, BaseSettings):  # type: ignore[misc]  # two pydantic bases, one model
    """Every tunable of the pipeline, with a default, a description and bounds: where to at the top, the run
    parameters' defaults (inherited from RunDefaults), then one group per concern."""

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

    client: ClientSettings = Field(default_factory=ClientSettings)
    runs: RunSettings = Field(default_factory=RunSettings)
    duckdb: DuckDBSettings = Field(default_factory=DuckDBSettings)
    snowflake: SnowflakeSettings = Field(default_factory=SnowflakeSettings)
    prefect_server: PrefectServerSettings = Field(default_factory=PrefectServerSettings)
    pages: PagesSettings = Field(default_factory=PagesSettings)
    models: ModelSettings = Field(default_factory=ModelSettings)
    lineage: LineageSettings = Field(default_factory=LineageSettings)
    monitoring: MonitoringSettings = Field(default_factory=MonitoringSettings)
    alerts: AlertSettings = Field(default_factory=AlertSettings)
    privacy: PrivacySettings = Field(default_factory=PrivacySettings)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Arguments first, then the environment (the groups' variables and the top-level ones)."""
        return (
            init_settings,
            GroupedEnvironment(settings_cls),
            env_settings,
            dotenv_settings,
            file_secret_settings,
        )

    @model_validator(mode="before")
    @classmethod
    def _flat_names_and_empty_values(cls, values: object) -> object:
        return _nested(values) if isinstance(values, Mapping) else values

    def person_key_secret(self) -> SecretStr:
        """The person_key key: from a Prefect Secret block or an AWS secret if named, else the environment,
        else the demo key where asked for; ValueError (one line naming the setting) if there is none."""
        privacy = self.privacy
        if privacy.hmac_secret_block:
            from prefect.blocks.system import Secret  # noqa: PLC0415 - only where a block is named

            secret = SecretStr(str(Secret.load(privacy.hmac_secret_block).get()))  # type: ignore[union-attr]
            return check_key_strength(secret, f"the Secret block {privacy.hmac_secret_block!r}")
        if privacy.hmac_secret_aws_secret:
            from flows.secrets import aws_secret  # noqa: PLC0415 - only where a secret is named

            secret = aws_secret(
                privacy.hmac_secret_aws_secret,
                "PERSONS_HMAC_SECRET_AWS_SECRET",
                endpoint_url=self.aws_endpoint_url,
            )
            return check_key_strength(secret, "the secret PERSONS_HMAC_SECRET_AWS_SECRET names")
        return self.local_person_key_secret()

    def local_person_key_secret(self) -> SecretStr:
        """The key from the environment (or the demo key where asked for), checked without any service."""
        if self.privacy.hmac_secret is not None:
            return self.privacy.hmac_secret
        if self.privacy.allow_demo_secret and self.environment == "local":
            return SecretStr(OFFLINE_DEMO_SECRET)
        why = (
            f"the demo key is never used with PERSONS_ENVIRONMENT={self.environment}"
            if self.privacy.allow_demo_secret
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
        if not (self.privacy.hmac_secret_block or self.privacy.hmac_secret_aws_secret):
            self.local_person_key_secret()

    def require_real_secret(self, secret: SecretStr | None = None) -> None:
        """Refuse an empty or short key, and the demo key where it was not asked for."""
        key = secret if secret is not None else self.person_key_secret()
        check_key_strength(key, "the person_key key")
        if key.get_secret_value() == OFFLINE_DEMO_SECRET and not (
            self.privacy.allow_demo_secret and self.environment == "local"
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
