"""The receipt of a complete erasure: `receipt.json` and `receipt.html` in its package.

It says what was done, and proves to whoever already knows a key which rows went, without
naming them: per table the rule applied and the counts, the retained tables with the reason the
configuration states, the keys of the rows deleted or masked (and the paths of the files
deleted) as hashes, the operation id, who requested and who approved it, and when. It holds no
value of the person's rows: the person is named by the hash of their user id too.

A hash is the hex HMAC-SHA256, under the receipt's key, of a JSON array of texts (compact,
UTF-8): `[user id]` for the person, `[source, table, key value, ...]` for a row (each value as
Python's `str`: integers in decimal, dates ISO 8601), `[source, path]` for a file. The receipt's
key is HMAC-SHA256(erasure secret, "datapolicy erasure receipt" NUL operation id), never
written anywhere. Why so, rather than a salt:

- keys are guessable (ids 1, 2, 3 ...): a salt stored in the receipt would let anyone holding
  the receipt try them all in a second; a random salt stored nowhere would let nobody check a
  key. Under the secret, the operator (who holds it) can check any key, and a reader of the
  receipt alone can check none;
- derived per operation: the same person's keys hash differently in two receipts (receipts do
  not link people across operations), and no receipt hash equals a `hash` mask's value (which
  is under the secret itself: masks.py).

`key_hash` checks a key: `key_hash(receipt_key(secret, operation id), source, table, value)`.

An erasure of many rows has many hashes: `KeyHashes` takes them as the erasure goes (hashing
the keys itself, or, on MySQL/MariaDB, taking the hashes the database computed: `in_sql`), writes
them to a temporary file (one hex hash a line) and keeps only their count and the SHA-256 of
those lines (`keysSha256`), which is what the operation stores after each source commits;
`receipt.json` is streamed (`receipt_json`), its `keys` read back from the file. So memory
stays flat in the number of rows. A source that an earlier attempt of the operation committed
is quoted by its count and `keysSha256` only: its hashes went with that attempt; so are the
files an earlier attempt deleted of a file source it did not finish (a line `"partial": true`).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import tempfile
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import IO, Any

import orjson
from sqlalchemy import LargeBinary, func, literal
from sqlalchemy.sql.expression import ColumnElement

from datapolicy.engine.report import TEMPLATES, moment
from datapolicy.model import principal_json

RECEIPT_JSON = "receipt.json"
RECEIPT_HTML = "receipt.html"
RECEIPT_VERSION = 1
_BLOCK = 64  # SHA-256's block: HMAC's key is padded to it
_LINE = 65  # a hash's line in a spill: 64 hex digits and a newline
KEY_CONTEXT = b"datapolicy erasure receipt\x00"
SECRET_CHECK = b"datapolicy receipt secret check"
HASHES = (
    "HMAC-SHA256 under HMAC-SHA256(erasure secret, 'datapolicy erasure receipt' NUL "
    "operationId), of the compact UTF-8 JSON array of texts: [user id] for the person, "
    "[source, table, key value...] for a row, [source, path] for a file (docs/erasure.md)"
)


def receipt_key(secret: bytes, operation_id: str) -> bytes:
    """The key of one operation's receipt hashes, derived from the erasure secret."""
    return hmac.new(secret, KEY_CONTEXT + operation_id.encode("utf-8"), hashlib.sha256).digest()


def secret_check(key: bytes) -> str:
    """The receipt's `secretCheck`: by which `datapolicy verify --erased` tells that it holds the
    secret the receipt was made under, before it answers "notListed" for keys hashed under
    another. A MAC of a constant, not a JSON array: it equals no key's hash, and says nothing
    of any key to whoever lacks the secret."""
    return hmac.new(key, SECRET_CHECK, hashlib.sha256).hexdigest()


def key_hash(key: bytes, *parts: Any) -> str:
    """The hash of a person (user id), a row (source, table, its key's values) or a file
    (source, path) under a receipt's key."""
    texts = [part if isinstance(part, str) else str(part) for part in parts]
    message = json.dumps(texts, ensure_ascii=False, separators=(",", ":"))
    return hmac.new(key, message.encode("utf-8", "surrogatepass"), hashlib.sha256).hexdigest()


