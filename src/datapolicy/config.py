"""The configuration file (TOML): what the service serves, where personal data comes from, where
packages may go, and how the export engine runs.

Validated on start with pydantic; every error names the file, the line and the key, because the
people who write this file are not the people who wrote the code. A minimal file::

    [server]
    port = 8080

    [directory]                      # who exists: a table or a query giving id (and names)
    url = "sqlite:///people.db"
    table = "users"

    [[sources.sql]]
    name = "shop"
    url = "postgresql+psycopg://shop@db/shop"

      [[sources.sql.tables]]         # reached from the user by a key column
      table = "orders"
      user_key = "customer_id"

      [[sources.sql.tables]]         # reached from orders through a foreign key
      table = "order_items"
      parent = "orders"

      [[sources.sql.queries]]        # a named, parameterized query (:user_id)
      name = "logins"
      sql = "SELECT at, ip FROM logins WHERE account = :user_id"

    [[sources.files]]
    name = "uploads"
    path = "/srv/uploads/{userId}/"

    [storage.local]
    roots = ["/srv/exports"]

Relative paths (and `sqlite:///relative.db` URLs) are resolved against the file's directory.
"""

from __future__ import annotations

import difflib
import re
import tomllib
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal, Self, get_args
from urllib.parse import urlsplit

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    IPvAnyNetwork,
    StringConstraints,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from datapolicy.durations import parse_duration
from datapolicy.errors import StartupError

ANY_ORIGIN = "*"  # `[server] cors_origins`: any origin

if TYPE_CHECKING:
    from datapolicy.store.database import Timeouts

_IDENTIFIER = r"^[A-Za-z_][A-Za-z0-9_]*$"
_NAME = r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$"
Identifier = Annotated[str, StringConstraints(pattern=_IDENTIFIER)]
# A data category of the Fides taxonomy (fideslang), e.g. `user.contact.email`: lowercase
# words joined by dots. Which keys exist is the taxonomy's business; the shape is checked here.
DataCategory = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)*$")]
PurposeName = Annotated[str, StringConstraints(pattern=_NAME)]


def _duration_or_off(value: str) -> str:
    if value != "off":
        parse_duration(value)  # ValueError: says what a duration looks like
    return value


# How long something is kept: a duration ("30d", "12h", "90s") or "off" (kept until its
# operation is deleted). `_retention_seconds` reads it.
Retention = Annotated[str, AfterValidator(_duration_or_off)]


def _retention_seconds(retention: str) -> int | None:
    """A `Retention` in seconds; None when it is off."""
    return None if retention == "off" else parse_duration(retention)


class ConfigError(StartupError):
    """The configuration cannot be used: the message names the file, line and key of a value
    that is wrong, or what it turns on that cannot work (a file it names that cannot be read,
    an extra that is not installed)."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ServerConfig(_Strict):
    """`serve`'s options (the command line's override them), and `trusted_proxies`: addresses
    or networks of reverse proxies whose `X-Forwarded-For` and `X-Forwarded-Proto` are
    believed (web/middleware/proxy.py); from any other peer they are ignored."""

    host: str | None = None
    port: int | None = Field(default=None, ge=0, le=65535)  # 0: a free port
    data_dir: Path | None = None
    scenarios: bool | None = None  # the test-double controls (docs/testing-with-datapolicy.md)
    profile: Literal["datapolicy", "graph"] | None = None  # docs/graph-compatibility.md
    # On SIGTERM/SIGINT: how long `/readyz` says 503 while every route still answers, before
    # the listener closes (Settings.drain_seconds: 5, or 0 under --demo, when not set).
    shutdown_drain_seconds: float | None = Field(default=None, ge=0, le=300)
    trusted_proxies: list[IPvAnyNetwork] = []
    # `/readyz` is 503 while a local storage root has less free (web/server_root/health.py);
    # 0: not checked
    readiness_min_free_bytes: int = Field(default=1 << 20, ge=0)
    # Origins whose pages may call the API (web/middleware/cors.py): `["*"]` for any, `[]` for
    # none; not set: none, or any under --demo and --scenarios (Settings.cors_origins).
    cors_origins: list[str] | None = None

    @field_validator("cors_origins")
    @classmethod
    def _serialized_origins(cls, origins: list[str] | None) -> list[str] | None:
        """Each origin as a browser sends it in `Origin`, so that comparing is exact."""
        if origins is None:
            return None
        if ANY_ORIGIN in origins and len(origins) > 1:
            raise ValueError('"*" allows any origin: give it alone')
        return [origin if origin == ANY_ORIGIN else _origin(origin) for origin in origins]

    @property
    def options(self) -> dict[str, Any]:
        """The values that stand for `serve`'s command-line options, where set."""
        values = self.model_dump(
            exclude={"trusted_proxies", "readiness_min_free_bytes", "cors_origins"}
        )
        return {name: value for name, value in values.items() if value is not None}


