"""The audit trail's hash chain: the bytes each link's hash is taken over, the signed checkpoint
of its head, and the check of a whole chain (`verify_chain`). No database: store/audit/log.py
writes and reads the links; these encodings are part of every stored chain, so what they
produce for a given entry may never change.

Entries are numbered 1, 2, 3, ... and the chain is made of links, each holding the hash of the
link before it (`previous_hash`, `GENESIS` for the first) and its own `hash`:
- an entry appended on its own is a link of its own: its hash is SHA-256 over `canonical`, a
  canonical JSON encoding of all its fields and the previous hash;
- a batch of entries appended together is one link, a block: the entries as a JSON array
  (`encode_block`), numbered first..last, with one hash over the numbers, the previous hash and
  the array's bytes (`block_hash`).
The head (the last entry's sequence and the last link's hash) is anchored by a checkpoint: the
two signed with the service's ES256 audit key (a JWS, joserfc; `sign_checkpoint`). So changing
any field, deleting, inserting or reordering entries or blocks, or cutting the chain back and
moving its head with it, breaks something `verify_chain` finds, and it names the first entry of
the first broken link.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence

import orjson
from joserfc import jws
from joserfc.errors import JoseError
from joserfc.jwk import ECKey

from datapolicy.store.audit.records import (
    AFTER_AT,
    AuditBlock,
    AuditEntry,
    AuditRecord,
    Verification,
    stored_action,
)
from datapolicy.store.timestamps import from_micros, to_micros

GENESIS = "0" * 64  # the previous hash of entry 1
_BLOCK_HASH_PREFIX = b"datapolicy-audit-block"
_CHECKPOINT_ALGORITHM = "ES256"


def canonical(sequence: int, record: AuditRecord, previous_hash: str) -> bytes:
    """The bytes an entry's hash is taken over: JSON in UTF-8 with sorted keys, no spaces, no
    escapes beyond JSON's required ones (orjson's output), times as integer microseconds since
    the epoch (UTC)."""
    return _canonical(sequence, record, to_micros(record.at), previous_hash)


def _canonical(sequence: int, record: AuditRecord, at: int, previous_hash: str) -> bytes:
    """`canonical`, with the time already in microseconds. The keys are written in sorted
    order, so orjson need not sort them."""
    return orjson.dumps(
        {
            "action": str(record.action),
            "appId": record.app_id,
            "at": at,
            "client": record.client,
            "operationId": record.operation_id,
            "previousHash": previous_hash,
            "requestId": record.request_id,
            "sequence": sequence,
            "subject": record.subject,
            "userId": record.user_id,
        }
    )


def entry_hash(sequence: int, record: AuditRecord, previous_hash: str) -> str:
    return entry_hash_at(sequence, record, to_micros(record.at), previous_hash)


def entry_hash_at(sequence: int, record: AuditRecord, at: int, previous_hash: str) -> str:
    """`entry_hash`, with the entry's time already in microseconds (appending needs them for
    the row too)."""
    return hashlib.sha256(_canonical(sequence, record, at, previous_hash)).hexdigest()


def block_hash(first: int, last: int, entries: bytes, previous_hash: str) -> str:
    """SHA-256 over `datapolicy-audit-block`, the first and last sequence and the previous
    hash, each followed by a newline, then the block's entries exactly as stored."""
    digest = hashlib.sha256(
        b"%s\n%d\n%d\n%s\n" % (_BLOCK_HASH_PREFIX, first, last, previous_hash.encode())
    )
    digest.update(entries)
    return digest.hexdigest()


def encode_block(records: Sequence[AuditRecord]) -> tuple[bytes, int, int]:
    """A block's entries as stored: a JSON array of [at (integer microseconds since the epoch),
    action, subject, appId, userId, operationId, client, requestId], with the earliest and the
    latest time."""
    times = [to_micros(record.at) for record in records]
    rows = [
        [at, str(record.action), record.subject, *record[AFTER_AT:]]
        for at, record in zip(times, records, strict=True)
    ]
    return orjson.dumps(rows), min(times), max(times)


def decode_block(entries: bytes) -> list[AuditRecord]:
    """`encode_block`'s entries back; ValueError if they are not what it writes."""
    try:
        rows = orjson.loads(entries)
    except orjson.JSONDecodeError as exc:
        raise ValueError(f"not JSON: {exc}") from None
    if not isinstance(rows, list):
        raise ValueError("not an array")
    records = []
    for row in rows:
        if not (isinstance(row, list) and len(row) == 8 and isinstance(row[0], int)):
            raise ValueError("an entry is not an array of eight fields")
        at, action, subject, app_id, user_id, operation_id, client, request_id = row
        try:
            when = from_micros(at)
        except (OverflowError, ValueError):
            raise ValueError(f"an entry's time is out of range: {at}") from None
        records.append(
            AuditRecord(
                stored_action(action),
                subject,
                when,
                app_id,
                user_id,
                operation_id,
                client,
                request_id,
            )
        )
    return records


def checkpoint_payload(sequence: int, digest: str) -> bytes:
    """What a checkpoint signs: the head's sequence and hash, as canonical JSON."""
    return orjson.dumps({"hash": digest, "sequence": sequence})