def _start(source: str, table: str | None) -> bytes:
    """The start common to every hashed array of a table (or a file source): `["source",`
    (`["source","table",`), as `key_hash` spells it."""
    first = [source] if table is None else [source, table]
    start = json.dumps(first, ensure_ascii=False, separators=(",", ":"))[:-1] + ","
    return start.encode("utf-8", "surrogatepass")


def _is_integer(column: ColumnElement[Any]) -> bool:
    try:
        return column.type.python_type is int
    except NotImplementedError:
        return False


def _text(part: Any) -> bytes:
    """One part of a hashed array, as `key_hash` spells it."""
    if type(part) is int:
        return b'"%d"' % part
    text = part if isinstance(part, str) else str(part)
    return json.dumps(text, ensure_ascii=False).encode("utf-8", "surrogatepass")


@dataclass(slots=True)
class _Spill:
    inner: Any  # HMAC's inner SHA-256, fed its pad and the array's start `[source, table,`
    outer: Any  # HMAC's outer SHA-256, fed its pad
    file: IO[bytes] = field(default_factory=lambda: tempfile.TemporaryFile())  # noqa: SIM115
    digest: Any = field(default_factory=hashlib.sha256)
    count: int = 0


class KeyHashes:
    """The hashes of the keys of the rows (and the paths of the files) one erasure changed, per
    (source, table; None for a file source), spilled to temporary files as they come."""

    def __init__(self, key: bytes):
        self._key = key
        self._spills: dict[tuple[str, str | None], _Spill] = {}

    def _spill(self, source: str, table: str | None) -> _Spill:
        spill = self._spills.get((source, table))
        if spill is None:
            inner = hashlib.sha256(self._pad(hmac.trans_36) + _start(source, table))
            outer = hashlib.sha256(self._pad(hmac.trans_5C))
            spill = self._spills[(source, table)] = _Spill(inner, outer)
        return spill

    def _pad(self, translation: bytes) -> bytes:
        """HMAC's key padded to a block (the key is a digest: shorter than one), XORed with one
        of its pads."""
        return self._key.ljust(_BLOCK, b"\0").translate(translation)

    def add(self, source: str, table: str | None, keys: Iterable[Sequence[Any]]) -> None:
        """Hash a batch of keys, each `key_hash(key, source, table, *values)` (or, for a
        file, `key_hash(key, source, path)`), as HMAC is defined (RFC 2104) with its two
        SHA-256 states fed the pads and the common start once, then copied per key: a third of
        `hmac.new`'s time per key, which is most of what a large erasure spends in Python."""
        spill = self._spill(source, table)
        hashes: list[str] = []
        inner, outer = spill.inner.copy, spill.outer.copy
        for values in keys:
            if len(values) == 1 and type(values[0]) is int:
                rest = b'"%d"]' % values[0]
            else:
                rest = b",".join(map(_text, values)) + b"]"
            message = inner()
            message.update(rest)
            result = outer()
            result.update(message.digest())
            hashes.append(result.hexdigest())
        if hashes:
            self._write(spill, ("\n".join(hashes) + "\n").encode(), len(hashes))

    def in_sql(
        self, source: str, table: str, key: Sequence[ColumnElement[Any]], dialect: str
    ) -> ColumnElement[str] | None:
        """The SQL of a row's hash, `key_hash(key, source, table, *its key's values)`, for
        MySQL/MariaDB to compute (HMAC as defined: two SHA2 of the pads and the message), or
        None: on another database (SQLite has no SHA-256; PostgreSQL's `sha256()` costs more
        per row than `add` does: docs/benchmarks.md), or for a key column that is not an
        integer (whose text the database would not spell as Python's `str` and JSON do). On
        MariaDB, reading the hashes costs less than reading the keys and hashing them here
        (docs/benchmarks.md)."""
        if dialect not in ("mysql", "mariadb") or not all(_is_integer(c) for c in key):
            return None
        inner, outer = self._pad(hmac.trans_36) + _start(source, table), self._pad(hmac.trans_5C)
        parts: list[Any] = []
        for index, column in enumerate(key):
            parts += ['"' if index == 0 else '","', column]
        values = func.concat(*parts, '"]')  # the digits of each integer, as `str` spells them
        digest = func.unhex(func.sha2(func.concat(literal(inner, LargeBinary), values), 256))
        return func.sha2(func.concat(literal(outer, LargeBinary), digest), 256)

    def add_lines(self, source: str, table: str, lines: bytes) -> None:
        """Take hashes a database computed (`in_sql`), one hex hash and a newline each."""
        self._write(self._spill(source, table), lines, lines.count(b"\n"))

    def _write(self, spill: _Spill, lines: bytes, count: int) -> None:
        spill.count += count
        spill.file.write(lines)
        spill.digest.update(lines)

    def __contains__(self, where: tuple[str, str | None]) -> bool:
        return where in self._spills

    def count(self, source: str, table: str | None) -> int:
        spill = self._spills.get((source, table))
        return 0 if spill is None else spill.count

    def sha256(self, source: str, table: str | None) -> str:
        """The SHA-256 of the hashes' lines (each hex hash and a newline), in the order taken."""
        spill = self._spills.get((source, table))
        return (spill.digest if spill is not None else hashlib.sha256()).hexdigest()

    def json_items(self, source: str, table: str | None) -> Iterator[bytes]:
        """The hashes as the items of a JSON array (`"h1","h2",...`), in chunks."""
        spill = self._spills.get((source, table))
        if spill is None:
            return
        spill.file.seek(0)
        first = True
        while chunk := spill.file.read(_LINE * 4096):  # whole lines: each is _LINE bytes
            hashes = chunk.split()
            yield (b"" if first else b",") + b'"' + b'","'.join(hashes) + b'"'
            first = False

    def close(self) -> None:
        for spill in self._spills.values():
            spill.file.close()
        self._spills.clear()


