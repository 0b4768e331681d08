"""Service settings: defaults, then the TOML configuration file, then environment variables
(`DATAPOLICY_*`) and command-line options, each overriding the one before.

The configuration file's `[server]` table takes the same names as the command-line options::

    [server]
    host = "0.0.0.0"
    port = 8080
    data_dir = "/var/lib/datapolicy"
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

DEFAULT_DATA_DIR = Path("datapolicy-data")
DATABASE_FILE = "datapolicy.sqlite3"


class ConfigError(Exception):
    """The configuration file cannot be used; the message names the file and the key."""


@dataclass(frozen=True)
class Settings:
    host: str = "127.0.0.1"
    port: int = 8080
    data_dir: Path = DEFAULT_DATA_DIR
    demo: bool = False

    @property
    def database_path(self) -> Path:
        return self.data_dir / DATABASE_FILE

    def with_file(self, path: Path) -> Settings:
        """These settings, with what the configuration file at `path` sets."""
        try:
            document = tomllib.loads(path.read_text(encoding="utf-8"))
        except OSError as exc:
            raise ConfigError(f"{path}: cannot be read: {exc.strerror}") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{path}: not valid TOML: {exc}") from None
        unknown = set(document) - {"server"}
        if unknown:
            raise ConfigError(f"{path}: unknown table or key '{sorted(unknown)[0]}'")
        return replace(self, **_server_table(path, document.get("server", {})))


def _server_table(path: Path, table: Any) -> dict[str, Any]:
    if not isinstance(table, dict):
        raise ConfigError(f"{path}: 'server' must be a table")
    types = {"host": str, "port": int, "data_dir": str}
    values: dict[str, Any] = {}
    for key, value in table.items():
        expected = types.get(key)
        if expected is None:
            known = ", ".join(f.name for f in fields(Settings) if f.name in types)
            raise ConfigError(f"{path}: unknown key 'server.{key}' (known: {known})")
        if not isinstance(value, expected) or isinstance(value, bool):
            raise ConfigError(f"{path}: 'server.{key}' must be a {expected.__name__}")
        values[key] = Path(value) if key == "data_dir" else value
    if "port" in values and not 0 < values["port"] < 65536:
        raise ConfigError(f"{path}: 'server.port' must be between 1 and 65535")
    return values
