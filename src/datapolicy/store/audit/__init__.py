"""The audit trail: who did what to whose export, when, from where, in an append-only,
hash-chained log (docs/security.md, "Audit trail").

Each entry records an action from a small fixed vocabulary (`AuditAction`), the caller (the
token's subject and client application id, or the worker), the user the export concerns, the
operation, the client's address and the request id. The package keeps the storage side only:
- store/audit/records.py: the entry types, and what queries ask for and `verify` reports;
- store/audit/chain.py: the hash chain's encodings, the head's signed checkpoint, and the check
  of a whole chain;
- store/audit/log.py: `AuditLog`, the tables it appends to and reads (where they live, how
  appends are serialised, how the trail fails closed).
What fills it lives with its callers: web/middleware/audit.py (a request's entries, and the buffer
that appends read entries as blocks from a thread), the export engine (its own entries, as the
worker).

Its names are loaded when first used (lazy.py): importing records.py for the actions loads
neither the log (SQLAlchemy) nor the chain (joserfc).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from datapolicy.lazy import lazy_names

if TYPE_CHECKING:  # the same names, for type checkers: loaded by __getattr__ at run time
    from datapolicy.store.audit.chain import (
        GENESIS,
        block_hash,
        canonical,
        checkpoint_payload,
        decode_block,
        encode_block,
        entry_hash,
    )
    from datapolicy.store.audit.log import AuditLog, AuditUnavailable, open_audit_log
    from datapolicy.store.audit.records import (
        WORKER_SUBJECT,
        AuditAction,
        AuditBlock,
        AuditEntry,
        AuditFilter,
        AuditRecord,
        Verification,
    )

__all__ = [
    "GENESIS",
    "WORKER_SUBJECT",
    "AuditAction",
    "AuditBlock",
    "AuditEntry",
    "AuditFilter",
    "AuditLog",
    "AuditRecord",
    "AuditUnavailable",
    "Verification",
    "block_hash",
    "canonical",
    "checkpoint_payload",
    "decode_block",
    "encode_block",
    "entry_hash",
    "open_audit_log",
]

__getattr__ = lazy_names(
    __name__,
    {
        "GENESIS": "datapolicy.store.audit.chain",
        "block_hash": "datapolicy.store.audit.chain",
        "canonical": "datapolicy.store.audit.chain",
        "checkpoint_payload": "datapolicy.store.audit.chain",
        "decode_block": "datapolicy.store.audit.chain",
        "encode_block": "datapolicy.store.audit.chain",
        "entry_hash": "datapolicy.store.audit.chain",
        "AuditLog": "datapolicy.store.audit.log",
        "AuditUnavailable": "datapolicy.store.audit.log",
        "open_audit_log": "datapolicy.store.audit.log",
        "WORKER_SUBJECT": "datapolicy.store.audit.records",
        "AuditAction": "datapolicy.store.audit.records",
        "AuditBlock": "datapolicy.store.audit.records",
        "AuditEntry": "datapolicy.store.audit.records",
        "AuditFilter": "datapolicy.store.audit.records",
        "AuditRecord": "datapolicy.store.audit.records",
        "Verification": "datapolicy.store.audit.records",
    },
)
