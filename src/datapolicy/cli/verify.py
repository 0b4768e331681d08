"""`datapolicy verify`: check a package against its manifest."""

from __future__ import annotations

from pathlib import Path

import click


@click.command()
@click.argument("package", type=click.Path(exists=True, dir_okay=False, path_type=Path))
def verify(package: Path) -> None:
    """Check an export package against its manifest (sizes, SHA-256 checksums, record counts)
    and that it is safe to extract: no escaping, absolute, duplicate or link entries. Each
    problem is one line on stderr, and the exit status 1.

    \b
    Example:
      datapolicy verify datapolicy-data/exports/0aeb517a-0cf7-4ba0-80b9-65a0a9a74c66.zip
    """
    from datapolicy.engine.verify import verify_package

    problems = verify_package(package)
    for problem in problems:
        click.echo(f"{package}: {problem}", err=True)
    if problems:
        raise SystemExit(1)
    click.echo(f"{package}: OK")
