"""`datapolicy discover URL`: the configuration for a database, found from its schema.

What it found and why goes to stderr (the person table and the candidates it saw, the tables
it configured, the links it did not follow, the gaps); the configuration to `--output` or
stdout. Sampled values stay in the process (discovery/schema.py)."""

from __future__ import annotations

from pathlib import Path

import click

from datapolicy.discovery import DEFAULT_SAMPLE_ROWS


@click.command()
@click.argument("url")
@click.option(
    "--person-table",
    metavar="TABLE",
    help="The table whose rows are the people (its primary key is the person's id).  "
    "[default: guessed, and the guess explained]",
)
@click.option(
    "--output",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Write the configuration to this file (refused if it exists).  [default: stdout]",
)
@click.option(
    "--sample-rows",
    type=click.IntRange(0, 100_000),
    default=DEFAULT_SAMPLE_ROWS,
    show_default=True,
    help="Rows read per table to classify its columns (0: by names and types only).",
)
def discover(url: str, person_table: str | None, output: Path | None, sample_rows: int) -> None:
    """Map where a person's data lives in the database at URL and write the configuration.

    URL is any SQLAlchemy URL, as in [[sources.sql]]: sqlite:///shop.db,
    postgresql+psycopg://user@host/db, mysql+pymysql://user@host/db.

    \b
    Examples:
      datapolicy discover sqlite:///shop.db --output datapolicy.toml
      datapolicy discover postgresql+psycopg://app@db/shop --person-table customers
    """
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError, SQLAlchemyError

    from datapolicy.discovery.discover import discover as run
    from datapolicy.discovery.person import PersonTableError
    from datapolicy.discovery.schema import DatabaseNotFound

    try:
        shown = make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        raise click.BadParameter("not a database URL", param_hint="URL") from None
    if output is not None and output.exists():
        raise click.ClickException(f"{output} exists: choose another file, or remove it first")
    command = "datapolicy discover " + shown
    if person_table:
        command += f" --person-table {person_table}"
    try:
        found = run(url, person_table, sample_rows=sample_rows, output=output, written_by=command)
    except (PersonTableError, DatabaseNotFound) as exc:
        raise click.ClickException(str(exc)) from None
    except SQLAlchemyError as exc:
        cause = str(getattr(exc, "orig", None) or exc).strip().splitlines()
        raise click.ClickException(f"{shown}: {cause[0] if cause else exc}") from None
    report = [*found.data.person.explain()]
    report.append(
        f"configured {len(found.data.entries)} path(s) to {len(found.data.tables)} table(s) "
        f"of {len(found.schema.tables)}"
    )
    for key in found.data.other_people:
        report.append(f"  not followed, another person: {key.describe()}")
    if found.gaps:
        report.append(f"{len(found.gaps)} coverage gap(s): personal-looking, reached by no path")
        for gap in found.gaps:
            report += [f"  gap: {gap.describe()}", f"       {gap.hint()}"]
    else:
        report.append("coverage: every personal-looking table is reached")
    if output is None:
        click.echo(found.configuration, nl=False)
    else:
        with open(output, "x", encoding="utf-8") as file:  # owner-only: main()'s umask
            file.write(found.configuration)
        report.append(f"written to {output}; next: datapolicy config check --config {output}")
    click.echo("\n".join(report), err=True)
