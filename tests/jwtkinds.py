"""Access tokens made by hand, good and bad, for the validator's and the API's tests.

`refused(key)` gives one token of every kind that must be refused with 401, each with a piece of
the message that must name the failed check. They are signed with `key` (the service's own key,
or a test key) except where the signature is the point.
"""

from __future__ import annotations

import base64
import json
import time
from typing import Any

from joserfc import jwt
from joserfc.jwk import ECKey, RSAKey

from datapolicy.config import AuthConfig

ISSUER = AuthConfig().issuer
AUDIENCE = AuthConfig().audience
REFUSED_KINDS = (
    "malformed",
    "expired",
    "not yet valid",
    "wrong issuer",
    "wrong audience",
    "bad signature",
    "alg none",
)


def claims(**changes: Any) -> dict[str, Any]:
    """Valid claims for the default issuer and audience, with `changes` (None removes one)."""
    now = int(time.time())
    base: dict[str, Any] = {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": "tester",
        "iat": now,
        "exp": now + 3600,
    }
    base.update(changes)
    return {name: value for name, value in base.items() if value is not None}


def sign(key: ECKey | RSAKey, payload: dict[str, Any], kid: str | None = None) -> str:
    """`payload` signed with `key` (ES256 or RS256 by its type), naming `kid` or the key's."""
    alg = "ES256" if isinstance(key, ECKey) else "RS256"
    return jwt.encode({"alg": alg, "kid": kid or key.kid}, payload, key, [alg])


def unsigned(payload: dict[str, Any]) -> str:
    """`alg: none`: a token anyone can make."""

    def part(value: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=").decode()

    return f"{part({'alg': 'none', 'typ': 'JWT'})}.{part(payload)}."


def refused(key: ECKey | RSAKey, **grant: Any) -> dict[str, tuple[str, str]]:
    """Kind -> (token, part of the message). `grant` adds claims (the permissions) to each, so
    that only the named defect is wrong."""
    now = int(time.time())
    impostor = (
        ECKey.generate_key("P-256", auto_kid=True)
        if isinstance(key, ECKey)
        else RSAKey.generate_key(2048, auto_kid=True)
    )
    return {
        "malformed": ("not-a-jwt", "malformed"),
        "expired": (sign(key, claims(exp=now - 600, iat=now - 4200, **grant)), "expired"),
        "not yet valid": (sign(key, claims(nbf=now + 600, **grant)), "not yet valid"),
        "wrong issuer": (sign(key, claims(iss="https://elsewhere", **grant)), "issuer"),
        "wrong audience": (sign(key, claims(aud="api://another", **grant)), "audience"),
        "bad signature": (sign(impostor, claims(**grant), kid=key.kid), "signature"),
        "alg none": (unsigned(claims(**grant)), "algorithm"),
    }
