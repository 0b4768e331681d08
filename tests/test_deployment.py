"""The deployment files (docker-compose.yml, Dockerfile, deploy/datapolicy.toml) say what the
`datapolicy` command and the configuration accept. No Docker engine runs the tests, so nothing
is built or started here: every datapolicy command line in the compose file is parsed by the
real CLI (options, their checks and the DATAPOLICY_* environment it is given, without running
the command), and the configuration file is loaded by the real loader."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import click
import pytest
import yaml

from datapolicy.cli import main
from datapolicy.config import load_config
from datapolicy.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
COMPOSE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "Dockerfile"


def compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE.read_text())  # merge keys (<<) resolved


def datapolicy_services() -> dict[str, dict[str, Any]]:
    return {
        name: service
        for name, service in compose()["services"].items()
        if service.get("image", "").startswith("datapolicy")
    }


def test_the_compose_file_has_the_store_storage_two_apis_and_three_workers():
    services = compose()["services"]
    assert {"postgres", "azurite", "api", "worker"} <= set(services)
    ours = datapolicy_services()
    assert set(ours) == {"api", "worker"}
    assert ours["api"]["deploy"]["replicas"] == 2
    assert ours["worker"]["deploy"]["replicas"] == 3
    for service in ours.values():
        assert service["depends_on"]["postgres"]["condition"] == "service_healthy"
        assert service["environment"]["DATAPOLICY_DATABASE"].startswith("postgresql://")
        assert "data:/var/lib/datapolicy" in service["volumes"]
        assert "healthcheck" not in service  # the image's: /healthz, for the API and workers
        grace = int(service["stop_grace_period"].removesuffix("s"))
        settings = Settings().with_file(ROOT / "deploy" / "datapolicy.toml")
        # SIGTERM: the drain, then exports get their grace period; both before the SIGKILL.
        assert grace > settings.drain_seconds + settings.config.engine.shutdown_grace_seconds


@pytest.mark.parametrize("name", ["api", "worker"])
def test_every_command_line_and_variable_is_one_the_cli_accepts(name: str, monkeypatch):
    service = datapolicy_services()[name]
    environment: dict[str, str] = service["environment"]
    for variable in environment:
        monkeypatch.delenv(variable, raising=False)
    for variable, value in environment.items():
        monkeypatch.setenv(variable, str(value))
    # The image's ENTRYPOINT is `datapolicy`: a command is the subcommand and its arguments.
    command_name, *arguments = service["command"]
    group = click.Context(main, info_name="datapolicy")
    command = main.get_command(group, command_name)
    assert isinstance(command, click.Command), command_name
    # Parsing runs every option's checks (a bad --database URL, a port out of range fails).
    context = command.make_context(command_name, arguments, parent=group)
    accepted = {
        param.envvar
        for param in command.params
        if isinstance(param, click.Option) and isinstance(param.envvar, str)
    }
    assert set(environment) <= accepted, set(environment) - accepted
    assert context.params["database"] == environment["DATAPOLICY_DATABASE"]
    assert context.params["config_file"] == Path("/etc/datapolicy/datapolicy.toml")


def test_the_mounted_configuration_loads():
    config = load_config(ROOT / "deploy" / "datapolicy.toml")
    assert config.store.pool_timeout < 30  # requests fail fast (503) while the store is away
    assert "azurite:10000" in config.storage.azure.allowed_hosts
    mounts = datapolicy_services()["api"]["volumes"]
    assert "./deploy/datapolicy.toml:/etc/datapolicy/datapolicy.toml:ro" in mounts


def test_the_image_runs_the_console_script_as_a_non_root_user_with_a_health_check():
    text = DOCKERFILE.read_text()
    assert re.search(r"^FROM python:3\.11-slim\b", text, re.MULTILINE)
    assert re.search(r"^USER datapolicy$", text, re.MULTILINE)
    assert 'ENTRYPOINT ["datapolicy"]' in text
    assert "/healthz" in text.split("HEALTHCHECK", 1)[1]
    assert "pip install" in text
    scripts = (ROOT / "pyproject.toml").read_text()
    assert 'datapolicy = "datapolicy.cli:main"' in scripts
    # What the image sets is what `serve` and `worker` read; a worker's metrics port (and its
    # /healthz) is the port the health check asks.
    read: dict[str, set[str]] = {}
    for name in ("serve", "worker"):
        command = main.get_command(click.Context(main), name)
        assert command is not None
        read[name] = {getattr(param, "envvar", None) for param in command.params} - {None}
    image = dict(re.findall(r"(DATAPOLICY_[A-Z_]+)=(\S+)", text))
    assert set(image) <= read["serve"] | read["worker"]
    assert {"DATAPOLICY_DATA_DIR", "DATAPOLICY_HOST", "DATAPOLICY_PORT"} <= read["serve"]
    assert {"DATAPOLICY_METRICS_HOST", "DATAPOLICY_METRICS_PORT"} <= read["worker"]
    assert image["DATAPOLICY_METRICS_PORT"] == image["DATAPOLICY_PORT"]
