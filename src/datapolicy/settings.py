"""Service settings: defaults, then the configuration file, then environment variables
(`DATAPOLICY_*`) and command-line options, each overriding the one before."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from datapolicy.config import Config

DEFAULT_DATA_DIR = Path("datapolicy-data")
DATABASE_FILE = "datapolicy.sqlite3"
DEFAULT_DRAIN_SECONDS = 5.0  # a few probes of a load balancer checking every second or two


def _default_config() -> Config:
    """An empty configuration. datapolicy.config (pydantic) is imported when one is first
    made, not with this module: the CLI's `--help` and client commands import this module for
    `DEFAULT_DATA_DIR` alone (cli/options.py)."""
    from datapolicy.config import Config

    return Config()


@dataclass(frozen=True)
class Settings:
    host: str = "127.0.0.1"
    port: int = 8080
    data_dir: Path = DEFAULT_DATA_DIR
    demo: bool = False
    scenarios: bool = False  # `serve --scenarios`: the test-double controls
    # `serve --scenarios-file`: the rules and modes they start with (scenarios/preset.py)
    scenarios_file: Path | None = None
    profile: str = "datapolicy"  # `serve --profile graph`: answer as Microsoft Graph does
    # `serve --shutdown-drain-seconds`; None: DEFAULT_DRAIN_SECONDS, or none under --demo.
    shutdown_drain_seconds: float | None = None
    # `serve --tls-cert/--tls-key`: https with the operator's certificate chain and key;
    # `--tls-self-signed`: with one made in the data directory (tls.py).
    tls_cert: Path | None = None
    tls_key: Path | None = None
    tls_self_signed: bool = False
    # The store's URL (--database), over [store] url; repr=False: it may hold a password.
    database: str | None = field(default=None, repr=False)
    config: Config = field(default_factory=_default_config)

    def __post_init__(self) -> None:
        if self.scenarios_file is not None:  # it sets up the scenario controls: they are on
            object.__setattr__(self, "scenarios", True)

    @property
    def drain_seconds(self) -> float:
        """How long `serve` keeps serving after SIGTERM with `/readyz` at 503, so that load
        balancers stop routing to it before it stops listening. The demo runs alone on a
        laptop, behind no load balancer: its Ctrl-C stops at once unless asked otherwise."""
        if self.shutdown_drain_seconds is not None:
            return self.shutdown_drain_seconds
        return 0.0 if self.demo else DEFAULT_DRAIN_SECONDS

    @property
    def cors_origins(self) -> list[str]:
        """The origins whose pages may call the API: `[server] cors_origins`, else any under
        --demo and --scenarios (a laptop's or a test suite's service, which a page on another
        port calls), else none."""
        origins = self.config.server.cors_origins
        if origins is not None:
            return origins
        from datapolicy.config import ANY_ORIGIN

        return [ANY_ORIGIN] if self.demo or self.scenarios else []

    @property
    def database_path(self) -> Path:
        return self.data_dir / DATABASE_FILE

    @property
    def database_url(self) -> str:
        """The operation store: --database, else [store] url, else SQLite in the data directory."""
        return self.database or self.config.store.url or f"sqlite:///{self.database_path}"

    def with_file(self, path: Path) -> Settings:
        """These settings, with what the configuration file at `path` sets."""
        from datapolicy.config import load_config

        config = load_config(path)
        return replace(self, config=config, **config.server.options)

    def with_overrides(self, *, workers: int | None = None, **values: Any) -> Settings:
        """These settings, with every value that is not None replaced (`workers`: the number
        of export threads, in the configuration's engine table)."""
        settings = replace(self, **{k: v for k, v in values.items() if v is not None})
        if workers is not None:
            engine = settings.config.engine.model_copy(update={"workers": workers})
            settings = replace(
                settings, config=settings.config.model_copy(update={"engine": engine})
            )
        return settings
