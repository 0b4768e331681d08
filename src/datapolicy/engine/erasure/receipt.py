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
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Mapping, Sequence
from typing import Any

from datapolicy.engine.report import TEMPLATES, moment

RECEIPT_JSON = "receipt.json"
RECEIPT_HTML = "receipt.html"
RECEIPT_VERSION = 1
KEY_CONTEXT = b"datapolicy erasure receipt\x00"
HASHES = (
    "HMAC-SHA256 under HMAC-SHA256(erasure secret, 'datapolicy erasure receipt' NUL "
    "operationId), of the compact UTF-8 JSON array of texts: [user id] for the person, "
    "[source, table, key value...] for a row, [source, path] for a file (docs/erasure.md)"
)


def receipt_key(secret: bytes, operation_id: str) -> bytes:
    """The key of one operation's receipt hashes, derived from the erasure secret."""
    return hmac.new(secret, KEY_CONTEXT + operation_id.encode("utf-8"), hashlib.sha256).digest()


def key_hash(key: bytes, *parts: Any) -> str:
    """The hash of a person (user id), a row (source, table, its key's values) or a file
    (source, path) under a receipt's key."""
    texts = [part if isinstance(part, str) else str(part) for part in parts]
    message = json.dumps(texts, ensure_ascii=False, separators=(",", ":"))
    return hmac.new(key, message.encode("utf-8", "surrogatepass"), hashlib.sha256).hexdigest()


def build_receipt(
    header: Mapping[str, Any], user_hash: str, lines: Sequence[Mapping[str, Any]]
) -> dict[str, Any]:
    """The receipt's JSON: `header` (the operation id and type, who requested and approved
    and when, the times), the person's hash and the summary lines of every source, each
    table's and file source's with its `keys` hashed (package.py's summary lines). Who
    requested and approved, stored as the token's `[application, subject]`, is spelled out."""
    principals = {
        name: _principal(header[name]) for name in ("requestedBy", "approvedBy") if name in header
    }
    return {
        "receiptFormatVersion": RECEIPT_VERSION,
        **header,
        **principals,
        "userIdHash": user_hash,
        "hashes": HASHES,
        "tables": [dict(line) for line in lines if "table" in line],
        "fileSources": [dict(line) for line in lines if "table" not in line],
    }


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


def _principal(caller: Any) -> Any:
    """`{"application": ..., "subject": ...}` from the stored `[application, subject]` (the
    web layer's `caller_of`); anything else as it is."""
    try:
        application, subject = json.loads(caller)
    except (TypeError, ValueError):
        return caller
    return {"application": application, "subject": subject}
