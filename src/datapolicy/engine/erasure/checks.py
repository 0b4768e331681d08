"""Checking a key against an erasure's receipt: was this person, row or file in what it erased?

The receipt names nothing in the clear (receipt.py): a key is checked by hashing it under the
receipt's key, which only the holder of the erasure secret can derive, and looking for that
hash where the receipt lists the keys of the key's table or file source. A key is spelled as
the hashed array itself, texts only: `[user id]` for the person, `[source, table, key value,
...]` for a row, `[source, path]` for a file.

The answer is one of:
- `erased`: the hash is listed (or, for the person, is the receipt's `userIdHash`);
- `notListed`: the receipt has the table or file source and its keys, and this one is not
  among them; or it has no such table or source at all;
- `retained`: the receipt has the table or file source under the rule `retain` (its rows or
  files were kept, for the `reason` the configuration gives);
- `cannotTell`: the table or source was erased by an earlier attempt of the operation, which
  the receipt quotes by the count and SHA-256 of its hashes only (the hashes went with it).

A receipt may come from anyone who hands over a package, so `parse_receipt` bounds it before it
is decoded, and `made_under` says whether the secret at hand is the one it was made under
(under another, every key would be `notListed`, a confident wrong answer).
"""

from __future__ import annotations

import enum
import hmac
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from datapolicy.engine.erasure.receipt import key_hash, receipt_key, secret_check

# A receipt is mostly its hashes, 67 bytes each with their quotes and comma: 512 MiB holds some
# 8 million. Decoded, a receipt that is mostly hashes takes a few times its size in memory; one
# of many tiny values (`{},{},...`, deflated a thousandfold in its ZIP) would take tens of times
# its size, so one with far more values or containers than hashes would give is refused.
MAX_RECEIPT_BYTES = 512 << 20
_BYTES_PER_VALUE = 32  # at most one value (one comma) per this many bytes, beyond the lines'
_MAX_CONTAINERS = 100_000  # objects and arrays: a few per table and file source


class Verdict(enum.StrEnum):
    ERASED = "erased"
    NOT_LISTED = "notListed"
    RETAINED = "retained"
    CANNOT_TELL = "cannotTell"


@dataclass(frozen=True)
class KeyCheck:
    """What a receipt says of one key, `where` it looked (`source/table`, a file source's
    name, or `userIdHash`), and a retained table's or source's `reason`."""

    key: tuple[str, ...]
    verdict: Verdict
    where: str
    reason: str | None = None


class NotAReceipt(ValueError):
    """receipt.json that is not a receipt, or is too large or dense to be read."""


def parse_receipt(data: bytes) -> dict[str, Any]:
    """receipt.json, decoded once it is known to be bounded (above), or NotAReceipt."""
    if len(data) > MAX_RECEIPT_BYTES:
        raise NotAReceipt(f"it is larger than {MAX_RECEIPT_BYTES} bytes")
    containers = data.count(b"{") + data.count(b"[")
    if (
        containers > _MAX_CONTAINERS
        or data.count(b",") > len(data) // _BYTES_PER_VALUE + _MAX_CONTAINERS
    ):
        raise NotAReceipt("it holds far more values than a receipt's hashes would")
    try:
        receipt = orjson.loads(data)
    except orjson.JSONDecodeError:
        raise NotAReceipt("it is not JSON") from None
    if not isinstance(receipt, dict):
        raise NotAReceipt("it is not a JSON object")
    return receipt


def made_under(receipt: Mapping[str, Any], secret: bytes) -> bool | None:
    """Whether `receipt` was made under `secret`, by its `secretCheck`; None for a receipt made
    before receipts had one."""
    stated = receipt.get("secretCheck")
    if stated is None:
        return None
    expected = secret_check(receipt_key(secret, str(receipt.get("operationId", ""))))
    return isinstance(stated, str) and hmac.compare_digest(stated, expected)


class NotAKey(ValueError):
    """A key that is not a JSON array of one, two, or three or more texts."""


def parse_key(parts: Any) -> tuple[str, ...]:
    """A key as given (a decoded JSON value), or NotAKey."""
    if not isinstance(parts, list) or not parts or not all(isinstance(part, str) for part in parts):
        raise NotAKey(
            'a key is a JSON array of texts: ["user id"], ["source", "table", "key value", ...] '
            'or ["source", "path"]'
        )
    return tuple(parts)


def check_key(receipt: Mapping[str, Any], secret: bytes, key: tuple[str, ...]) -> KeyCheck:
    """What `receipt` (receipt.json, decoded) says of `key`, under the erasure `secret`."""
    hashed = key_hash(receipt_key(secret, str(receipt.get("operationId", ""))), *key)
    if len(key) == 1:
        found = hashed == receipt.get("userIdHash")
        return KeyCheck(key, Verdict.ERASED if found else Verdict.NOT_LISTED, "userIdHash")
    if len(key) == 2:
        where = key[0]
        lines = [line for line in _lines(receipt, "fileSources") if line.get("source") == key[0]]
    else:
        where = f"{key[0]}/{key[1]}"
        lines = [
            line
            for line in _lines(receipt, "tables")
            if (line.get("source"), line.get("table")) == key[:2]
        ]
    listed = [line["keys"] for line in lines if isinstance(line.get("keys"), list)]
    if any(hashed in keys for keys in listed):
        return KeyCheck(key, Verdict.ERASED, where)
    retained = [line for line in lines if line.get("rule") == "retain"]
    if retained:
        reason = retained[0].get("reason")
        return KeyCheck(key, Verdict.RETAINED, where, reason if isinstance(reason, str) else None)
    if any("keysSha256" in line and "keys" not in line for line in lines):
        return KeyCheck(key, Verdict.CANNOT_TELL, where)
    return KeyCheck(key, Verdict.NOT_LISTED, where)


def _lines(receipt: Mapping[str, Any], name: str) -> Sequence[Mapping[str, Any]]:
    lines = receipt.get(name)
    return [line for line in lines if isinstance(line, dict)] if isinstance(lines, list) else []
