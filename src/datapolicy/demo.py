"""Sample operations for the quick start, so that a fresh install has something to query.

Until the export engine exists nothing moves an operation forward, so the samples are plain
`notStarted` operations for a few made-up users. They are only created in an empty store.
"""

from __future__ import annotations

from datapolicy.odata.options import QueryOptions
from datapolicy.store import OperationStore

DEMO_USERS = (
    "5b1c43f2-8f4e-4f1e-9a38-2f1d8f3e0a11",
    "a7c9e5d3-1b2f-4c6a-8e0d-9f7b3a5c1e22",
    "c3e1a9f7-5d4b-4a2c-b8f6-1e0d9c7b5a33",
)


def seed_demo_operations(store: OperationStore, per_user: int = 4) -> int:
    """Create `per_user` operations for each demo user if the store is empty; returns how many."""
    if store.count(QueryOptions()) > 0:
        return 0
    created = 0
    for index in range(per_user):
        for user_id in DEMO_USERS:
            location = f"file:///exports/{user_id}/{index}" if index % 2 == 0 else None
            store.create(user_id, location)
            created += 1
    return created
