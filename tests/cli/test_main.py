"""The `datapolicy` entry point (cli/__init__.py): every command is listed, and each is loaded
only when needed, so that `--help` and the client commands start without SQLAlchemy, pydantic's
configuration models, httpx or rich (bench/cli_startup.py measures the time)."""

from __future__ import annotations

import subprocess
import sys

import click
import pytest
from click.testing import CliRunner
from commands import datapolicy

from datapolicy.cli import COMMANDS, main

HEAVY = (
    "sqlalchemy",
    "alembic",
    "pydantic",
    "datapolicy.config",
    "datapolicy.store.database",
    "datapolicy.store.audit.log",
    "httpx",
    "rich",
)


def test_help_lists_every_command_and_each_loads_under_its_name():
    """`datapolicy --help` names each command of the table, in its order, and each entry loads
    a click command of that name (a wrong `module:attribute` fails here, not at a user's)."""
    listed = CliRunner().invoke(main, ["--help"])
    assert listed.exit_code == 0, listed.output
    lines = listed.output.split("Commands:")[1].strip().splitlines()
    assert [line.split()[0] for line in lines] == list(COMMANDS)
    context = click.Context(main)
    for name in COMMANDS:
        command = main.get_command(context, name)
        assert command is not None
        assert command.name == name
    assert main.get_command(context, "nonsense") is None


def _imported_after(code: str) -> list[str]:
    """The HEAVY modules imported in a fresh interpreter after running `code`."""
    probe = f"import sys\n{code}\nprint(sorted(m for m in {HEAVY!r} if m in sys.modules))"
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    return eval(result.stdout.strip().splitlines()[-1])  # a list of names: printed just above


def _every_command(command: click.Command, path: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    """The path of `command` and of every command under it (groups' subcommands, in order)."""
    paths = [path]
    if isinstance(command, click.Group):
        context = click.Context(command)
        for name in command.list_commands(context):
            sub = command.get_command(context, name)
            assert sub is not None, name
            paths += _every_command(sub, (*path, name))
    return paths


EVERY_COMMAND = _every_command(main)


def test_the_walk_reaches_the_subcommands():
    """The parametrisation below covers groups' subcommands, not only the top level."""
    assert ("audit", "list") in EVERY_COMMAND
    assert ("scenarios", "show") in EVERY_COMMAND
    assert len(EVERY_COMMAND) > len(COMMANDS) + 10


@pytest.mark.parametrize("path", EVERY_COMMAND, ids=lambda path: " ".join(path) or "datapolicy")
def test_help_imports_nothing_heavy(path: tuple[str, ...]):
    """Importing the entry point and showing any command's help loads none of the heavy
    libraries (`audit list --help` reads the audit actions from store/audit/records.py: it
    loaded SQLAlchemy and Alembic through the store package's __init__, 0.9 s of CPU)."""
    args = [*path, "--help"]
    code = (
        f"from datapolicy.cli import main\ntry:\n    main({args!r})\nexcept SystemExit:\n    pass"
    )
    assert _imported_after(code) == []


def test_a_client_command_loads_neither_sqlalchemy_nor_the_configuration():
    """`ops list` with --url and --token reaches for the network with httpx (which imports
    rich) and nothing heavier (the port is closed: it fails after connecting was tried)."""
    code = (
        "from datapolicy.cli import main\ntry:\n"
        "    main(['ops', 'list', '--url', 'http://127.0.0.1:9/v1.0', '--token', 't'])\n"
        "except SystemExit:\n    pass"
    )
    assert _imported_after(code) == ["httpx", "rich"]


def test_help_of_the_real_command_lists_every_command():
    """The installed entry point, in its own process, as an operator runs it."""
    result = datapolicy("--help")
    assert result.returncode == 0, result.stderr
    for name in COMMANDS:
        assert f"\n  {name} " in result.stdout