_DEFAULT_PORTS = {"http": 80, "https": 443}


def _origin(text: str) -> str:
    """`text` (`https://App.example:443`) serialized as an origin (`https://app.example`)."""
    try:
        parts = urlsplit(text)
        port = parts.port
    except ValueError as exc:
        raise ValueError(f"{text!r} is not an origin: {exc}") from None
    if (
        parts.scheme not in _DEFAULT_PORTS
        or not parts.hostname
        or parts.username is not None
        or parts.password is not None
        or parts.path
        or parts.query
        or parts.fragment
        or text != text.strip()
    ):
        raise ValueError(
            f"{text!r} is not an origin: give scheme://host[:port] "
            "(http or https, no path, no trailing slash)"
        )
    host = parts.hostname if ":" not in parts.hostname else f"[{parts.hostname}]"
    suffix = "" if port is None or port == _DEFAULT_PORTS[parts.scheme] else f":{port}"
    return f"{parts.scheme}://{host}{suffix}"


class DirectoryConfig(_Strict):
    """The user directory: a table or a query with an id column and optional Graph fields."""

    url: str
    table: str | None = Field(default=None, pattern=_IDENTIFIER)
    query: str | None = None
    id_column: str = Field(default="id", pattern=_IDENTIFIER)
    display_name_column: str | None = Field(default=None, pattern=_IDENTIFIER)
    mail_column: str | None = Field(default=None, pattern=_IDENTIFIER)
    user_principal_name_column: str | None = Field(default=None, pattern=_IDENTIFIER)

    @model_validator(mode="after")
    def _table_or_query(self) -> Self:
        if (self.table is None) == (self.query is None):
            raise ValueError("give exactly one of 'table' or 'query'")
        return self


class ColumnConfig(_Strict):
    """What one column of a table holds (for the person's report): its data categories and the
    purpose it is processed for (a `[[report.purposes]]` name)."""

    categories: tuple[DataCategory, ...] = ()
    purpose: PurposeName | None = None


MaskStrategy = Literal["null", "hash", "year"]
EraseRule = Literal["delete", "mask", "retain"]


class MaskValue(_Strict):
    """A mask that writes a fixed replacement: `{ value = "(erased)" }`."""

    value: str | int | float | bool


class TableConfig(_Strict):
    """A table reached from the user (`user_key`) or from a parent table (`parent`).

    `foreign_key` and `parent_key` name the columns that link a row to its parent row: a
    string, or a list for a composite key (a row belongs to the parent row whose `parent_key`
    columns equal its `foreign_key` columns, all of them, in order). Both are kept as tuples.

    `erase` says what an erasure does to the person's rows (docs/erasure.md): `delete` them,
    `mask` the columns of `mask` (`null`, `hash`, `year` or `{ value = ... }`), or `retain`
    them for the stated `reason` (the receipt quotes it)."""

    table: str = Field(pattern=_IDENTIFIER)
    name: str | None = Field(default=None, pattern=_NAME)  # in the package; default: table
    user_key: str | None = Field(default=None, pattern=_IDENTIFIER)
    parent: str | None = Field(default=None, pattern=_NAME)
    # Reflected from the database's foreign keys if omitted; parent_key: the parent's primary key.
    foreign_key: tuple[Identifier, ...] | None = Field(default=None, min_length=1)
    parent_key: tuple[Identifier, ...] | None = Field(default=None, min_length=1)
    exclude: tuple[str, ...] = ()
    # For the person's report: the table's data categories and purpose, and its columns'.
    categories: tuple[DataCategory, ...] = ()
    purpose: PurposeName | None = None
    columns: dict[Identifier, ColumnConfig] = {}
    erase: EraseRule | None = None
    mask: dict[Identifier, MaskStrategy | MaskValue] = {}
    reason: str | None = Field(default=None, min_length=1)

    @property
    def output_name(self) -> str:
        return self.name or self.table

    @property
    def purposes(self) -> set[str]:
        """The purposes the table and its columns name."""
        named = {self.purpose, *(column.purpose for column in self.columns.values())}
        return {purpose for purpose in named if purpose is not None}

    @field_validator("foreign_key", "parent_key", mode="before")
    @classmethod
    def _one_or_several_columns(cls, value: Any) -> Any:
        if isinstance(value, str):
            return (value,)
        if not isinstance(value, list | tuple):
            raise ValueError("give a column name or a list of column names")
        return value

    @field_validator("foreign_key", "parent_key")
    @classmethod
    def _distinct_columns(cls, value: tuple[str, ...] | None) -> tuple[str, ...] | None:
        if value is not None and len(set(value)) != len(value):
            raise ValueError("a column is named twice")
        return value

    @field_validator("parent_key")
    @classmethod
    def _pairs_with_foreign_key(
        cls, value: tuple[str, ...] | None, info: ValidationInfo
    ) -> tuple[str, ...] | None:
        if value is None or "foreign_key" not in info.data:  # foreign_key's own error first
            return value
        foreign_key = info.data["foreign_key"]
        if foreign_key is None:
            raise ValueError("'parent_key' needs 'foreign_key' (the columns that refer to it)")
        if len(value) != len(foreign_key):
            raise ValueError(
                f"names {len(value)} column(s) but foreign_key names {len(foreign_key)}: "
                "a composite key pairs them in order"
            )
        return value

    @model_validator(mode="after")
    def _one_way_in(self) -> Self:
        if (self.user_key is None) == (self.parent is None):
            raise ValueError("give exactly one of 'user_key' or 'parent'")
        if self.parent is None and (self.foreign_key or self.parent_key):
            raise ValueError("'foreign_key' and 'parent_key' need 'parent'")
        return self

    @model_validator(mode="after")
    def _erase_rule_is_whole(self) -> Self:
        if self.erase == "mask" and not self.mask:
            raise ValueError("erase = \"mask\" needs 'mask': the columns to mask and how")
        if self.erase != "mask" and self.mask:
            raise ValueError("'mask' is only read with erase = \"mask\"")
        if self.erase == "retain" and self.reason is None:
            raise ValueError(
                "erase = \"retain\" needs 'reason': the legal ground for keeping the rows "
                "(GDPR Art. 17(3)), which the receipt quotes"
            )
        if self.erase != "retain" and self.reason is not None:
            raise ValueError("'reason' is only read with erase = \"retain\"")
        return self


