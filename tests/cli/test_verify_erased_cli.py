"""`datapolicy verify PACKAGE --erased KEY`, run as a command: a line per key saying what the
erasure's receipt says of it, under the data directory's erasure secret; exit status 0 only if
every key was erased; one-line errors for a package without a receipt, a missing secret and a
key that is not a JSON array of texts."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from click.testing import CliRunner
from commands import datapolicy, one_line_error
from hypothesis import given, settings
from hypothesis import strategies as st
from test_verify_cli import json_values

from datapolicy.auth.keys import erasure_secret
from datapolicy.cli import main
from datapolicy.engine.directory import User
from datapolicy.engine.package import PackageWriter
from engine.test_erasure_receipt import erased, shop

PERSON = {"id": 1000000, "email": "é@x", "born": None, "city": "Zürich", "orders": []}


def erasure_package(root: Path, secret: bytes, *, dry_run: bool) -> Path:
    """An erasure's package of PERSON from a shop with one order of two items, under `secret`
    (a dry run's has no receipt)."""
    root.mkdir(parents=True, exist_ok=True)
    source = shop(root, {**PERSON, "orders": [(1000001, "nöte", ["skü", "sků"])]})
    try:
        erasure = erased(User(str(PERSON["id"])), [source], secret=secret, dry_run=dry_run)
    finally:
        source.close()
    package = root / "op-1.zip"
    package.write_bytes(erasure)
    return package


@pytest.fixture
def receipt(tmp_path: Path) -> tuple[Path, Path]:
    """A complete erasure's package, and the data directory whose secret it was made under."""
    data_dir = tmp_path / "data"
    secret = erasure_secret(data_dir / "erasure-secret.key")
    return erasure_package(tmp_path / "erased", secret, dry_run=False), data_dir


def test_each_key_gets_a_line_and_the_status_says_whether_all_were_erased(
    receipt: tuple[Path, Path],
):
    package, data_dir = receipt
    erased = ['["1000000"]', '["shop", "orders", "1000001"]', '["shop", "items", "1000001", "2"]']
    every = [arg for key in erased for arg in ("--erased", key)]
    result = datapolicy("verify", str(package), "--data-dir", str(data_dir), *every)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        f"{package}: OK",
        '["1000000"]: erased (userIdHash)',
        '["shop", "orders", "1000001"]: erased (shop/orders)',
        '["shop", "items", "1000001", "2"]: erased (shop/items)',
    ]
    others = ["--erased", '["shop", "orders", "7"]', "--erased", '["shop", "invoices", "1"]']
    result = datapolicy("verify", str(package), "--data-dir", str(data_dir), *others)
    assert result.returncode == 1
    assert result.stdout.splitlines()[1:] == [
        '["shop", "orders", "7"]: notListed (shop/orders)',
        '["shop", "invoices", "1"]: retained (shop/invoices: kept 10 years: tax law)',
    ]


def test_without_the_secret_or_a_receipt_or_a_key_the_error_is_one_line(
    receipt: tuple[Path, Path], tmp_path: Path
):
    package, data_dir = receipt
    key = ("--erased", '["1000000"]')
    elsewhere = datapolicy("verify", str(package), "--data-dir", str(tmp_path / "other"), *key)
    assert "there is no erasure hash secret here" in one_line_error(elsewhere)
    assert not (tmp_path / "other" / "erasure-secret.key").exists()  # none made
    bad = datapolicy("verify", str(package), "--erased", '{"a": 1}')
    assert bad.returncode == 2
    assert "a key is a JSON array of texts" in bad.stderr
    numbers = datapolicy("verify", str(package), "--erased", '["shop", "orders", 1000001]')
    assert numbers.returncode == 2
    dry_run = erasure_package(tmp_path / "dry-run", b"a test secret of enough bytes", dry_run=True)
    no_receipt = datapolicy("verify", str(dry_run), "--data-dir", str(data_dir), *key)
    assert "holds no receipt.json" in one_line_error(no_receipt)


def _json(value: object) -> bytes:
    """JSON as the standard library writes it (integers of any size included)."""
    return json.dumps(value).encode()


