"""The log (logs.py): JSON lines from a real `datapolicy serve` whose stderr is a file, each line
naming the request, operation and user it concerns, and holding no token, signature or query."""

from __future__ import annotations

import io
import logging
import time
from collections.abc import Iterator
from typing import Any

import orjson
import pytest

from conftest import Service, start_service, wait_for
from datapolicy import logs
from datapolicy.config import LoggingConfig

pytestmark = pytest.mark.operation_store  # starts services on the test store

SAS_SIGNATURE = "c2VjcmV0LXNpZ25hdHVyZQ"
PERSONAL = "ada.lovelace@example.com"


@pytest.fixture(scope="module")
def logged_service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    """A service with export threads, no sources (an export is a small empty package) and the
    access log on."""
    root = tmp_path_factory.mktemp("logs")
    config = root / "datapolicy.toml"
    config.write_text("[logging]\naccess_log = true\n")
    running = start_service(root / "data", "--config", str(config))
    yield running
    running.stop()


def log_lines(service: Service) -> list[dict[str, Any]]:
    return [orjson.loads(line) for line in service.log.read_text().splitlines() if line]


@pytest.mark.e2e  # a `serve` process, a worker or another program on its port
def test_json_lines_name_the_request_the_operation_the_caller_and_the_subject(
    logged_service: Service, user_id: str
):
    """Not on a terminal, every line is a JSON object. Queuing an export logs a line with the
    request's id (the response's request-id), the new operation's id and the `caller` (the
    token's subject); the export thread's lines name the operation and its `subject` (the person
    exported), never as the caller; the access log's line names the request and the caller, and
    has method, path, status and duration as fields of their own."""
    with logged_service.client() as http:
        response = http.post("/dataPolicyOperations", json={"userId": user_id})
        assert response.status_code == 201, response.text
        request_id = response.headers["request-id"]
        operation_id = response.json()["id"]

        def complete() -> bool:
            operation = http.get(f"/dataPolicyOperations/{operation_id}").json()
            return operation["status"] == "complete"

        wait_for("the export", complete, 30, logged_service.log.read_text)
    lines = wait_for(
        "the export's log line",
        lambda: [
            line for line in log_lines(logged_service) if line.get("operation_id") == operation_id
        ],
        10,
        logged_service.log.read_text,
    )

    queued = next(line for line in lines if line["message"] == "export queued")
    assert queued["request_id"] == request_id
    assert queued["caller"] == "tests"  # conftest's token subject
    assert queued["level"] == "INFO"
    assert queued["logger"] == "datapolicy.engine.service"
    assert queued["time"].endswith("+00:00")
    exported = next(line for line in lines if line["message"] == f"export {operation_id} complete")
    assert exported["subject"] == user_id  # the person whose data was exported
    assert "request_id" not in exported  # an export thread serves no request
    assert "caller" not in exported
    assert "user_id" not in exported
    access = [
        line
        for line in log_lines(logged_service)
        if line["logger"] == "datapolicy.access" and line.get("request_id") == request_id
    ]
    assert access, "no access log line for the request"
    line = access[0]
    assert line["message"].startswith("POST /v1.0/dataPolicyOperations 201 ")  # for people
    assert (line["method"], line["path"], line["status"]) == (
        "POST",
        "/v1.0/dataPolicyOperations",
        201,
    )
    assert isinstance(line["duration_ms"], float)
    assert line["message"].endswith(f" {line['duration_ms']:.2f}ms")
    assert line["caller"] == "tests"


@pytest.mark.e2e  # a `serve` process, a worker or another program on its port
def test_no_token_signature_or_query_reaches_the_log(logged_service: Service):
    """Requests carrying a bearer token, a SAS URL with its signature and personal data in
    $filter leave none of them in the log: the access log writes the path alone, and nothing
    else writes what a request carried."""
    with logged_service.client() as http:
        sas = f"https://account.blob.core.windows.net/exports?sv=2024-11-04&sig={SAS_SIGNATURE}"
        refused = http.post(
            "/dataPolicyOperations", json={"userId": "someone", "storageLocation": sas}
        )
        assert refused.status_code == 400
        listed = http.get("/dataPolicyOperations", params={"$filter": f"userId eq '{PERSONAL}'"})
        assert listed.status_code == 200
        request_id = listed.headers["request-id"]
        token = logged_service.token
    wait_for(
        "the list's access log line",
        lambda: request_id in logged_service.log.read_text(),
        10,
        logged_service.log.read_text,
    )
    text = logged_service.log.read_text()
    for secret in (token, token.split(".")[2], SAS_SIGNATURE, PERSONAL, "$filter"):
        assert secret not in text


def test_text_on_a_terminal_json_elsewhere_and_the_environment_decides_first(
    monkeypatch: pytest.MonkeyPatch,
):
    """`auto` follows the stream (a terminal reads text, a pipe or file JSON);
    DATAPOLICY_LOG_FORMAT overrides the configuration; a text line ends with the ids in
    brackets."""

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    auto = LoggingConfig()
    assert logs.wants_json(auto, io.StringIO())
    assert not logs.wants_json(auto, Terminal())
    monkeypatch.setenv(logs.FORMAT_ENV, "json")
    assert logs.wants_json(LoggingConfig(format="text"), Terminal())
    monkeypatch.setenv(logs.FORMAT_ENV, "text")
    assert not logs.wants_json(auto, io.StringIO())

    record = logging.LogRecord("datapolicy.x", logging.INFO, __file__, 1, "hello %s", ("a",), None)
    with logs.operation_context("op-1", "user-1"):
        logs.ContextFilter().filter(record)
    line = logs.TextFormatter().format(record)
    assert line.endswith("INFO datapolicy.x hello a [operation_id=op-1 subject=user-1]")
    assert time.strftime("%Y") in line