class QueryConfig(_Strict):
    """A named query. An erasure cannot change what a query reads: with erasure configured, a
    query must say so (`erase = "retain"` and its `reason`)."""

    name: str = Field(pattern=_NAME)
    sql: str
    exclude: tuple[str, ...] = ()
    erase: Literal["retain"] | None = None
    reason: str | None = Field(default=None, min_length=1)

    @model_validator(mode="after")
    def _has_user_parameter(self) -> Self:
        if not re.search(r"(?<!:):user_id\b", self.sql):
            raise ValueError("the query must use the parameter :user_id")
        if (self.erase is None) != (self.reason is None):
            raise ValueError("erase = \"retain\" and 'reason' go together")
        return self


class SqlSourceConfig(_Strict):
    name: str = Field(pattern=_NAME)
    url: str
    tables: tuple[TableConfig, ...] = ()
    queries: tuple[QueryConfig, ...] = ()
    batch_size: int = Field(default=1000, ge=1, le=100_000)
    # Tables with personal-looking columns that hold none of a data subject's data (staff,
    # partners): `config check` does not report them as gaps in the map.
    ignore_tables: tuple[Identifier, ...] = ()

    @model_validator(mode="after")
    def _tables_form_a_tree(self) -> Self:
        seen: set[str] = set()
        for table in self.tables:
            if table.parent is not None and table.parent not in seen:
                raise ValueError(
                    f"table '{table.output_name}': parent '{table.parent}' must be declared "
                    "before it (this also rules out cycles)"
                )
            if table.output_name in seen:
                raise ValueError(f"two tables are named '{table.output_name}'")
            seen.add(table.output_name)
        names = [q.name for q in self.queries]
        if len(set(names)) != len(names) or seen & set(names):
            raise ValueError("table and query names must be unique within a source")
        if not self.tables and not self.queries:
            raise ValueError("a SQL source needs at least one table or query")
        return self

    @model_validator(mode="after")
    def _one_rule_per_table(self) -> Self:
        """A table reached by several paths is erased once: its entries must agree."""
        rules: dict[str, TableConfig] = {}
        for table in self.tables:
            first = rules.setdefault(table.table, table)
            if (first.erase, first.mask, first.reason) != (table.erase, table.mask, table.reason):
                raise ValueError(
                    f"table '{table.table}' is configured twice ('{first.output_name}', "
                    f"'{table.output_name}') with different erase rules; an erasure treats its "
                    "rows once, so give both the same rule"
                )
        return self