def build_receipt(
    header: Mapping[str, Any], key: bytes, user_hash: str, lines: Sequence[Mapping[str, Any]]
) -> dict[str, Any]:
    """The receipt's JSON: `header` (the operation id and type, who requested and approved
    and when, the times), the person's hash, the check of the receipt's `key`, and the summary
    lines of every source, each table's and file source's with its `keys` hashed (package.py's
    summary lines)."""
    return {
        "receiptFormatVersion": RECEIPT_VERSION,
        **header,
        "userIdHash": user_hash,
        "secretCheck": secret_check(key),
        "hashes": HASHES,
        "tables": [dict(line) for line in lines if "table" in line],
        "fileSources": [dict(line) for line in lines if "table" not in line],
    }


def receipt_json(receipt: Mapping[str, Any], hashes: KeyHashes) -> Iterator[bytes]:
    """`receipt.json`, in chunks: the receipt (`build_receipt`), each of its tables and file
    sources with the `keys` that `hashes` took for it, streamed from its file."""
    head = {k: v for k, v in receipt.items() if k not in ("tables", "fileSources")}
    yield orjson.dumps(head)[:-1]
    for name in ("tables", "fileSources"):
        yield b',"' + name.encode() + b'":['
        for index, line in enumerate(receipt[name]):
            separator = b",\n" if index else b"\n"
            where = (line["source"], line.get("table"))
            if where not in hashes or line.get("partial"):  # an earlier attempt's: quoted
                yield separator + orjson.dumps(line)
                continue
            yield separator + orjson.dumps(line)[:-1] + b',"keys":['
            yield from hashes.json_items(*where)
            yield b"]}"
        yield b"]"
    yield b"}\n"


def render_receipt(receipt: Mapping[str, Any]) -> str:
    """The receipt as a page a person reads: report.html's style, autoescaped."""
    tables = receipt["tables"]
    files = receipt["fileSources"]
    return TEMPLATES.get_template("receipt.html").render(
        receipt=receipt,
        times={
            name: moment(receipt.get(name))
            for name in ("submittedDateTime", "approvedAt", "startedDateTime", "createdDateTime")
        },
        erased=[line for line in tables if line["rule"] != "retain"],
        retained=[line for line in (*tables, *files) if line["rule"] == "retain"],
        deleted_files=[line for line in files if line["rule"] == "delete"],
    )


def principals(approval: Mapping[str, str]) -> dict[str, Any]:
    """Who requested and who approved an erasure, and when, as the manifest and the receipt
    state them: the stored `requestedBy` and `approvedBy` (the token's `[application,
    subject]`) spelled out as `{"application": ..., "subject": ...}`."""
    return {
        name: principal_json(value) if name.endswith("By") else value
        for name, value in approval.items()
    }
