"""`datapolicy discover` as an operator runs it, on tests/discovery/shop.sql, and `config check`
on the file it writes: gaps as warnings, failures with --strict."""

from __future__ import annotations

import zipfile
from pathlib import Path
from urllib.parse import unquote

import pytest
from commands import against, datapolicy, json_output

from conftest import start_service, store_args
from databases import POSTGRESQL, SQLITE, run_script, scratch_database

pytestmark = pytest.mark.operation_store  # starts services on the test store

SHOP = Path(__file__).parent.parent / "discovery" / "shop.sql"
NOT_ADAS = {"staff", "stores", "newsletter_signups", "audit_entries"}  # personal, not reached
SAMPLED_VALUES = ("ada@example.com", "DE89370400440532013000", "secret-token-of-ada", "Lovelace")


def test_the_command_writes_what_config_check_accepts(tmp_path: Path) -> None:
    """`datapolicy discover URL --output FILE` explains its choice and the gaps on stderr and
    writes a file `config check` accepts; the gaps are `gap` rows there, a failure only with
    --strict, and gone once listed in ignore_tables. No sampled value is printed or written."""
    with scratch_database(SQLITE, tmp_path) as url:
        run_script(url, SHOP)
        output = tmp_path / "datapolicy.toml"
        result = datapolicy("discover", url, "--output", str(output))
        assert result.returncode == 0, result.stderr
        assert "person table: customers (chosen;" in result.stderr
        assert "gap: staff: email" in result.stderr
        written = output.read_text()
        assert output.stat().st_mode & 0o077 == 0
        for value in SAMPLED_VALUES:
            assert value not in written + result.stderr + result.stdout
        assert datapolicy("discover", url, "--output", str(output)).returncode != 0  # no clobber

        data = tmp_path / "data"
        check = ("config", "check", "--config", str(output), "--data-dir", str(data))
        findings = json_output(datapolicy(*check, *store_args(data), "--json"))
        assert {f["result"] for f in findings} <= {"ok", "gap", "skipped"}  # [report] unset
        gaps = {f["name"] for f in findings if f["result"] == "gap"}
        assert gaps >= NOT_ADAS
        strict = datapolicy(*check, *store_args(data), "--strict")
        assert strict.returncode == 1, strict.stdout + strict.stderr
        closing = strict.stderr.strip().splitlines()[-1]
        assert closing.startswith(f"config check: exit 1: {len(gaps)} coverage gap(s), failures")

        ignored = ", ".join(f'"{table}"' for table in sorted(gaps))
        output.write_text(written.replace("ignore_tables = []", f"ignore_tables = [{ignored}]"))
        strict = datapolicy(*check, *store_args(data), "--strict")
        assert strict.returncode == 0, strict.stdout + strict.stderr


def test_a_person_table_that_cannot_be_one_is_refused(tmp_path: Path) -> None:
    """--person-table naming a table with a composite key (or none at all) is an error that
    says why, not a configuration."""
    with scratch_database(SQLITE, tmp_path) as url:
        run_script(url, SHOP)
        composite = datapolicy("discover", url, "--person-table", "order_items")
        missing = datapolicy("discover", url, "--person-table", "nobody")
    assert composite.returncode != 0
    assert "one-column primary key" in composite.stderr
    assert "there is no table 'nobody'" in missing.stderr
    assert not composite.stdout
    assert not missing.stdout


def test_a_missing_sqlite_file_is_said_and_not_created(tmp_path: Path) -> None:
    """A mistyped SQLite path is named as missing; SQLite would have made an empty database
    there and discover then blamed the primary keys. An existing file stays as it was."""
    typo = tmp_path / "typo.db"
    result = datapolicy("discover", f"sqlite:///{typo}")
    assert result.returncode == 1
    assert f"no SQLite database at {typo}: the file does not exist" in result.stderr
    assert "primary key" not in result.stderr
    assert not typo.exists()
    assert not result.stdout

    with scratch_database(SQLITE, tmp_path) as url:
        run_script(url, SHOP)
        shop = Path(url.removeprefix("sqlite:///"))
        before = shop.read_bytes()
        assert datapolicy("discover", url).returncode == 0
        assert shop.read_bytes() == before


def test_a_database_without_tables_says_so(tmp_path: Path) -> None:
    """An empty SQLite file and an empty PostgreSQL schema: 'no tables found in' it, naming
    it, rather than the primary-key message meant for tables that cannot be a person's."""
    empty = tmp_path / "empty.db"
    empty.touch()  # an empty file is an empty SQLite database
    result = datapolicy("discover", f"sqlite:///{empty}")
    assert result.returncode == 1
    assert f"no tables found in the SQLite database {empty}" in result.stderr
    with scratch_database(POSTGRESQL, tmp_path) as url:
        result = datapolicy("discover", url)
        schema = unquote(url).rsplit("search_path=", 1)[1]
    assert result.returncode == 1
    assert f"no tables found in schema '{schema}' of database" in result.stderr, result.stderr
    assert "primary key" not in result.stderr


@pytest.mark.e2e  # a `serve` process, a worker or another program on its port
def test_serve_runs_the_written_file_as_it_is(tmp_path: Path) -> None:
    """The file discover writes, unedited, is a service's configuration: Ada's export completes
    with a record file per configured path (24), and her password hash is not in it."""
    with scratch_database(SQLITE, tmp_path) as url:
        run_script(url, SHOP)
        output = tmp_path / "datapolicy.toml"
        assert datapolicy("discover", url, "--output", str(output)).returncode == 0
        service = start_service(tmp_path / "data", "--config", str(output))
        try:
            exports = service.data_dir / "exports"
            result = datapolicy("export", "1", "--to", str(exports), "--wait", *against(service))
        finally:
            service.stop()
    assert result.returncode == 0, result.stderr
    (package,) = exports.glob("*.zip")
    with zipfile.ZipFile(package) as archive:
        records = [n for n in archive.namelist() if n.startswith("records/")]
        customers = archive.read(next(n for n in records if n.endswith("/customers.jsonl")))
    assert len(records) == 24
    assert b"ada@example.com" in customers
    assert b"password_hash" not in customers