receipt_fields = st.fixed_dictionaries(
    {},
    optional={
        "operationId": json_values,
        "userIdHash": json_values,
        "tables": st.lists(
            st.dictionaries(
                st.sampled_from(["source", "table", "rule", "reason", "keys", "keysSha256"]),
                json_values | st.just("shop") | st.just("orders") | st.just("retain"),
            ),
            max_size=3,
        )
        | json_values,
        "fileSources": json_values,
    },
)
hostile_receipts = (
    st.binary(max_size=40)
    | json_values.map(_json)
    | receipt_fields.map(_json)
    | st.builds(
        lambda reason: _json(
            {"tables": [{"source": "shop", "table": "orders", "rule": "retain", "reason": reason}]}
        ),
        st.text(),
    )
)


@settings(max_examples=150, deadline=None)
@given(receipt=hostile_receipts)
def test_a_hostile_receipt_gets_an_answer_per_key_or_one_error_never_a_traceback(receipt: bytes):
    """Any receipt.json in a package that verifies: the command exits 0 or 1, with a line per
    key (escaped: the receipt's words cannot add a line or drive the terminal) or one error."""
    stream = io.BytesIO()
    writer = PackageWriter(stream, {"operationId": "op", "user": {"idHash": "h"}})
    writer.add_document("receipt.json", receipt)
    writer.close()
    with tempfile.TemporaryDirectory() as directory:
        package = Path(directory) / "receipt.zip"
        package.write_bytes(stream.getvalue())
        data_dir = Path(directory) / "data"
        erasure_secret(data_dir / "erasure-secret.key")
        keys = ['["shop", "orders", "1"]', '["uploads", "a.txt"]', '["someone"]']
        arguments = [str(package), "--data-dir", str(data_dir)]
        arguments += [arg for key in keys for arg in ("--erased", key)]
        result = CliRunner().invoke(main, ["verify", *arguments])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    assert result.exit_code in (0, 1), result.output
    lines = result.stdout.splitlines()
    assert lines[0].endswith(": OK")
    if len(lines) > 1:
        assert len(lines) == 1 + len(keys), lines
        assert not any("\x1b" in line for line in lines)
    else:
        assert len(result.stderr.strip().splitlines()) == 1, result.stderr


# Review findings, kept as regression cases.


def test_a_key_with_a_lone_surrogate_gets_a_line_not_a_traceback(receipt: tuple[Path, Path]):
    package, data_dir = receipt
    result = datapolicy(
        "verify", str(package), "--data-dir", str(data_dir), "--erased", '["\\ud800"]'
    )
    assert result.returncode == 1, result.stderr
    assert result.stdout.splitlines()[1] == '["\\ud800"]: notListed (userIdHash)'


def test_a_receipt_of_millions_of_tiny_values_is_refused_before_it_is_decoded(tmp_path: Path):
    """64 MiB of `{},` (a ZIP under a megabyte) would take gigabytes decoded: under a 1 GiB
    address-space limit, a one-line refusal, not a MemoryError or a crash."""
    stream = io.BytesIO()
    writer = PackageWriter(stream, {"operationId": "op", "user": {"idHash": "h"}})
    writer.add_document("receipt.json", b'{"tables":[' + b"{}," * ((64 << 20) // 3) + b"{}]}")
    writer.close()
    package = tmp_path / "receipt.zip"
    package.write_bytes(stream.getvalue())
    assert package.stat().st_size < 1 << 20
    data_dir = tmp_path / "data"
    erasure_secret(data_dir / "erasure-secret.key")
    limited = (
        "import resource, sys; resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30)); "
        "from datapolicy.cli import main; sys.argv = ['datapolicy'] + sys.argv[1:]; main()"
    )
    result = subprocess.run(
        [
            *(sys.executable, "-c", limited, "verify", str(package)),
            *("--data-dir", str(data_dir), "--erased", '["shop", "orders", "1"]'),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert "holds far more values than a receipt's hashes would" in one_line_error(result)


def test_another_secret_is_an_error_not_not_listed(receipt: tuple[Path, Path], tmp_path: Path):
    """Under another data directory's secret every key would be `notListed`, the person's own
    id included: the receipt's `secretCheck` makes that an error naming the secret's file."""
    package, _ = receipt
    other = tmp_path / "other-data"
    erasure_secret(other / "erasure-secret.key")
    result = datapolicy("verify", str(package), "--data-dir", str(other), "--erased", '["1000000"]')
    assert "notListed" not in result.stdout
    assert "was not made under the erasure secret" in one_line_error(result)
