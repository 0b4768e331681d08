"""The keys that tokens are checked against.

Two kinds of source:

- `LocalKeys`: the service's own ES256 key, made on first start in the data directory (owner-only,
  0600) so that the embedded default is secure with nothing configured; `datapolicy token` signs
  with it.
- `JwksKeys`: an identity provider's JWKS, from a URL or a file. It is cached; a token whose
  `kid` is not in the cached set makes it fetch again (at most once a minute), because that is how
  a provider's key rotation first shows. PyJWT's client does not do this, which is one reason
  joserfc is used.

Only RSA and EC public keys are taken from a JWKS: the accepted algorithms are RS256 and ES256,
and a symmetric key in a public key set could only be a mistake.
"""

from __future__ import annotations

import json
import logging
import os
import stat
import threading
import time
import urllib.request
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

from joserfc.errors import JoseError
from joserfc.jwk import ECKey, KeySet

from datapolicy.errors import SigningKeyError, Unavailable

logger = logging.getLogger(__name__)

SIGNING_KEY_FILE = "signing-key.jwk"
# The audit trail's checkpoints are signed with a key of their own (store/audit/chain.py): a
# service that takes an identity provider's tokens has no token-signing key, and one who may mint
# tokens need not be one who may vouch for the trail.
AUDIT_KEY_FILE = "audit-key.jwk"
SIGNING_ALGORITHM = "ES256"
_KEY_TYPES = ("RSA", "EC")
_MAX_JWKS_BYTES = 1 << 20
_FETCH_TIMEOUT_S = 5


class KeySource(Protocol):
    def key_set(self, kid: str | None) -> KeySet:
        """The keys a token with this `kid` header may be signed with."""
        ...


class LocalKeys:
    """The public half of the service's own signing key."""

    def __init__(self, signing_key: ECKey):
        self._keys = KeySet([ECKey.import_key(signing_key.as_dict(private=False))])

    def key_set(self, kid: str | None) -> KeySet:
        return self._keys


def audit_key(data_dir: Path) -> ECKey:
    """The key that signs the audit trail's checkpoints, made like the signing key."""
    return signing_key(data_dir, AUDIT_KEY_FILE)


def signing_key(data_dir: Path, name: str = SIGNING_KEY_FILE) -> ECKey:
    """The service's signing key in `data_dir` (or the key in file `name` there), made (P-256,
    mode 0600) if there is none yet (`create_owner_only`). A key file that cannot be used (readable
    by others, not a P-256 private key) is a SigningKeyError.
    """
    path = data_dir / name
    if not path.exists():
        key = ECKey.generate_key(
            "P-256", parameters={"alg": SIGNING_ALGORITHM, "use": "sig"}, auto_kid=True
        )
        if create_owner_only(path, json.dumps(key.as_dict(private=True)).encode()):
            logger.info("created the signing key %s", path)
    return _read_signing_key(path)


def erasure_secret(path: Path, *, create: bool = True) -> bytes:
    """The HMAC key of erasure's `hash` mask in the file at `path`, made (32 random bytes, hex,
    mode 0600) if there is none yet and `create`. Kept apart from the signing key: masked values
    must stay comparable when the token keys are rotated. A file readable by others, or holding
    fewer than 16 bytes, or none where it is not to be made, is a SigningKeyError."""
    if not path.exists():
        if not create:
            raise SigningKeyError(f"{path}: there is no erasure hash secret here")
        if create_owner_only(path, os.urandom(32).hex().encode()):
            logger.info("created the erasure hash secret %s", path)
    _require_owner_only(path, "the erasure hash secret")
    secret = path.read_bytes().strip()
    if len(secret) < 16:
        raise SigningKeyError(f"{path}: the erasure hash secret is shorter than 16 bytes")
    return secret