class FileSourceConfig(_Strict):
    name: str = Field(pattern=_NAME)
    path: str  # a directory template containing {userId}
    erase: Literal["delete", "retain"] | None = None
    reason: str | None = Field(default=None, min_length=1)  # why the files are retained

    @model_validator(mode="after")
    def _has_user_placeholder(self) -> Self:
        if "{userId}" not in self.path:
            raise ValueError("the path must contain {userId}")
        if (self.erase == "retain") != (self.reason is not None):
            raise ValueError("erase = \"retain\" needs 'reason', and only it takes one")
        return self


class SourcesConfig(_Strict):
    sql: tuple[SqlSourceConfig, ...] = ()
    files: tuple[FileSourceConfig, ...] = ()

    @model_validator(mode="after")
    def _unique_names(self) -> Self:
        names = [s.name for s in self.sql] + [f.name for f in self.files]
        duplicates = {n for n in names if names.count(n) > 1}
        if duplicates:
            raise ValueError(f"source names must be unique: {sorted(duplicates)[0]!r} repeats")
        return self


class LocalStorageConfig(_Strict):
    roots: tuple[Path, ...] = ()


class AzureStorageConfig(_Strict):
    """Azure Blob containers named by SAS URLs. Only these blob endpoints (host, or host:port)
    may be named; loopback and private addresses must be listed explicitly."""

    allowed_hosts: tuple[str, ...] = ()


class S3StorageConfig(_Strict):
    """One S3-compatible endpoint. Credentials come from here, never from a request."""

    name: str = Field(pattern=_NAME)
    endpoint_url: str
    region: str = "us-east-1"
    access_key_id: str
    secret_access_key: str
    buckets: tuple[str, ...]  # the buckets that s3://BUCKET/PREFIX locations may name
    # Each request of an export (a part, a completion, an abort, a listing, a deletion): tries,
    # the first included, under botocore's `standard` retry mode, and its timeouts in seconds
    # (engine/targets/s3.py). The check at request time tries at most 2 times, in at most 5 s
    # to connect and 20 s to read.
    max_attempts: int = Field(default=12, ge=1, le=100)
    connect_timeout: float = Field(default=10, gt=0, le=600)
    read_timeout: float = Field(default=120, gt=0, le=3600)

    def __repr__(self) -> str:  # never print the secret
        return f"S3StorageConfig(name={self.name!r}, endpoint_url={self.endpoint_url!r})"


class S3PresignedStorageConfig(_Strict):
    """Presigned S3 PUT URLs. Besides the buckets of `[[storage.s3]]` entries on their endpoints,
    only these endpoints (host, host:port or *.suffix) may be named; plain http only to an http
    `[[storage.s3]]` endpoint or a loopback host listed exactly. Packages wait in `spool_dir`
    (default `<data_dir>/spool`) for their PUT."""

    allowed_hosts: tuple[str, ...] = ()
    spool_dir: Path | None = None


class StorageConfig(_Strict):
    local: LocalStorageConfig = LocalStorageConfig()
    azure: AzureStorageConfig = AzureStorageConfig()
    s3: tuple[S3StorageConfig, ...] = ()
    s3_presigned: S3PresignedStorageConfig = S3PresignedStorageConfig()


class EngineConfig(_Strict):
    workers: int = Field(default=2, ge=0, le=64)  # export threads per process
    lease_seconds: float = Field(default=30, gt=0)
    heartbeat_seconds: float = Field(default=2, gt=0)
    poll_seconds: float = Field(default=1, gt=0)
    # Attempts that fail because of the export (a source, the storage, a bad package) ...
    max_attempts: int = Field(default=3, ge=1)
    # ... and, counted apart, attempts whose worker died or stalled past its lease.
    max_worker_losses: int = Field(default=10, ge=1)
    retry_backoff_seconds: float = Field(default=5, ge=0)
    # On SIGTERM/SIGINT: how long an export in progress may run on before it is handed back.
    shutdown_grace_seconds: float = Field(default=10, ge=0)
    # How long a published package stays in its storage before the workers delete it; a
    # complete erasure's package (its receipt) follows `[erasure] receipt_retention` instead.
    package_retention: Retention = "30d"

    @property
    def package_retention_seconds(self) -> int | None:
        """`package_retention` in seconds; None when it is off."""
        return _retention_seconds(self.package_retention)

    @model_validator(mode="after")
    def _heartbeat_within_lease(self) -> Self:
        if self.heartbeat_seconds * 3 > self.lease_seconds:
            raise ValueError("heartbeat_seconds must be at most a third of lease_seconds")
        return self


class AuditConfig(_Strict):
    """The audit trail (docs/security.md). `trusted_proxies`: the same as `[server]
    trusted_proxies` (both lists are trusted), kept for configurations written before that
    key: the proxies apply to the whole service, not only to the trail. `flush_seconds`: how
    often read entries, gathered in memory, are appended (at most this long of them is lost on
    a hard crash)."""

    trusted_proxies: list[IPvAnyNetwork] = []
    flush_seconds: float = Field(default=0.2, gt=0, le=60)


