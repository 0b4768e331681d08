"""No secret reaches a log, an error body or an operation's error: not a SAS signature, not S3
credentials, not a presigned URL's signature, not a bearer token (docs/security.md, "Secrets in
logs and messages"). Exports and requests are made to fail against real Azurite and SeaweedFS
servers, through real processes (their whole output is searched) and in-process with every
library's DEBUG logging on."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

import boto3
import pytest
from botocore.config import Config as BotoConfig

from azurite import Azurite
from conftest import Service, start_service, start_worker, stop_process, wait_for
from datapolicy import redact
from datapolicy.config import (
    AzureStorageConfig,
    S3PresignedStorageConfig,
    S3StorageConfig,
    StorageConfig,
)
from datapolicy.engine.targets import StorageError, StorageLocationError, Target, resolve_target
from packages import package_bytes
from s3server import ADMIN, REGION, SeaweedS3

pytestmark = pytest.mark.operation_store  # starts services on the test store

WRONG_SECRET = "wrong-secret-0123456789-must-never-be-shown"
SIGNER_SECRET = "signer-secret-9876543210-must-never-be-shown"


@pytest.fixture(scope="module")
def azurite(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Azurite]:
    running = Azurite(tmp_path_factory.mktemp("azurite") / "data").start()
    yield running
    running.stop()


def presign(s3: SeaweedS3, bucket: str, key: str, secret: str = SIGNER_SECRET) -> str:
    """A SigV4 presigned PUT URL signed with a secret the server does not know."""
    client = boto3.client(
        "s3",
        endpoint_url=s3.endpoint,
        region_name=REGION,
        aws_access_key_id=ADMIN[0],
        aws_secret_access_key=secret,
        config=BotoConfig(signature_version="s3v4", s3={"addressing_style": "path"}),
    )
    return client.generate_presigned_url(
        "put_object", Params={"Bucket": bucket, "Key": key}, ExpiresIn=3600
    )


def secrets_of(*urls: str) -> set[str]:
    """Every credential value a URL's query carries, as sent and decoded."""
    found = set()
    for url in urls:
        for name, value in parse_qsl(urlsplit(url).query):
            if name.lower() in ("sig", "x-amz-signature", "x-amz-credential") and len(value) > 8:
                found |= {value, unquote(value)}
            if name.lower() == "x-amz-credential":  # its access key id, before the first '/'
                found.add(unquote(value).split("/")[0])
    return found


def leaks(text: str, secrets: set[str]) -> list[str]:
    return sorted(secret for secret in secrets if secret in text)


def test_redact_removes_every_kind_of_secret():
    text = (
        "PUT http://127.0.0.1:1/b/k?X-Amz-Signature=S1GNATURE1&X-Amz-Credential=AKIDX%2F2026 "
        "Authorization: AWS4-HMAC-SHA256 Credential=AKIDY/2026/us-east-1/s3/aws4_request, "
        "SignedHeaders=host, Signature=S2GNATURE2; sig=S3GNATURE3&se=2026 "
        "postgresql://app:PASSW0RD@db/prod Bearer eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJ4In0.S4G "
        "token=T0KEN5"
    )
    cleaned = redact.redact(text)
    for secret in ("S1GNATURE1", "AKIDX", "AKIDY", "S2GNATURE2", "S3GNATURE3", "PASSW0RD"):
        assert secret not in cleaned
    assert "eyJ" not in cleaned
    assert "T0KEN5" not in cleaned
    assert "http://127.0.0.1:1/b/k" in cleaned
    assert "postgresql://app:" in cleaned
    already_hidden = "postgresql://app:***@db/prod"  # SQLAlchemy's own mask stays readable
    assert redact.redact(already_hidden) == already_hidden


def check_and_prepare(target: Target) -> None:
    """What a start does at request time (for Azure, check() makes no request when the SAS
    carries its permissions; prepare() writes RequestInfo.json)."""
    target.check()
    target.prepare()


def test_failing_targets_log_no_secret_even_at_debug(caplog, azurite, s3, tmp_path):
    """Azure, S3 and presigned targets refused by real servers, with azure-core, botocore and
    urllib3 logging every request at DEBUG: neither the errors nor any log line carries the
    SAS signature, the S3 secret or access key, or the presigned signature."""
    redact.install()
    caplog.set_level(logging.DEBUG)
    bucket = s3.new_bucket()
    sas = azurite.container_sas_url("no-such-container", "cw")
    presigned = presign(s3, bucket, "exports/a.zip")
    storage = StorageConfig(
        azure=AzureStorageConfig(allowed_hosts=(azurite.host,)),
        s3=(
            S3StorageConfig(
                name="seaweed",
                endpoint_url=s3.endpoint,
                access_key_id="AKIDWRONGKEY000001",
                secret_access_key=WRONG_SECRET,
                buckets=(bucket,),
            ),
        ),
        s3_presigned=S3PresignedStorageConfig(
            allowed_hosts=(urlsplit(s3.endpoint).netloc,), spool_dir=tmp_path / "spool"
        ),
    )
    messages = []
    for location in (sas, f"s3://{bucket}/exports"):
        with pytest.raises(StorageLocationError) as refused:
            check_and_prepare(resolve_target(location, storage))
        messages.append(refused.value.message)
    target = resolve_target(presigned, storage)
    target.check()  # no request: a presigned URL cannot be probed
    upload = target.begin("op")
    data, manifest = package_bytes(b"personal data")
    upload.stream.write(data)
    with pytest.raises(StorageError) as failed:
        upload.finish(manifest)
    messages.append(str(failed.value))
    assert "403" in messages[-1]
    secrets = secrets_of(sas, presigned) | {WRONG_SECRET, "AKIDWRONGKEY000001", SIGNER_SECRET}
    assert leaks("\n".join(messages), secrets) == []
    assert caplog.records, "DEBUG logging produced nothing to search"
    for record in caplog.records:
        assert leaks(caplog.handler.format(record), secrets) == [], record.name