def create_owner_only(path: Path, content: bytes) -> bool:
    """Write `content` to a new file at `path`, mode 0600 whatever the umask; False (and
    nothing written) if another process made `path` first. Several processes may start on one
    data directory at once: the content is written to a private temporary file and linked into
    place, which fails if the file exists, so every process ends up reading the same content
    and no one reads a half-written file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.parent / f".{path.name}.{uuid.uuid4().hex}"
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.fchmod(descriptor, 0o600)  # whatever the umask
        with os.fdopen(descriptor, "wb") as file:
            file.write(content)
            file.flush()
            os.fsync(file.fileno())
        os.link(temporary, path)
        return True
    except FileExistsError:
        return False
    finally:
        temporary.unlink()


def _require_owner_only(path: Path, what: str) -> None:
    """A SigningKeyError unless the key file at `path` is readable by its owner alone."""
    mode = path.stat().st_mode
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise SigningKeyError(
            f"{path}: {what} must be readable by its owner only "
            f"(mode {stat.S_IMODE(mode):04o}); run: chmod 600 {path}"
        )


def _read_signing_key(path: Path) -> ECKey:
    _require_owner_only(path, "the token signing key")
    try:
        key = ECKey.import_key(json.loads(path.read_text(encoding="utf-8")))
    except (ValueError, JoseError) as exc:
        raise SigningKeyError(f"{path}: not a usable signing key ({exc})") from None
    if not key.is_private or key.get("crv") != "P-256":
        raise SigningKeyError(f"{path}: not a P-256 private key")
    return key


class JwksKeys:
    """A JWKS from `load`, kept for `max_age` seconds and loaded again on an unknown `kid`, but
    never more often than every `min_interval` seconds (a flood of made-up `kid`s must not
    become a flood of requests to the identity provider)."""

    def __init__(
        self,
        load: Callable[[], KeySet],
        *,
        initial: KeySet | None = None,
        max_age: float = 3600,
        min_interval: float = 60,
        clock: Callable[[], float] = time.monotonic,
    ):
        self._load = load
        self._max_age = max_age
        self._min_interval = min_interval
        self._clock = clock
        self._keys = initial
        self._loaded_at = clock()
        self._tried_at: float | None = None if initial is None else self._loaded_at
        self._lock = threading.Lock()

    def key_set(self, kid: str | None) -> KeySet:
        keys = self._keys
        if keys is not None and self._clock() - self._loaded_at < self._max_age and _has(keys, kid):
            return keys
        with self._lock:  # one load at a time; the others then see its result
            if self._should_load(kid):
                self._reload()
            if self._keys is None:
                raise Unavailable("The keys to check access tokens against cannot be fetched.")
            return self._keys

    def _should_load(self, kid: str | None) -> bool:
        now = self._clock()
        if self._tried_at is not None and now - self._tried_at < self._min_interval:
            return False
        keys = self._keys
        return keys is None or now - self._loaded_at >= self._max_age or not _has(keys, kid)

    def _reload(self) -> None:
        self._tried_at = self._clock()
        try:
            self._keys = self._load()
            self._loaded_at = self._tried_at
        except (OSError, ValueError, JoseError) as exc:
            # Keep serving with the keys we have: a provider's outage must not lock users out.
            logger.warning("cannot load the JWKS: %s", exc)


def _has(keys: KeySet, kid: str | None) -> bool:
    """Whether `keys` can check a token with this `kid` (without one: any key may)."""
    return kid is None or any(key.kid == kid for key in keys)


def jwks_from_url(url: str) -> KeySet:
    with urllib.request.urlopen(url, timeout=_FETCH_TIMEOUT_S) as response:
        document = response.read(_MAX_JWKS_BYTES + 1)
    if len(document) > _MAX_JWKS_BYTES:
        raise ValueError(f"{url}: the JWKS is larger than {_MAX_JWKS_BYTES} bytes")
    return parse_jwks(document, url)


def jwks_from_file(path: Path) -> KeySet:
    return parse_jwks(path.read_bytes(), str(path))


def parse_jwks(document: bytes, origin: str) -> KeySet:
    """The RSA and EC public keys of a JWKS document."""
    try:
        keys = json.loads(document)["keys"]
        imported = KeySet.import_key_set({"keys": [k for k in keys if k.get("kty") in _KEY_TYPES]})
    except (ValueError, KeyError, TypeError, AttributeError, JoseError) as exc:
        raise ValueError(f"{origin}: not a JWKS with RSA or EC keys ({exc})") from None
    return KeySet([type(key).import_key(key.as_dict(private=False)) for key in imported])
