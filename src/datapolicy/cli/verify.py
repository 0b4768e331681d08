"""`datapolicy verify`: check a package against its manifest, and keys against its receipt."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from datapolicy.cli.options import config_option, data_dir_option, load_settings
from datapolicy.cli.output import printable

if TYPE_CHECKING:
    from datapolicy.settings import Settings


class Key(click.ParamType[tuple[str, ...]]):
    """A key as the receipt hashes it: a JSON array of texts (engine/erasure/checks.py)."""

    name = "json-array"

    def convert(
        self, value: Any, param: click.Parameter | None, ctx: click.Context | None
    ) -> tuple[str, ...]:
        if isinstance(value, tuple):
            return value
        from datapolicy.engine.erasure.checks import NotAKey, parse_key

        try:
            return parse_key(json.loads(value))
        except (ValueError, NotAKey) as exc:
            self.fail(f"{value!r}: {exc}", param, ctx)


@click.command()
@click.argument("package", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--erased",
    "keys",
    multiple=True,
    type=Key(),
    help='A key to look for in an erasure\'s receipt (repeat for several): ["user id"], '
    '["source", "table", "key value", ...] or ["source", "path"].',
)
@data_dir_option
@config_option
def verify(
    package: Path,
    keys: tuple[tuple[str, ...], ...],
    data_dir: Path | None,
    config_file: Path | None,
) -> None:
    """Check an export package against its manifest (sizes, SHA-256 checksums, record counts)
    and that it is safe to extract: no escaping, absolute, duplicate or link entries. Each
    problem is one line on stderr, and the exit status 1.

    With --erased, the package must be an erasure's with its receipt, and each key is then
    looked for in it: hashed under the erasure secret of the data directory (or [erasure]
    hash_secret_file), which only the service's operator holds. A line per key says "erased",
    "notListed", "retained" (with the reason) or "cannotTell" (erased by an earlier attempt,
    quoted by count only); the exit status is 0 only if every key was erased.

    \b
    Examples:
      datapolicy verify datapolicy-data/exports/0aeb517a-0cf7-4ba0-80b9-65a0a9a74c66.zip
      datapolicy verify RECEIPT_PACKAGE.zip --erased '["shop", "orders", "1001"]'
    """
    from datapolicy.engine.verify import verify_package

    problems = verify_package(package)
    for problem in problems:
        click.echo(f"{package}: {problem}", err=True)
    if problems:
        raise SystemExit(1)
    click.echo(f"{package}: OK")
    if keys and not _all_erased(package, keys, load_settings(config_file, data_dir=data_dir)):
        raise SystemExit(1)


def _all_erased(package: Path, keys: tuple[tuple[str, ...], ...], settings: Settings) -> bool:
    """Print what the package's receipt says of each key; whether every one was erased."""
    from datapolicy.auth.keys import erasure_secret
    from datapolicy.engine.context import erasure_secret_file
    from datapolicy.engine.erasure.checks import (
        MAX_RECEIPT_BYTES,
        NotAReceipt,
        Verdict,
        check_key,
        made_under,
        parse_receipt,
    )
    from datapolicy.engine.erasure.receipt import RECEIPT_JSON
    from datapolicy.errors import SigningKeyError

    with zipfile.ZipFile(package) as archive:
        if RECEIPT_JSON not in archive.namelist():
            raise click.ClickException(
                f"{package} holds no {RECEIPT_JSON}: only a complete erasure's package has a "
                "receipt (not an export's, nor a dry run's)"
            )
        try:
            if archive.getinfo(RECEIPT_JSON).file_size > MAX_RECEIPT_BYTES:  # not read, then
                raise NotAReceipt(f"it is larger than {MAX_RECEIPT_BYTES} bytes")
            receipt = parse_receipt(archive.read(RECEIPT_JSON))
        except NotAReceipt as exc:
            raise click.ClickException(f"{package}: its {RECEIPT_JSON} is refused: {exc}") from None
    path = erasure_secret_file(settings.config, settings.data_dir)
    try:
        secret = erasure_secret(path, create=False)
    except (SigningKeyError, OSError) as exc:
        raise click.ClickException(f"{exc} (the secret of the service that erased)") from None
    if made_under(receipt, secret) is False:
        raise click.ClickException(
            f"{package}: its receipt was not made under the erasure secret {path}: give the "
            "data directory (or configuration) of the service that erased"
        )
    erased = True
    for key in keys:
        check = check_key(receipt, secret, key)
        reason = f": {check.reason}" if check.reason else ""  # the package's words: escaped
        shown = json.dumps(list(key), ensure_ascii=False)
        line = printable(f"{shown}: {check.verdict} ({check.where}{reason})")
        line = line.replace("\n", "\\n").replace("\t", "\\t")
        click.echo(line.encode("utf-8", "backslashreplace").decode())  # a lone surrogate too
        erased = erased and check.verdict is Verdict.ERASED
    return erased
