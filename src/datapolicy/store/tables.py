"""The operation store's tables, in SQLAlchemy Core: the one description that both the queries
and the Alembic migrations are checked against.

Times are stored as integer microseconds since the Unix epoch (UTC): the same exact, sortable
representation on every database, with no driver-specific time-zone handling to get wrong.

Strings compare and sort by their bytes (their code points) on both databases: SQLite's default
BINARY collation does, and on PostgreSQL every string column is in the "C" collation (migration
0003), whatever the database's default. So `$orderby`, `gt`/`lt` on strings and the keyset
bounds of `$skiptoken` give the same order on both, and the indexes serve them.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Float,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    text,
)
from sqlalchemy.types import TypeEngine

from datapolicy.model import MAX_STORAGE_LOCATION_LENGTH, MAX_USER_ID_LENGTH

metadata = MetaData()
RETENTION_PENDING = "package_location IS NOT NULL AND package_deleted_at IS NULL"


def text_column(length: int | None) -> TypeEngine[str]:
    """VARCHAR(length); on PostgreSQL in the "C" (byte order) collation, as SQLite's BINARY."""
    return String(length).with_variant(String(length, collation="C"), "postgresql")


operations = Table(
    "operations",
    metadata,
    Column("id", text_column(36), primary_key=True),
    Column("user_id", text_column(MAX_USER_ID_LENGTH), nullable=False),
    Column("status", text_column(32), nullable=False),
    Column("progress", Float, nullable=False),
    Column("storage_location", text_column(MAX_STORAGE_LOCATION_LENGTH), nullable=True),
    Column("submitted_at", BigInteger, nullable=False),
    Column("completed_at", BigInteger, nullable=True),
    Column("version", Integer, nullable=False),
    # The work queue (migration 0002): leases, retries, outcome, deletion.
    Column("attempts", Integer, nullable=False, server_default="0"),
    Column("lease_owner", text_column(None), nullable=True),  # unbounded: it holds the host name
    Column("lease_expires_at", BigInteger, nullable=True),
    Column("next_attempt_at", BigInteger, nullable=True),
    Column("started_at", BigInteger, nullable=True),
    Column("error_code", text_column(64), nullable=True),
    Column("error_message", text_column(2000), nullable=True),
    # Unbounded: where a target published a package, which may be longer than the location asked
    # for (SQLite never enforced the 2048 of migration 0002; PostgreSQL would).
    Column("package_location", text_column(None), nullable=True),
    Column("deleted_at", BigInteger, nullable=True),  # deletion requested: hidden from the API
    Column("idempotency_key", text_column(200), nullable=True),
    # What the start with that key asked for (migration 0009): a digest of user and location.
    Column("idempotency_request", text_column(64), nullable=True),
    # Package retention (migration 0005): when the worker dealt with the published package, how.
    Column("package_deleted_at", BigInteger, nullable=True),
    Column("package_deletion", text_column(32), nullable=True),
    # Attempts (migration 0007): takeovers of a dead or stalled worker's lease, counted apart
    # from export failures, and one line per ended attempt saying why it ended.
    Column("worker_losses", Integer, nullable=False, server_default="0"),
    Column("attempt_history", text_column(None), nullable=True),
    # Erasure (migration 0010): what the operation does, and an erasure's request and progress
    # (JSON: dryRun, the sources committed and their counts), so that a retry resumes.
    Column("operation_type", text_column(32), nullable=False, server_default="exportPersonalData"),
    Column("erasure_state", text_column(None), nullable=True),
    # 1 while an erasure waits for another principal's approval: not claimable until then.
    Column("approval_pending", Integer, nullable=False, server_default="0"),
    # What a running export writes (migration 0012; `progressDetail`), recorded with `progress`:
    # the part it is on and the records and file bytes written so far. Null until the first.
    Column("progress_part", text_column(None), nullable=True),
    Column("records_written", BigInteger, nullable=True),
    Column("bytes_written", BigInteger, nullable=True),
    # Who approved an erasure that needed approval, `[application, subject]`, and when
    # (migration 0013; the operation's `approval`). Null otherwise.
    Column("approved_by", text_column(None), nullable=True),
    Column("approved_at", BigInteger, nullable=True),
    # 1 when the published package holds an erasure's receipt (a complete erasure, not a dry
    # run; migration 0015): retention keeps it for `[erasure] receipt_retention`, not
    # `[engine] package_retention`.
    Column("package_receipt", Integer, nullable=False, server_default="0"),
    # An erasure's request as its approver must see it (migration 0016): whether it is a dry
    # run (`dryRun`; null for exports) and who requested it, `[application, subject]`
    # (`approval.requestedBy`), copies of what its `erasure_state` holds, read with the row.
    Column("dry_run", Boolean, nullable=True),
    Column("requested_by", text_column(None), nullable=True),
    # Each index ends in the tie-break key `id`, so that a keyset page (`$skiptoken`) under the
    # default order, or filtered by user or status, is an index range scan.
    Index("ix_operations_submitted", "submitted_at", "id"),
    Index("ix_operations_user", "user_id", "submitted_at", "id"),
    Index("ix_operations_status", "status", "submitted_at", "id"),
    Index("ix_operations_completed", "completed_at", "id"),  # PostgreSQL: NULLS FIRST (0003)
    Index("ix_operations_queue", "status", "next_attempt_at"),
    Index(
        "ix_operations_deleted",
        "deleted_at",
        sqlite_where=text("deleted_at IS NOT NULL"),
        postgresql_where=text("deleted_at IS NOT NULL"),
    ),
    # Unique (migration 0003): a key names at most one operation. A key is freed, by the store,
    # when its operation leaves the 24-hour window or is deleted.
    Index("ix_operations_idempotency", "idempotency_key", unique=True),
    # Partial: the published packages retention has not dealt with yet (migration 0005), the
    # receipts apart from the rest (0015), each kind oldest first.
    Index(
        "ix_operations_retention",
        "package_receipt",
        "completed_at",
        "id",
        sqlite_where=text(RETENTION_PENDING),
        postgresql_where=text(RETENTION_PENDING),
    ),
)

