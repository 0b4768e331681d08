"""The `datapolicy` command: serve's options, environment, configuration file and Ctrl-C."""

from __future__ import annotations

import base64
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from commands import datapolicy as run

from conftest import TEST_STORE, start_service, store_args, token_for
from datapolicy.auth.configure import validator_for
from datapolicy.auth.keys import SIGNING_KEY_FILE
from datapolicy.auth.permissions import EXPORT
from datapolicy.config import AuthConfig
from datapolicy.testing.server import bound_port

pytestmark = pytest.mark.operation_store  # starts services on the test store


@pytest.mark.e2e  # a `serve` process, a worker or another program on its port
def test_serve_help_lists_every_option():
    result = run("serve", "--help")
    assert result.returncode == 0
    for option in (
        "--host",
        "--port",
        "--data-dir",
        "--config",
        "--demo",
        "--shutdown-drain-seconds",
    ):
        assert option in result.stdout


@pytest.mark.e2e  # a `serve` process, a worker or another program on its port
def test_demo_exports_a_person_and_ctrl_c_stops_cleanly(tmp_path: Path):
    """The README's quick start: serve the demo, get a token with `datapolicy token`, export."""
    service = start_service(tmp_path / "data", "--demo")
    try:
        minted = run(
            *("token", "--data-dir", str(tmp_path / "data")),
            *("--permission", "User.Export.All", "--permission", "User.Read.All"),
        )
        assert minted.returncode == 0, minted.stderr
        headers = {"Authorization": f"Bearer {minted.stdout.strip()}"}
        with httpx.Client(base_url=service.url, headers=headers, timeout=30) as http:
            users = http.get("/users").json()["value"]
            assert len(users) > 1
            response = http.post(
                f"/users/{users[0]['id']}/exportPersonalData",
                json={"storageLocation": f"{tmp_path}/data/exports/quickstart"},
            )
            assert response.status_code == 202
            deadline = time.monotonic() + 30
            while (operation := http.get(response.headers["location"]).json())["status"] not in (
                "complete",
                "failed",
            ):
                assert time.monotonic() < deadline, operation
                time.sleep(0.2)
        assert operation["status"] == "complete", operation
    finally:
        service.process.send_signal(signal.SIGINT)
        assert service.process.wait(timeout=15) == 0
    assert "Traceback" not in service.log.read_text()
    package = tmp_path / "data/exports/quickstart" / f"{operation['id']}.zip"
    verified = run("verify", str(package))
    assert (verified.returncode, verified.stdout.strip()) == (0, f"{package}: OK")


def test_verify_reports_a_tampered_package(tmp_path: Path):
    import zipfile

    package = tmp_path / "tampered.zip"
    with zipfile.ZipFile(package, "w") as archive:
        archive.writestr(
            "manifest.json",
            '{"formatVersion": 1, "files": [{"path": "a.txt", "size": 1, "sha256": "00"}]}',
        )
        archive.writestr("a.txt", "b")
        archive.writestr("extra.txt", "x")
    result = run("verify", str(package))
    assert result.returncode == 1
    assert "a.txt: SHA-256 does not match the manifest" in result.stderr
    assert "extra.txt: in the ZIP but not in the manifest" in result.stderr


