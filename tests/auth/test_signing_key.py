"""The service's own signing key: made once in the data directory, owner-only, and the same
key for every process that starts on that directory."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from joserfc.jwk import ECKey, RSAKey

from datapolicy.auth.keys import SIGNING_KEY_FILE, erasure_secret, signing_key
from datapolicy.errors import SigningKeyError


def test_the_key_is_made_once_p256_and_owner_only(tmp_path: Path):
    old_umask = os.umask(0)  # the most permissive umask must not loosen it
    try:
        key = signing_key(tmp_path / "data")
    finally:
        os.umask(old_umask)
    path = tmp_path / "data" / SIGNING_KEY_FILE
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert (key.is_private, key.get("crv"), key.alg) == (True, "P-256", "ES256")
    assert signing_key(tmp_path / "data").kid == key.kid
    assert [p.name for p in (tmp_path / "data").iterdir()] == [SIGNING_KEY_FILE]


@pytest.mark.e2e  # a `serve` process, a worker or another program on its port
def test_processes_starting_together_agree_on_one_key(tmp_path: Path):
    script = (
        "import sys; from pathlib import Path; from datapolicy.auth.keys import signing_key; "
        "print(signing_key(Path(sys.argv[1])).kid)"
    )
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", script, str(tmp_path)], stdout=subprocess.PIPE, text=True
        )
        for _ in range(6)
    ]
    kids = {process.communicate(timeout=60)[0].strip() for process in processes}
    assert len(kids) == 1
    assert kids == {signing_key(tmp_path).kid}
    assert not [p for p in tmp_path.iterdir() if p.name != SIGNING_KEY_FILE]


def test_a_key_others_may_read_is_refused(tmp_path: Path):
    signing_key(tmp_path)
    path = tmp_path / SIGNING_KEY_FILE
    path.chmod(0o640)
    with pytest.raises(SigningKeyError, match=r"owner only \(mode 0640\); run: chmod 600"):
        signing_key(tmp_path)


@pytest.mark.parametrize(
    "content",
    [
        "not json",
        json.dumps(ECKey.generate_key("P-256").as_dict(private=False)),
        json.dumps(ECKey.generate_key("P-384").as_dict(private=True)),
        json.dumps(RSAKey.generate_key(2048).as_dict(private=True)),
    ],
)
def test_a_key_file_that_is_not_a_p256_private_key_is_refused(tmp_path: Path, content: str):
    path = tmp_path / SIGNING_KEY_FILE
    path.write_text(content)
    path.chmod(0o600)
    with pytest.raises(SigningKeyError, match=r"signing-key\.jwk: not a"):
        signing_key(tmp_path)


def test_the_erasure_secret_is_made_once_owner_only_and_refused_when_readable(tmp_path: Path):
    path = tmp_path / "data" / "erasure-secret.key"
    secret = erasure_secret(path)
    assert len(secret) == 64
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert erasure_secret(path) == secret
    path.chmod(0o640)
    with pytest.raises(SigningKeyError, match="readable by its owner only"):
        erasure_secret(path)