# The operations' change log (migration 0014; store/changes.py): on SQLite, triggers add a row
# naming the operation for every row of `operations` a statement writes, so that the read cache
# drops only what a commit changed. Empty on PostgreSQL, which has no read cache.
operation_changes = Table(
    "operation_changes",
    metadata,
    Column("seq", Integer, primary_key=True, autoincrement=True),
    Column("operation_id", text_column(36), nullable=False),
    sqlite_autoincrement=True,
)

# The entries the partial index below holds (an export's and an erasure's starts; migration
# 0011); a query must repeat it literally to use it.
AUDIT_STARTED = text("action IN ('operation.started', 'erasure.requested')")

# The audit trail (migration 0004; store/audit/): append-only, hash-chained entries. On SQLite
# it lives in a database file of its own beside the store's (see store/audit/log.py for why).
audit_log = Table(
    "audit_log",
    metadata,
    Column("sequence", BigInteger, primary_key=True, autoincrement=False),  # 1, 2, 3, ...
    Column("at", BigInteger, nullable=False),  # when the action happened
    Column("action", text_column(32), nullable=False),
    Column("subject", text_column(None), nullable=False),  # who: the token's subject
    Column("app_id", text_column(None), nullable=True),  # ... through which client application
    Column("user_id", text_column(MAX_USER_ID_LENGTH), nullable=True),  # whom it concerned
    Column("operation_id", text_column(36), nullable=True),
    Column("client", text_column(None), nullable=True),  # from where: the client's address
    Column("request_id", text_column(None), nullable=True),
    Column("previous_hash", text_column(64), nullable=False),
    Column("hash", text_column(64), nullable=False),
    # Only the starts, to find a start's request id (store/audit/log.py): an index on every
    # entry's random ids made each append touch random pages of a large file, and cost the
    # reads they record several times over; `audit list` filters scan instead.
    Index(
        "ix_audit_log_started",
        "operation_id",
        sqlite_where=AUDIT_STARTED,
        postgresql_where=AUDIT_STARTED,
    ),
)
# Blocks of the same chain (migration 0006; store/audit/chain.py): a batch of read entries in
# one row, `entries` a JSON array of [at, action, subject, app_id, user_id, operation_id, client,
# request_id], numbered first_sequence..last_sequence, with one hash over all of them.
audit_block = Table(
    "audit_block",
    metadata,
    Column("first_sequence", BigInteger, primary_key=True, autoincrement=False),
    Column("last_sequence", BigInteger, nullable=False),
    Column("first_at", BigInteger, nullable=False),  # the earliest entry's time
    Column("last_at", BigInteger, nullable=False),  # the latest entry's time
    Column("entries", LargeBinary, nullable=False),
    Column("previous_hash", text_column(64), nullable=False),
    Column("hash", text_column(64), nullable=False),
)
# The chain's head: one row, the last entry's sequence and hash. Appends lock it, so concurrent
# appenders (several processes on PostgreSQL) take turns and the chain never forks; `verify`
# compares it with the last entry, so entries deleted from the end are noticed too.
audit_head = Table(
    "audit_head",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),  # always 1
    Column("sequence", BigInteger, nullable=False),
    Column("hash", text_column(64), nullable=False),
)
# The head, signed (migration 0008; store/audit/chain.py): one row, the head's sequence and hash
# and a JWS over them made with the service's audit key (audit-key.jwk, not the token-signing
# key), written with every head move. `verify`
# checks it, so deleting entries from the end and moving the head back is noticed.
audit_checkpoint = Table(
    "audit_checkpoint",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),  # always 1
    Column("sequence", BigInteger, nullable=False),
    Column("hash", text_column(64), nullable=False),
    Column("signature", text_column(None), nullable=False),  # JWS compact serialization
)