@pytest.mark.e2e  # a `serve` process, a worker or another program on its port
def test_options_come_from_the_environment(tmp_path: Path):
    # Made before the server starts, which then uses the key it finds in its data directory.
    headers = {"Authorization": f"Bearer {token_for(tmp_path, EXPORT)}"}
    env = {
        **os.environ,
        "DATAPOLICY_PORT": "0",  # a free port of the system's choosing, never the default 8080
        "DATAPOLICY_DATA_DIR": str(tmp_path),
        "DATAPOLICY_SHUTDOWN_DRAIN_SECONDS": "0",  # stops at once, no load balancer here
    }
    log = tmp_path / "serve.log"
    with log.open("wb") as output:
        process = subprocess.Popen(
            [sys.executable, "-m", "datapolicy", "serve"],
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 30
        while (port := bound_port(log)) is None:
            assert time.monotonic() < deadline, f"serve did not start:\n{log.read_text()}"
            time.sleep(0.1)
        assert port != 8080
        response = httpx.get(f"http://127.0.0.1:{port}/v1.0/dataPolicyOperations", headers=headers)
        assert response.status_code == 200
        assert (tmp_path / "datapolicy.sqlite3").is_file()
    finally:
        process.terminate()
        assert process.wait(timeout=15) == 0


@pytest.mark.e2e  # a `serve` process, a worker or another program on its port
def test_a_configuration_file_sets_the_data_directory(tmp_path: Path):
    config = tmp_path / "datapolicy.toml"
    config.write_text(f'[server]\ndata_dir = "{tmp_path / "from-config"}"\n')
    service = start_service(tmp_path / "ignored", "--config", str(config))
    service.stop()
    # --data-dir on the command line wins over the file.
    if TEST_STORE == "sqlite":  # (on PostgreSQL, the store is not in the data directory)
        assert (tmp_path / "ignored" / "datapolicy.sqlite3").is_file()
    assert not (tmp_path / "from-config").exists()


@pytest.mark.e2e  # a `serve` process, a worker or another program on its port
def test_configuration_errors_are_one_clear_line(tmp_path: Path):
    config = tmp_path / "bad.toml"
    config.write_text("[server]\nprot = 80\n")
    result = run("serve", "--config", str(config))
    assert result.returncode != 0
    assert "line 2: unknown key `server.prot` (did you mean `port`?)" in result.stderr
    assert str(config) in result.stderr
    assert "Traceback" not in result.stderr
    config.write_text("[server\n")
    assert "not valid TOML" in run("serve", "--config", str(config)).stderr


def test_token_prints_a_token_for_the_services_own_key(tmp_path: Path):
    data_dir = tmp_path / "data"
    result = run(
        *("token", "--data-dir", str(data_dir), "--expires", "10m"),
        *("--permission", "User.Export.All", "--permission", "User.Read.All"),
    )
    assert result.returncode == 0, result.stderr
    token = result.stdout.strip()
    assert (data_dir / SIGNING_KEY_FILE).stat().st_mode & 0o777 == 0o600
    validator = validator_for(AuthConfig(), data_dir)
    principal = validator.validate(token)
    assert principal.permissions == {"User.Export.All", "User.Read.All"}
    assert principal.subject == "datapolicy-cli"
    assert 590 < principal.expires_at - time.time() <= 600
    # A second token comes from the same key.
    again = run("token", "--data-dir", str(data_dir), "--permission", "User.Read.All")
    assert validator.validate(again.stdout.strip()).permissions == {"User.Read.All"}


def test_one_shot_commands_print_no_info_log_lines(tmp_path: Path):
    """With JSON logging, `token` (which creates the signing key, an INFO line) and `db
    upgrade` (which opens the store) print their output alone: INFO lines are a service's log
    (`serve`, `worker`), not a command's (docs/observability.md)."""
    json_logs = {"DATAPOLICY_LOG_FORMAT": "json"}
    data_dir = str(tmp_path / "data")
    token = run("token", "--data-dir", data_dir, "--permission", EXPORT, env=json_logs)
    assert token.returncode == 0, token.stderr
    assert (token.stdout.count("\n"), token.stderr) == (1, "")
    upgraded = run(
        "db", "upgrade", "--data-dir", data_dir, *store_args(Path(data_dir)), env=json_logs
    )
    assert (upgraded.returncode, upgraded.stderr) == (0, "")


def test_token_takes_issuer_and_audience_from_the_configuration(tmp_path: Path):
    config = tmp_path / "datapolicy.toml"
    config.write_text(
        '[server]\ndata_dir = "data"\n[auth]\nissuer = "https://dp.example"\naudience = "dp"\n'
    )
    result = run("token", "--config", str(config), "--permission", "User.Export.All")
    assert result.returncode == 0, result.stderr
    claims = json.loads(base64.urlsafe_b64decode(result.stdout.split(".")[1] + "=="))
    assert (claims["iss"], claims["aud"], claims["roles"]) == (
        "https://dp.example",
        "dp",
        ["User.Export.All"],
    )
    assert (tmp_path / "data" / SIGNING_KEY_FILE).is_file()


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--expires", "2x"], "'2x' is not a duration such as 90s, 10m, 1h or 7d"),
        (["--expires", "31d"], "'31d' is longer than 30 days"),
        (["--permission", "User.ReadWrite.All"], "'User.ReadWrite.All' is not one of"),
        (["--permission"], "Option '--permission' requires an argument"),
    ],
)
def test_token_refuses_bad_options(tmp_path: Path, arguments: list[str], message: str):
    result = run("token", "--data-dir", str(tmp_path), "--permission", "User.Read.All", *arguments)
    assert result.returncode == 2
    assert message in result.stderr


def test_token_needs_a_permission_and_refuses_when_a_jwks_is_configured(tmp_path: Path):
    missing = run("token", "--data-dir", str(tmp_path))
    assert missing.returncode == 2
    assert "Missing option '--permission'" in missing.stderr
    config = tmp_path / "datapolicy.toml"
    config.write_text('[auth]\njwks_file = "keys.json"\nissuer = "i"\naudience = "a"\n')
    result = run("token", "--config", str(config), "--permission", "User.Read.All")
    assert result.returncode == 1
    assert "tokens come from that identity provider" in result.stderr
    assert result.stdout == ""