class AuthConfig(_Strict):
    """Who may call the API: bearer JWTs signed by the keys of a JWKS (an identity provider's
    URL, or a file), or, when neither is given, by the service's own key in the data directory
    (with the default issuer and audience below, which `datapolicy token` puts in its tokens).
    An identity provider's issuer and audience are never guessed: with a JWKS they must be set."""

    jwks_url: str | None = Field(default=None, pattern=r"^https?://")
    jwks_file: Path | None = None
    issuer: str = Field(default="datapolicy", min_length=1)
    audience: str = Field(default="api://datapolicy", min_length=1)
    clock_skew: int = Field(default=60, ge=0, le=300)  # seconds allowed on exp, nbf and iat

    @property
    def uses_jwks(self) -> bool:
        return self.jwks_url is not None or self.jwks_file is not None

    @model_validator(mode="after")
    def _keys_and_their_issuer(self) -> Self:
        if self.jwks_url is not None and self.jwks_file is not None:
            raise ValueError("give at most one of 'jwks_url' or 'jwks_file'")
        if self.uses_jwks and not {"issuer", "audience"} <= self.model_fields_set:
            raise ValueError("'issuer' and 'audience' are required with a JWKS")
        if self.jwks_url is not None and not _loopback_or_https(self.jwks_url):
            raise ValueError("'jwks_url' must use https (plain http only on a loopback address)")
        return self


def _loopback_or_https(url: str) -> bool:
    parts = urlsplit(url)
    return parts.scheme == "https" or parts.hostname in ("127.0.0.1", "::1", "localhost")


class StoreConfig(_Strict):
    """The operation store: SQLite in the data directory (the default), or a PostgreSQL database
    that several API and worker processes share. Pool sizes apply to PostgreSQL."""

    url: str | None = None  # sqlite:///FILE or postgresql://USER:PASSWORD@HOST/DB
    pool_min_size: int = Field(default=2, ge=0, le=1000)
    pool_max_size: int = Field(default=10, ge=1, le=1000)
    pool_timeout: float = Field(default=30, gt=0)  # seconds to wait for a free connection
    # Bounded waits (store/database.py `Timeouts`): a stalled process cannot stall the others.
    lock_timeout: float = Field(default=5, gt=0)  # seconds a write waits for a lock: then 503
    statement_timeout: float = Field(default=30, gt=0)  # PostgreSQL: seconds per statement
    # PostgreSQL: seconds a session may sit idle inside a transaction before the server ends it
    idle_in_transaction_timeout: float = Field(default=60, gt=0)
    # PostgreSQL: the same for a transaction holding the audit trail's head (which every change
    # needs), below lock_timeout so that waiters outlast a frozen holder; default min(2, lock/2)
    audit_idle_timeout: float | None = Field(default=None, gt=0)

    def __repr__(self) -> str:  # never print the password
        return f"StoreConfig(pool_min_size={self.pool_min_size}, ...)"

    def timeouts(self) -> Timeouts:
        from datapolicy.store.database import Timeouts

        return Timeouts(
            lock=self.lock_timeout,
            statement=self.statement_timeout,
            idle_in_transaction=self.idle_in_transaction_timeout,
            audit_idle=self.audit_idle_timeout,
        )

    @model_validator(mode="after")
    def _audit_idle_below_lock(self) -> Self:
        if self.audit_idle_timeout is not None and self.audit_idle_timeout >= self.lock_timeout:
            raise ValueError(
                "'audit_idle_timeout' must be below 'lock_timeout': a change waiting for the "
                "audit trail's head must outlast a frozen process holding it"
            )
        return self

    @field_validator("url")
    @classmethod
    def _usable_url(cls, url: str | None) -> str | None:
        from datapolicy.store.database import DatabaseURLError, parse_url

        if url is not None:
            try:
                parse_url(url)
            except DatabaseURLError as exc:
                raise ValueError(str(exc)) from None
        return url

    @model_validator(mode="after")
    def _pool_sizes(self) -> Self:
        if self.pool_min_size > self.pool_max_size:
            raise ValueError("pool_min_size must not be greater than pool_max_size")
        return self