def _write_config(path: Path, azurite: Azurite, s3: SeaweedS3, bucket: str) -> Path:
    path.write_text(
        "[engine]\nmax_attempts = 1\npoll_seconds = 0.2\n"
        f'[storage.azure]\nallowed_hosts = ["{azurite.host}"]\n'
        f'[storage.s3_presigned]\nallowed_hosts = ["{urlsplit(s3.endpoint).netloc}"]\n'
        "[[storage.s3]]\n"
        f'name = "seaweed"\nendpoint_url = "{s3.endpoint}"\n'
        f'access_key_id = "{ADMIN[0]}"\nsecret_access_key = "{WRONG_SECRET}"\n'
        f'buckets = ["{bucket}"]\n'
    )
    return path


@pytest.mark.e2e  # a `serve` process, a worker or another program on its port
def test_a_service_and_its_worker_never_print_a_secret(azurite, s3, tmp_path):
    """Through `datapolicy serve` and `datapolicy worker`: a SAS refused at request time, a
    container that disappears before the worker writes, an S3 entry with a wrong secret, a
    presigned URL the storage refuses, and requests with forged bearer tokens. Every error body,
    every operation's error and the processes' whole output are free of secrets. (An operation's
    storageLocation is the caller's own URL, echoed to callers allowed to read it, as Graph
    does: not a log or an error message.)"""
    bucket = s3.new_bucket()
    config = _write_config(tmp_path / "datapolicy.toml", azurite, s3, bucket)
    service: Service = start_service(tmp_path / "data", "--workers", "0", "--config", str(config))
    worker = None
    try:
        container = azurite.new_container()
        good_sas = azurite.container_sas_url(container.container_name, "cw")
        missing_sas = azurite.container_sas_url("no-such-container", "cw")
        presigned = presign(s3, bucket, "exports/p.zip")
        token = service.token
        forged = token[:-8] + ("A" * 8 if not token.endswith("A" * 8) else "B" * 8)
        bodies: list[str] = []
        with service.client() as client:
            for location in (missing_sas, f"s3://{bucket}/x"):
                response = client.post(
                    "/users/alice/exportPersonalData", json={"storageLocation": location}
                )
                assert response.status_code == 400, response.text
                bodies.append(response.text)
            started = []
            for location in (good_sas, presigned):
                response = client.post(
                    "/dataPolicyOperations", json={"userId": "alice", "storageLocation": location}
                )
                assert response.status_code == 201, response.text
                started.append(response.json()["id"])
            container.delete_container()  # gone before the worker writes
            for header in (f"Bearer {forged}", f"Bearer {token}x", f"Basic {token}"):
                response = client.get("/dataPolicyOperations", headers={"Authorization": header})
                assert response.status_code == 401
                bodies.append(response.text + str(response.headers))

            worker = start_worker(tmp_path, service.data_dir, config)

            def failed() -> list[dict[str, Any]] | None:
                found = [client.get(f"/dataPolicyOperations/{i}").json() for i in started]
                return found if all(f["status"] == "failed" for f in found) else None

            operations = wait_for(
                "both exports to fail", failed, 90, lambda: _logs(tmp_path, service)
            )
            # storageLocation is the caller's own, echoed as Graph does; the error is ours
            bodies += [str(operation["error"]) for operation in operations]
        time.sleep(0.5)  # the worker's last log lines
    finally:
        if worker is not None:
            stop_process(worker)
        service.stop()
    secrets = secrets_of(good_sas, missing_sas, presigned) | {
        WRONG_SECRET,
        SIGNER_SECRET,
        token,
        forged,
        token.split(".")[2],
    }
    assert leaks("\n".join(bodies), secrets) == []
    logs = _logs(tmp_path, service)
    assert "failed" in logs  # the failures were logged, without their secrets
    assert leaks(logs, secrets) == []


def _logs(tmp_path: Path, service: Service) -> str:
    worker_log = tmp_path / "worker.log"
    return service.log.read_text() + (worker_log.read_text() if worker_log.exists() else "")
