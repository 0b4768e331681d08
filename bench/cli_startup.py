"""CLI start-up: the CPU time of `datapolicy --help` and of a client command, against
`python -c pass` measured in the same run (cli/__init__.py loads each command when it runs).

`python bench/cli_startup.py` runs each command `--runs` (10) times in a fresh interpreter,
interleaved, and prints the median CPU time (user + system, of the child: on a shared machine
the CPU time is the one to compare, and the ratio to the baseline the figure to keep) and the
median minus the baseline, which must stay under `TARGET_S` (0.3 s, issue 19) for both:

- `datapolicy --help`, which imports every command module to show its one-line help;
- every command's and subcommand's `--help` (`audit list --help` reads the audit actions: it
  loaded SQLAlchemy and Alembic through the store package, 0.9 s, until store/__init__.py
  loaded its names lazily); `--top-level-only` leaves them out;
- `datapolicy ops list --url http://127.0.0.1:9/v1.0 --token t`: a client command up to its
  first request (the discard port refuses it; the command exits 1, as measured);
- `datapolicy ops list --config FILE --token t`: the same, with the URL read from a
  configuration file's [server] (pydantic's models are loaded then).

It exits 1 if a figure misses the target, so it can be run after a change to the CLI.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
from pathlib import Path

import click

from datapolicy.cli import main as datapolicy_main

TARGET_S = 0.3
CLOSED_URL = "http://127.0.0.1:9/v1.0"  # the discard port: nothing listens


def cpu_seconds(argv: list[str]) -> float:
    """The CPU time (user + system) a child process running `argv` used, its output dropped."""
    before = os.times()
    pid = os.fork()
    if pid == 0:  # the child: output to /dev/null, then the command
        null = os.open(os.devnull, os.O_WRONLY)
        os.dup2(null, 1)
        os.dup2(null, 2)
        os.execv(argv[0], argv)
    os.waitpid(pid, 0)
    after = os.times()
    return (after.children_user - before.children_user) + (
        after.children_system - before.children_system
    )


def every_command(command: click.Command, path: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    """The path of each subcommand under `command`, groups' subcommands after their group."""
    paths: list[tuple[str, ...]] = []
    if isinstance(command, click.Group):
        context = click.Context(command)
        for name in command.list_commands(context):
            sub = command.get_command(context, name)
            if sub is not None:
                paths += [(*path, name), *every_command(sub, (*path, name))]
    return paths


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument(
        "--top-level-only", action="store_true", help="not each subcommand's --help"
    )
    arguments = parser.parse_args()
    runs = arguments.runs
    python = sys.executable
    with tempfile.TemporaryDirectory() as scratch:
        config = Path(scratch) / "datapolicy.toml"
        config.write_text('[server]\nhost = "127.0.0.1"\nport = 9\n')
        cli = [python, "-m", "datapolicy"]
        commands = {
            "python -c pass": [python, "-c", "pass"],
            "datapolicy --help": [*cli, "--help"],
            "ops list --url": [*cli, "ops", "list", "--url", CLOSED_URL, "--token", "t"],
            "ops list --config": [*cli, "ops", "list", "--config", str(config), "--token", "t"],
        }
        if not arguments.top_level_only:
            for path in every_command(datapolicy_main):
                commands[" ".join(path) + " --help"] = [*cli, *path, "--help"]
        samples: dict[str, list[float]] = {name: [] for name in commands}
        for _ in range(runs):
            for name, argv in commands.items():
                samples[name].append(cpu_seconds(argv))
    baseline = statistics.median(samples["python -c pass"])
    missed = False
    print(f"{'command':<36} {'CPU median':>11} {'- baseline':>11} {'ratio':>7}")
    for name, times in samples.items():
        median = statistics.median(times)
        startup = median - baseline
        print(f"{name:<36} {median:>10.3f}s {startup:>10.3f}s {median / baseline:>6.1f}x")
        if name != "python -c pass" and startup >= TARGET_S:
            missed = True
    if missed:
        print(f"a command's start-up is over the {TARGET_S} s target", file=sys.stderr)
    return 1 if missed else 0


if __name__ == "__main__":
    raise SystemExit(main())