class ErasureConfig(_Strict):
    """Erasure (docs/erasure.md). Its presence turns erasure on, and every table, query and
    file source must then have an `erase` rule. `approval = "required"`: an erasure waits,
    `notStarted`, until another principal approves it. `hash_secret_file`: the HMAC key of
    the `hash` mask (joins and counts survive; the value does not); by default
    `<data_dir>/erasure-secret.key`, made on first use, owner-only, like the signing key: the
    secret never sits in this file. `receipt_retention`: how long a complete erasure's package,
    which holds its receipt (the proof of the erasure), stays in its storage; "off" (the
    default): until the operation is deleted. A dry run's package holds the person's data and
    follows `[engine] package_retention`, as an export's does."""

    approval: Literal["none", "required"] = "none"
    hash_secret_file: Path | None = None
    receipt_retention: Retention = "off"

    @property
    def receipt_retention_seconds(self) -> int | None:
        """`receipt_retention` in seconds; None when it is off."""
        return _retention_seconds(self.receipt_retention)


class LoggingConfig(_Strict):
    """The log (docs/observability.md): JSON lines when stderr is not a terminal ("auto"), or
    always one format; `access_log` adds a line per request (off: it costs on the hot path)."""

    format: Literal["auto", "json", "text"] = "auto"
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    access_log: bool = False


class MetricsConfig(_Strict):
    """`GET /metrics` (Prometheus): public by default, as scrapers carry no Graph token; with
    `token`, only for `Authorization: Bearer <token>` (docs/security.md)."""

    enabled: bool = True
    token: str | None = Field(default=None, min_length=16)
    # How long scrapes reuse the store's figures (one GROUP BY): 0 reads them at every scrape.
    store_max_age_seconds: float = Field(default=5.0, ge=0, le=300)

    def __repr__(self) -> str:  # never print the token
        return (
            f"MetricsConfig(enabled={self.enabled}, "
            f"store_max_age_seconds={self.store_max_age_seconds})"
        )


class TracingConfig(_Strict):
    """OpenTelemetry traces of requests and export runs (the `otel` extra), off by default:
    sent over OTLP/HTTP to `endpoint` (else OTEL_EXPORTER_OTLP_ENDPOINT's), or printed with
    `console` (debugging)."""

    enabled: bool = False
    endpoint: str | None = Field(default=None, pattern=r"^https?://")
    console: bool = False
    service_name: str = Field(default="datapolicy", min_length=1)


class LimitsConfig(_Strict):
    """What one client may ask of one API process (docs/security.md, "Abuse"). Rates are
    requests per second per client, with `*_burst` requests allowed at once; a rate of 0 turns
    that budget off. Writes (POST, PATCH, DELETE) start and change exports; reads are polling."""

    write_rate: float = Field(default=20, ge=0)
    write_burst: int = Field(default=1000, ge=1)
    read_rate: float = Field(default=5000, ge=0)
    read_burst: int = Field(default=10_000, ge=1)
    # Tokens refused (401) per second per address: each costs a signature check first.
    auth_failure_rate: float = Field(default=10, ge=0)
    auth_failure_burst: int = Field(default=1000, ge=1)
    max_body_bytes: int = Field(default=64 * 1024, ge=1024)
    # Seconds a request body may take to arrive, whole: a body that stalls is a 408.
    body_timeout_seconds: float = Field(default=30, gt=0, le=3600)
    max_path_length: int = Field(default=4096, ge=256)  # bytes of the path as sent
    max_query_length: int = Field(default=32 * 1024, ge=1024)  # bytes of the query as sent
    max_page_size: int = Field(default=999, ge=1, le=100_000)  # the largest $top


class PurposeConfig(_Strict):
    """A purpose the data is processed for: a name tables and columns refer to (`purpose`), and
    what the person's report says about it."""

    name: PurposeName
    description: str = Field(min_length=1)
    legal_basis: str | None = None  # e.g. "Art. 6(1)(b) GDPR: a contract with you"


class ReportConfig(_Strict):
    """What a person's report states besides their data (GDPR Art. 15(1)): who the controller
    is, why the data is processed, who receives it, how long it is kept and where it came
    from. Free text the operator writes; datapolicy only carries it into the package."""

    controller: str = Field(min_length=1)
    purposes: tuple[PurposeConfig, ...] = ()
    recipients: tuple[str, ...] = ()
    retention: str | None = None
    source: str | None = None

    @model_validator(mode="after")
    def _unique_purposes(self) -> Self:
        names = [purpose.name for purpose in self.purposes]
        if len(set(names)) != len(names):
            raise ValueError("two purposes have the same name")
        return self


