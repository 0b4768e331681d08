"""https from `serve` itself (tls.py): `--tls-self-signed` makes a certificate in the data
directory (the key owner-only) that an https client verifying it trusts, `--tls-cert/--tls-key`
serve the operator's files, and `Location`, `@odata.context` and `@odata.nextLink` then say
https. A file that is no certificate fails the start, naming the file."""

from __future__ import annotations

import os
import ssl
import stat
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner
from cryptography import x509

from conftest import ProcessService, store_args
from datapolicy.cli import main
from datapolicy.testing.server import start_serve
from datapolicy.tls import TLS_CERTIFICATE_FILE, TLS_FILE, self_signed

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.operation_store,
]  # `serve` in a process, over https on its port


def _start_https(data_dir: Path, *args: str) -> ProcessService:
    process, port, log = start_serve(
        data_dir, *store_args(data_dir), "--workers", "0", *args, scheme="https"
    )
    return ProcessService(f"https://127.0.0.1:{port}/v1.0", data_dir, process, log)


def _trusting(certificate: Path) -> ssl.SSLContext:
    """A client context that trusts `certificate` only, and checks the host name."""
    return ssl.create_default_context(cafile=str(certificate))


def _urls_say_https(service: ProcessService, verify: ssl.SSLContext, user_id: str) -> None:
    with httpx.Client(
        base_url=service.url, headers=service.headers, verify=verify, timeout=30
    ) as http:
        created = [http.post("/dataPolicyOperations", json={"userId": user_id}) for _ in range(2)]
        assert [c.status_code for c in created] == [201, 201], created[0].text
        assert created[0].headers["location"].startswith(f"{service.url}/")
        assert created[0].json()["@odata.context"].startswith(f"{service.url}/$metadata")
        read = http.get(created[0].headers["location"])  # the read fast path
        assert read.json()["@odata.context"].startswith("https://")
        page = http.get(
            "/dataPolicyOperations", params={"$top": "1", "$filter": f"userId eq '{user_id}'"}
        ).json()
        assert page["@odata.context"].startswith("https://")
        assert page["@odata.nextLink"].startswith(f"{service.url}/dataPolicyOperations?")
        assert len(http.get(page["@odata.nextLink"]).json()["value"]) == 1


def test_a_self_signed_certificate_that_a_verifying_client_trusts(tmp_path: Path):
    data_dir = tmp_path / "data"
    service = _start_https(data_dir, "--tls-self-signed")
    try:
        certificate = data_dir / TLS_CERTIFICATE_FILE
        assert str(certificate) in service.log.read_text()  # printed where it is
        assert stat.S_IMODE((data_dir / TLS_FILE).stat().st_mode) == 0o600
        assert b"PRIVATE KEY" not in certificate.read_bytes()
        _urls_say_https(service, _trusting(certificate), "tls-self-signed")
        # A client that does not trust it refuses the connection.
        with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
            httpx.get(f"{service.url}/openapi.json", verify=ssl.create_default_context())
        _the_cli_trusts_it_when_told(service, certificate)
    finally:
        service.stop()


def _the_cli_trusts_it_when_told(service: ProcessService, certificate: Path) -> None:
    """A client command refuses the certificate with one line that says how to trust it
    (it said only "cannot reach", with --url's hint), and trusts it from SSL_CERT_FILE."""
    command = [sys.executable, "-m", "datapolicy", "users", "list", "--top", "1"]
    command += ["--url", service.url, "--data-dir", str(service.data_dir)]
    environment = {k: v for k, v in os.environ.items() if not k.startswith(("DATAPOLICY_", "SSL_"))}
    refused = subprocess.run(command, capture_output=True, text=True, env=environment, timeout=60)
    assert refused.returncode == 1
    (line,) = refused.stderr.strip().splitlines()
    assert line.startswith(f"Error: cannot trust {service.url}'s certificate (")
    assert "SSL_CERT_FILE=FILE" in line
    assert TLS_CERTIFICATE_FILE in line
    environment["SSL_CERT_FILE"] = str(certificate)
    trusted = subprocess.run(command, capture_output=True, text=True, env=environment, timeout=60)
    assert trusted.returncode == 0, trusted.stderr


def test_the_operator_s_certificate_and_key(tmp_path: Path):
    made = self_signed(tmp_path / "elsewhere", "127.0.0.1")
    pem = made.certificate.read_text()
    key, certificate = tmp_path / "key.pem", tmp_path / "chain.pem"
    split = pem.index("-----BEGIN CERTIFICATE-----")
    key.write_text(pem[:split])
    certificate.write_text(pem[split:])
    service = _start_https(tmp_path / "data", "--tls-cert", str(certificate), "--tls-key", str(key))
    try:
        assert not (tmp_path / "data" / TLS_FILE).exists()
        _urls_say_https(service, _trusting(certificate), "tls-operator")
    finally:
        service.stop()


def test_the_self_signed_certificate_is_kept_until_the_host_changes(tmp_path: Path):
    first = self_signed(tmp_path, "127.0.0.1").certificate.read_bytes()
    assert self_signed(tmp_path, "0.0.0.0").certificate.read_bytes() == first
    other = self_signed(tmp_path, "datapolicy.internal").certificate
    assert other.read_bytes() != first
    names = (
        x509.load_pem_x509_certificate(other.read_bytes())
        .extensions.get_extension_for_class(x509.SubjectAlternativeName)
        .value.get_values_for_type(x509.DNSName)
    )
    assert names == ["localhost", "datapolicy.internal"]
    assert stat.S_IMODE(other.stat().st_mode) == 0o600


def test_a_file_that_is_no_certificate_fails_the_start_naming_it(tmp_path: Path):
    bogus = tmp_path / "chain.pem"
    bogus.write_text("not a certificate\n")
    result = CliRunner().invoke(
        main, ["serve", "--data-dir", str(tmp_path / "data"), "--tls-cert", str(bogus)]
    )
    assert result.exit_code != 0
    assert str(bogus) in result.output
    assert "not a usable TLS certificate" in result.output
    both = CliRunner().invoke(main, ["serve", "--tls-self-signed", "--tls-cert", str(bogus)])
    assert both.exit_code == 2
    assert "--tls-self-signed" in both.output
