"""The `datapolicy` command: serve's options, environment, configuration file and Ctrl-C."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from conftest import free_port, start_service


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "datapolicy", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **(env or {})},
    )


def test_serve_help_lists_every_option():
    result = run("serve", "--help")
    assert result.returncode == 0
    for option in ("--host", "--port", "--data-dir", "--config", "--demo"):
        assert option in result.stdout


def test_demo_exports_a_person_and_ctrl_c_stops_cleanly(tmp_path: Path):
    service = start_service(tmp_path / "data", "--demo")
    try:
        users = httpx.get(f"{service.url}/users").json()["value"]
        assert len(users) > 1
        response = httpx.post(
            f"{service.url}/users/{users[0]['id']}/exportPersonalData",
            json={"storageLocation": f"{tmp_path}/data/exports/quickstart"},
        )
        assert response.status_code == 202
        deadline = time.monotonic() + 30
        while (operation := httpx.get(response.headers["location"]).json())["status"] not in (
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


def test_options_come_from_the_environment(tmp_path: Path):
    port = free_port()
    env = {**os.environ, "DATAPOLICY_PORT": str(port), "DATAPOLICY_DATA_DIR": str(tmp_path)}
    process = subprocess.Popen(
        [sys.executable, "-m", "datapolicy", "serve"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                response = httpx.get(f"http://127.0.0.1:{port}/v1.0/dataPolicyOperations")
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline, "serve did not start from the environment"
                time.sleep(0.1)
        assert response.status_code == 200
        assert (tmp_path / "datapolicy.sqlite3").is_file()
    finally:
        process.terminate()
        assert process.wait(timeout=15) == 0


def test_a_configuration_file_sets_the_data_directory(tmp_path: Path):
    config = tmp_path / "datapolicy.toml"
    config.write_text(f'[server]\ndata_dir = "{tmp_path / "from-config"}"\n')
    service = start_service(tmp_path / "ignored", "--config", str(config))
    service.stop()
    # --data-dir on the command line wins over the file.
    assert (tmp_path / "ignored" / "datapolicy.sqlite3").is_file()
    assert not (tmp_path / "from-config").exists()


def test_configuration_errors_are_one_clear_line(tmp_path: Path):
    config = tmp_path / "bad.toml"
    config.write_text("[server]\nprot = 80\n")
    result = run("serve", "--config", str(config))
    assert result.returncode != 0
    assert "line 2: server.prot: unknown key" in result.stderr
    assert str(config) in result.stderr
    assert "Traceback" not in result.stderr
    config.write_text("[server\n")
    assert "not valid TOML" in run("serve", "--config", str(config)).stderr
