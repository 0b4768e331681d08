"""Two attempts at one export in a local directory, the first still alive after its lease was
taken over (a worker paused past its lease, then woken): the stale attempt's discard leaves the
successor's partial file alone, so the successor publishes, and nothing else is left."""

from __future__ import annotations

from pathlib import Path

from datapolicy.engine.targets.local import LocalTarget

OPERATION = "0b5e3a4c-1d2f-4e6a-8b9c-0d1e2f3a4b5c"


def test_a_stale_attempt_discards_only_its_own_partial_file(tmp_path: Path):
    target = LocalTarget(tmp_path / "exports", (tmp_path,))
    stale = target.begin(OPERATION)
    stale.stream.write(b"the first attempt's bytes")
    successor = target.begin(OPERATION)  # the lease expired: another worker starts afresh
    successor.stream.write(b"the package")
    stale.stream.write(b" go on into a file no name points to")
    stale.discard()  # woken, its heartbeat refused: it gives up
    successor.finish()
    location = successor.publish()
    assert Path(location).read_bytes() == b"the package"
    assert sorted(path.name for path in (tmp_path / "exports").iterdir()) == [f"{OPERATION}.zip"]


def test_a_discarded_attempt_removes_its_partial_file(tmp_path: Path):
    target = LocalTarget(tmp_path / "exports", (tmp_path,))
    upload = target.begin(OPERATION)
    upload.stream.write(b"half a package")
    upload.discard()
    assert list((tmp_path / "exports").iterdir()) == []