def sign_checkpoint(key: ECKey, sequence: int, digest: str) -> str:
    """The checkpoint's signature of the head (`sequence`, `digest`): a compact JWS."""
    return jws.serialize_compact(
        {"alg": _CHECKPOINT_ALGORITHM, "kid": key.kid},
        checkpoint_payload(sequence, digest),
        key,
        algorithms=[_CHECKPOINT_ALGORITHM],
    )


# A stored link (a single entry or a block), the head row's (sequence, hash), and the checkpoint
# row's (sequence, hash, signature).
Link = AuditEntry | AuditBlock
Head = tuple[int, str]
Checkpoint = tuple[int, str, str]


def verify_chain(
    links: Iterable[Link],
    head: Head | None,
    checkpoint: Checkpoint | None,
    key: ECKey | None,
) -> Verification:
    """Check every link (in sequence order), then the head and, with `key` (the service's:
    without it the trail is unanchored), the signed checkpoint; stop at the first problem and
    name its (first) entry. All three must come from one snapshot of the trail."""
    expected, previous, count = 1, GENESIS, 0
    for link in links:
        if isinstance(link, AuditBlock):
            problem = _block_problem(link, expected, previous)
            first, last = link.first_sequence, link.last_sequence
        else:
            problem = _entry_problem(link, expected, previous)
            first = last = link.sequence
        if problem is not None:
            return Verification(count, previous, first, problem)
        expected, previous, count = last + 1, link.hash, count + last - first + 1
    if head is None:
        return Verification(count, previous, count + 1, "the chain's head row is missing")
    head_sequence, head_hash = head
    if head_sequence > count:
        problem = (
            f"entries {count + 1} to {head_sequence} are missing from the end "
            f"(the chain's head records entry {head_sequence})"
        )
        return Verification(count, previous, count + 1, problem)
    if head_sequence < count:
        problem = f"entry {head_sequence + 1} and after were added behind the chain's head"
        return Verification(count, previous, head_sequence + 1, problem)
    if head_hash != previous:
        problem = "it is not the link the chain's head records (it was replaced)"
        return Verification(count, previous, count, problem)
    if key is not None:
        anchored = _checkpoint_problem(key, checkpoint, count, previous)
        if anchored is not None:
            broken_at, problem = anchored
            return Verification(count, previous, broken_at, problem)
    return Verification(count, previous)


def _checkpoint_problem(
    key: ECKey, checkpoint: Checkpoint | None, count: int, head_hash: str
) -> tuple[int, str] | None:
    """The first entry concerned and what is wrong with the signed checkpoint of a chain of
    `count` entries ending in `head_hash`, if anything."""
    if checkpoint is None:
        if count == 0:
            return None
        return count, (
            "the chain's head has no signed checkpoint (a trail written before checkpoints "
            "gets one with its next entry)"
        )
    sequence, digest, signature = checkpoint
    public = ECKey.import_key(key.as_dict(private=False))
    try:
        signed = jws.deserialize_compact(signature, public, algorithms=[_CHECKPOINT_ALGORITHM])
    except (JoseError, ValueError) as exc:
        return count, (
            f"the chain's checkpoint is not signed by this service's key ({exc}; the key "
            "checked is the data directory's audit-key.jwk)"
        )
    if signed.payload != checkpoint_payload(sequence, digest):
        return count, "the chain's checkpoint was changed after it was signed"
    if sequence > count:
        missing = (
            f"entry {sequence} is"
            if sequence == count + 1
            else (f"entries {count + 1} to {sequence} are")
        )
        return count + 1, (
            f"{missing} missing from the end (the signed checkpoint records entry {sequence})"
        )
    if (sequence, digest) != (count, head_hash):
        return min(sequence + 1, count), (
            f"the chain does not end where its signed checkpoint says (entry {sequence}, "
            f"hash {digest})"
        )
    return None


def _block_problem(block: AuditBlock, expected: int, previous: str) -> str | None:
    first, last = block.first_sequence, block.last_sequence
    if first != expected:
        what = "missing" if first > expected else "out of order"
        return f"expected entry {expected} here, found a block from entry {first} (entries {what})"
    if block.previous_hash != previous:
        return "its block's previous hash is not the hash of the link before it"
    try:
        records = decode_block(block.entries)
    except ValueError as exc:
        return f"its block's entries cannot be read ({exc}): the block was changed"
    if len(records) != last - first + 1:
        return f"its block holds {len(records)} entries, not the {last - first + 1} of its range"
    if block_hash(first, last, block.entries, block.previous_hash) != block.hash:
        return "its block's hash does not match its contents (the block was changed)"
    times = [to_micros(record.at) for record in records]
    if (block.first_at, block.last_at) != (min(times), max(times)):
        return "its block's time range is not its entries' (the block was changed)"
    return None


def _entry_problem(entry: AuditEntry, expected: int, previous: str) -> str | None:
    if entry.sequence != expected:
        what = "missing" if entry.sequence > expected else "out of order"
        return f"expected entry {expected} here, found entry {entry.sequence} (entries {what})"
    if entry.previous_hash != previous:
        return "its previous hash is not the hash of the entry before it"
    if entry_hash(entry.sequence, entry.record, entry.previous_hash) != entry.hash:
        return "its hash does not match its contents (the entry was changed)"
    return None
