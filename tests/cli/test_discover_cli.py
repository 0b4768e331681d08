"""`datapolicy discover` as an operator runs it, on tests/discovery/shop.sql, and `config check`
on the file it writes: gaps as warnings, failures with --strict."""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest
from commands import against, datapolicy, json_output

from conftest import start_service, store_args
from databases import SQLITE, run_script, scratch_database

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
        assert {f["result"] for f in findings} <= {"ok", "gap"}
        gaps = {f["name"] for f in findings if f["result"] == "gap"}
        assert gaps >= NOT_ADAS
        strict = datapolicy(*check, *store_args(data), "--strict")
        assert strict.returncode == 1, strict.stdout + strict.stderr

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
