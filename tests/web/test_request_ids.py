"""Request ids (web/middleware/pipeline.py `new_request_id`): version-4 UUIDs, as
`str(uuid.uuid4())` gives, made from random digits read a few hundred ids at a time."""

from __future__ import annotations

import uuid

from datapolicy.web.middleware.pipeline import _IDS_A_READ, new_request_id


def test_request_ids_are_distinct_version_4_uuids_across_reads_of_the_random_source():
    ids = [new_request_id() for _ in range(3 * _IDS_A_READ + 1)]
    assert len(set(ids)) == len(ids)
    for text in ids:
        parsed = uuid.UUID(text)
        assert str(parsed) == text
        assert parsed.version == 4
        assert parsed.variant == uuid.RFC_4122