class Config(_Strict):
    server: ServerConfig = ServerConfig()
    store: StoreConfig = StoreConfig()
    auth: AuthConfig = AuthConfig()
    directory: DirectoryConfig | None = None
    sources: SourcesConfig = SourcesConfig()
    storage: StorageConfig = StorageConfig()
    engine: EngineConfig = EngineConfig()
    audit: AuditConfig = AuditConfig()
    limits: LimitsConfig = LimitsConfig()
    logging: LoggingConfig = LoggingConfig()
    metrics: MetricsConfig = MetricsConfig()
    tracing: TracingConfig = TracingConfig()
    report: ReportConfig | None = None
    erasure: ErasureConfig | None = None

    @model_validator(mode="after")
    def _every_source_has_an_erase_rule(self) -> Self:
        if self.erasure is None:
            return self
        for source in self.sources.sql:
            items: tuple[TableConfig | QueryConfig, ...] = (*source.tables, *source.queries)
            for item in items:
                if item.erase is None:
                    kind = "table" if isinstance(item, TableConfig) else "query"
                    name = item.output_name if isinstance(item, TableConfig) else item.name
                    raise ValueError(
                        f"source '{source.name}', {kind} '{name}' has no erase rule: with "
                        '[erasure] configured, say what an erasure does to it ("delete", '
                        '"mask" or "retain" with a reason)'
                    )
        for files in self.sources.files:
            if files.erase is None:
                raise ValueError(
                    f"file source '{files.name}' has no erase rule: with [erasure] configured, "
                    'say what an erasure does to it ("delete", or "retain" with a reason)'
                )
        return self

    @model_validator(mode="after")
    def _purposes_are_declared(self) -> Self:
        declared = {p.name for p in self.report.purposes} if self.report is not None else set()
        for source in self.sources.sql:
            for table in source.tables:
                unknown = sorted(table.purposes - declared)
                if unknown:
                    raise ValueError(
                        f"source '{source.name}', table '{table.output_name}': purpose "
                        f"'{unknown[0]}' is not one of the [[report.purposes]] names"
                    )
        return self


def load_config(path: Path) -> Config:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot be read: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: is not UTF-8 text") from None
    return parse_config(text, path)


def parse_config(text: str, path: Path) -> Config:
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    try:
        config = Config.model_validate(_resolve_paths(document, path.parent.resolve()))
    except ValidationError as exc:
        errors = exc.errors()
        # A misspelt key is the cause of the "Field required" of the key it was meant to be.
        error = next((e for e in errors if e["type"] == "extra_forbidden"), errors[0])
        location = tuple(error["loc"])
        key = ".".join(str(part) for part in location if not isinstance(part, int)) or "(top)"
        line = locate(text, location)
        where = f"{path}, line {line}" if line else str(path)
        if error["type"] == "extra_forbidden":
            raise ConfigError(f"{where}: {_unknown_key(key, location)}") from None
        raise ConfigError(f"{where}: {key}: {_message(error)}") from None
    # Imported here: the CLI's client commands read [server] without loading SQLAlchemy.
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    for url in _urls(config):
        try:
            make_url(url)
        except ArgumentError:
            raise ConfigError(f"{path}: '{url[:60]}' is not a database URL") from None
    return config


def _message(error: Any) -> str:
    return str(error["msg"]).removeprefix("Value error, ")


def _unknown_key(key: str, location: tuple[Any, ...]) -> str:
    """`unknown key `server.prot` (did you mean `port`?)`: the keys of the table it is in
    that it is closest to (difflib), if any is close."""
    known = _keys_at(location[:-1])
    close = difflib.get_close_matches(str(location[-1]), known, n=3, cutoff=0.6)
    if not close:
        return f"unknown key `{key}`" + (f" (known: {', '.join(known)})" if known else "")
    best = difflib.SequenceMatcher(None, str(location[-1]), close[0]).ratio()
    tied = [c for c in close if difflib.SequenceMatcher(None, str(location[-1]), c).ratio() == best]
    return f"unknown key `{key}` (did you mean {' or '.join(f'`{c}`' for c in tied)}?)"


def _keys_at(location: tuple[Any, ...]) -> list[str]:
    """The keys the table at `location` (a pydantic error's, array indexes and all) takes."""
    models: list[type[BaseModel]] = [Config]
    for part in location:
        if isinstance(part, int):
            continue  # an entry of an array of tables: the array's model
        fields = [model.model_fields[part] for model in models if part in model.model_fields]
        if fields:  # else a key of a table of tables (a column's name): its entries' model
            models = [model for field in fields for model in _models_in(field.annotation)]
    return sorted({name for model in models for name in model.model_fields})


