"""Which service a client command talks to (cli/client.py): --url or DATAPOLICY_URL, else the
[server] host and port of its --config, else the default; and a service it cannot reach is one
line that names the URL tried, where it came from, and how to give another; a request's
`client-request-id` through its repeats."""

from __future__ import annotations

import uuid
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
from commands import datapolicy, json_output, one_line_error

from conftest import ProcessService, Service
from datapolicy.cli.client import DEFAULT_URL, Api, api_url

CLOSED = "http://127.0.0.1:9/v1.0"  # the discard port: nothing listens


@pytest.fixture(scope="module")
def service(service_process: ProcessService) -> ProcessService:
    """The session's service in a process: the CLI reaches it over its port."""
    return service_process


def _config(tmp_path: Path, host: str, port: int) -> Path:
    path = tmp_path / "datapolicy.toml"
    path.write_text(f'[server]\nhost = "{host}"\nport = {port}\n')
    return path


@pytest.mark.e2e
def test_the_config_files_server_port_is_the_services(service: Service, tmp_path: Path):
    """`ops list --config FILE` reaches the service on FILE's [server] port, not 8080."""
    port = urlsplit(service.url).port
    assert port not in (None, 8080)
    config = _config(tmp_path, "127.0.0.1", port)
    result = datapolicy("ops", "list", "--config", str(config), "--token", service.token, "--json")
    assert json_output(result) is not None
    by_environment = datapolicy(
        "ops", "list", "--token", service.token, "--json", env={"DATAPOLICY_CONFIG": str(config)}
    )
    assert json_output(by_environment) is not None


@pytest.mark.e2e
def test_url_and_its_environment_variable_win_over_the_config(service: Service, tmp_path: Path):
    config = _config(tmp_path, "127.0.0.1", 9)
    explicit = datapolicy(
        "ops", "list", "--config", str(config), "--url", service.url, "--token", service.token
    )
    assert explicit.returncode == 0, explicit.stderr
    from_environment = datapolicy(
        "ops",
        "list",
        "--config",
        str(config),
        "--token",
        service.token,
        env={"DATAPOLICY_URL": service.url},
    )
    assert from_environment.returncode == 0, from_environment.stderr


def test_an_unreachable_service_names_the_url_its_origin_and_the_way_out(tmp_path: Path):
    config = _config(tmp_path, "0.0.0.0", 9)
    from_config = one_line_error(datapolicy("ops", "list", "--config", str(config), "--token", "t"))
    assert from_config.startswith(f"Error: cannot reach {CLOSED} ([server] of {config}; ")
    assert "--url or DATAPOLICY_URL" in from_config
    default = one_line_error(datapolicy("ops", "list", "--token", "t", env={"DATAPOLICY_URL": ""}))
    assert default.startswith(f"Error: cannot reach {DEFAULT_URL} (the default; ")
    given = one_line_error(datapolicy("ops", "list", "--token", "t", "--url", CLOSED))
    assert given.startswith(f"Error: cannot reach {CLOSED} (from --url or DATAPOLICY_URL; ")


@pytest.mark.parametrize(
    ("host", "reached"),
    [
        ("0.0.0.0", "127.0.0.1"),
        ("::", "[::1]"),
        ("::1", "[::1]"),
        ("10.1.2.3", "10.1.2.3"),
        ("api.internal", "api.internal"),
    ],
)
def test_a_listening_address_becomes_the_address_to_reach(tmp_path: Path, host: str, reached: str):
    """A wildcard address is reached on the loopback interface; IPv6 is bracketed."""
    assert api_url(None, _config(tmp_path, host, 9000)) == (
        f"http://{reached}:9000/v1.0",
        f"[server] of {tmp_path / 'datapolicy.toml'}",
    )
    assert api_url("http://x/v1.0", _config(tmp_path, host, 9000))[0] == "http://x/v1.0"
    assert api_url(None, None) == (DEFAULT_URL, "the default")


@pytest.mark.e2e
def test_a_client_command_prints_no_log_lines(service: Service):
    """With JSON logging asked for, a client command that mints its token (reading the
    configuration and the signing key) prints its output and nothing on stderr: log lines are
    the service's, not a command's output (docs/observability.md)."""
    result = datapolicy(
        "ops",
        "list",
        "--url",
        service.url,
        "--data-dir",
        str(service.data_dir),
        "--json",
        env={"DATAPOLICY_LOG_FORMAT": "json"},
    )
    assert json_output(result) is not None
    assert result.stderr == ""


def test_a_request_keeps_its_client_request_id_through_its_repeats():
    """Graph's SDKs send a `client-request-id` and keep it when they retry a 429 or 503: the
    CLI's client does the same, and a new request gets a new id."""
    seen: list[httpx.Request] = []

    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if len(seen) in (1, 2):
            return httpx.Response(429, headers={"Retry-After": "1"}, json={"error": {}})
        return httpx.Response(200, json={"value": []})

    api = Api("http://127.0.0.1:9/v1.0", "token", sleep=lambda seconds: None)
    api.http = httpx.Client(transport=httpx.MockTransport(handle))
    api.get("/users", headers={"ConsistencyLevel": "eventual"})
    api.get("/users")
    ids = [request.headers["client-request-id"] for request in seen]
    assert ids[0] == ids[1] == ids[2] != ids[3]
    assert str(uuid.UUID(ids[3])) == ids[3]
    assert seen[0].headers["ConsistencyLevel"] == "eventual"