def _models_in(annotation: Any) -> list[type[BaseModel]]:
    """The models a field's type holds: itself, or inside `X | None`, `tuple[X, ...]`, ..."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return [model for argument in get_args(annotation) for model in _models_in(argument)]


def _urls(config: Config) -> list[str]:
    urls = [s.url for s in config.sources.sql]
    if config.directory is not None:
        urls.append(config.directory.url)
    return urls


def _resolve_paths(document: dict[str, Any], base: Path) -> dict[str, Any]:
    """Make relative paths and relative SQLite URLs relative to the configuration file."""

    def sqlite_url(url: Any) -> Any:
        if (
            isinstance(url, str)
            and url.startswith("sqlite:///")
            and not url.startswith("sqlite:////")
        ):
            relative = url.removeprefix("sqlite:///")
            if relative and not relative.startswith(":memory:"):
                return f"sqlite:///{base / relative}"
        return url

    def path(value: Any) -> Any:
        if isinstance(value, str) and not Path(value).is_absolute():
            return str(base / value)
        return value

    resolved = {**document}
    if isinstance(resolved.get("directory"), dict):
        resolved["directory"] = {**resolved["directory"]}
        resolved["directory"]["url"] = sqlite_url(resolved["directory"].get("url"))
    sources = resolved.get("sources")
    if isinstance(sources, dict):
        sources = resolved["sources"] = {**sources}
        if isinstance(sources.get("sql"), list):
            sources["sql"] = [
                {**s, "url": sqlite_url(s.get("url"))} if isinstance(s, dict) else s
                for s in sources["sql"]
            ]
        if isinstance(sources.get("files"), list):
            sources["files"] = [
                {**f, "path": path(f.get("path"))} if isinstance(f, dict) else f
                for f in sources["files"]
            ]
    storage = resolved.get("storage")
    if isinstance(storage, dict) and isinstance(storage.get("local"), dict):
        local = {**storage["local"]}
        if isinstance(local.get("roots"), list):
            local["roots"] = [path(root) for root in local["roots"]]
        resolved["storage"] = storage = {**storage, "local": local}
    if isinstance(storage, dict) and isinstance(storage.get("s3_presigned"), dict):
        presigned = {**storage["s3_presigned"]}
        if "spool_dir" in presigned:
            presigned["spool_dir"] = path(presigned["spool_dir"])
        resolved["storage"] = {**storage, "s3_presigned": presigned}
    erasure = resolved.get("erasure")
    if isinstance(erasure, dict) and "hash_secret_file" in erasure:
        resolved["erasure"] = {**erasure, "hash_secret_file": path(erasure["hash_secret_file"])}
    auth = resolved.get("auth")
    if isinstance(auth, dict) and "jwks_file" in auth:
        resolved["auth"] = {**auth, "jwks_file": path(auth["jwks_file"])}
    store = resolved.get("store")
    if isinstance(store, dict) and "url" in store:
        resolved["store"] = {**store, "url": sqlite_url(store["url"])}
    server = resolved.get("server")
    if isinstance(server, dict) and "data_dir" in server:
        resolved["server"] = {**server, "data_dir": path(server["data_dir"])}
    return resolved


_HEADER = re.compile(r"^\s*(\[\[?)\s*([^\]]+?)\s*\]\]?\s*(?:#.*)?$")
_KEY = re.compile(r"^\s*([A-Za-z0-9_\-\"']+)\s*=")


def locate(text: str, location: tuple[Any, ...]) -> int | None:
    """The line of the key at `location` (as pydantic reports it), or of its table.

    tomllib keeps no positions, so this walks the text: table headers set the current table
    path, arrays of tables count their entries, and the first `key =` inside the wanted table
    is the answer. It understands the layouts this file is documented with; for anything else
    (inline tables, dotted keys) it falls back to the nearest table header, or None.
    """
    keys = [str(p) for p in location]
    counters: dict[str, int] = {}
    current: list[str] = []
    best: int | None = None
    for number, line in enumerate(text.splitlines(), start=1):
        header = _HEADER.match(line)
        if header:
            names = [n.strip().strip("\"'") for n in header.group(2).split(".")]
            current = _header_path(names, header.group(1) == "[[", counters)
            if current == keys[: len(current)]:
                best = number
            continue
        key = _KEY.match(line)
        if key and [*current, key.group(1).strip("\"'")] == keys[: len(current) + 1]:
            return number
    return best


def _header_path(names: list[str], is_array: bool, counters: dict[str, int]) -> list[str]:
    """The pydantic-style path of a table header, with array indexes filled in."""
    path: list[str] = []
    for depth, name in enumerate(names):
        path.append(name)
        prefix = ".".join(path)
        last = depth == len(names) - 1
        if last and is_array:
            # Keys include the indexes of enclosing arrays, so nested arrays count per parent.
            counters[prefix] = counters.get(prefix, -1) + 1
            path.append(str(counters[prefix]))
        elif prefix in counters:
            path.append(str(counters[prefix]))
    return path
