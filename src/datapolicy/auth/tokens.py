"""Access tokens: checking one (signature, algorithm, issuer, audience, times) into a
`Principal`, and issuing one with the service's own key (`datapolicy token`).

Tokens are JWTs as Entra ID, Keycloak or Auth0 issue them for an API: RS256 or ES256, a `kid`
naming the signing key, `iss`, `aud`, `exp` (required: a token without one would never expire),
optionally `nbf` and `iat`, and the permissions Graph's way: delegated ones as the
space-separated `scp` string (or RFC 9068's `scope`), application ones as the `roles` list.
Only access tokens: an OpenID Connect ID token for the same audience (a client's sign-in proof,
which may well be signed by the same keys) is refused, by its header `typ` and by the claims
only ID tokens carry (`ACCESS_TOKEN_TYPES`, `ID_TOKEN_CLAIMS`; docs/security.md).
Every failure is an `Unauthenticated` whose message names the check that failed; none repeats
the token.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import Any

from joserfc import jws, jwt
from joserfc.errors import (
    ClaimError,
    ExpiredTokenError,
    InvalidKeyIdError,
    JoseError,
    MissingClaimError,
)
from joserfc.jwk import ECKey

from datapolicy.auth.keys import SIGNING_ALGORITHM, KeySource
from datapolicy.errors import Unauthenticated

ALGORITHMS = ("RS256", "ES256")
_SIGNATURES = jws.JWSRegistry(algorithms=ALGORITHMS)
# Far above any identity provider's tokens (Entra ID's are 1-3 KiB); parsing stops here.
MAX_TOKEN_LENGTH = 16 * 1024

# The header `typ` values of access tokens (compared without case): RFC 9068's `at+jwt` (its
# media-type spelling too), `JWT` as Entra ID, Auth0 and Keycloak send it, or none at all.
ACCESS_TOKEN_TYPES = frozenset({"at+jwt", "application/at+jwt", "jwt"})
# Claims that only OpenID Connect ID tokens carry: the sign-in request's `nonce`, and the hashes
# binding an ID token to the access token or code issued with it. Keycloak also says `typ: ID`
# in the claims, where its access tokens say `Bearer`.
ID_TOKEN_CLAIMS = ("nonce", "at_hash", "c_hash", "s_hash")
_NOT_AN_ACCESS_TOKEN = "Access token is not an access token: "

_CLAIM_PROBLEMS = {
    "iss": "Access token validation failure. Invalid issuer.",
    "aud": "Access token validation failure. Invalid audience.",
    "nbf": "Access token is not yet valid (nbf).",
    "iat": "Access token was issued in the future (iat).",
    "exp": "Access token has an invalid expiry (exp).",
}


@dataclass(frozen=True)
class Principal:
    """Who is calling, as the token says.

    `subject` is Entra ID's object id (`oid`) when the token has one, else `sub`; `app_id` is the
    client application (`azp`, Entra ID v1's `appid`, or RFC 9068's `client_id`).
    """

    subject: str
    app_id: str | None
    permissions: frozenset[str]
    expires_at: float


class TokenValidator:
    def __init__(
        self,
        keys: KeySource,
        *,
        issuer: str,
        audience: str,
        clock_skew: int,
        now: Callable[[], float] = time.time,
    ):
        self.keys = keys
        self._claims = jwt.JWTClaimsRegistry(
            now=lambda: int(now()),
            leeway=clock_skew,
            iss={"essential": True, "value": issuer},
            aud={"essential": True, "value": audience},
            exp={"essential": True},
        )

    def validate(self, token: str) -> Principal:
        """The principal of a valid token; `Unauthenticated` naming the failed check otherwise.
        (`Unavailable` when the keys cannot be had at all: the token may well be valid.)"""
        claims = self._verified_claims(token)
        try:
            self._claims.validate(claims)
        except ExpiredTokenError:
            raise Unauthenticated("Access token has expired.") from None
        except MissingClaimError as exc:
            raise Unauthenticated(f"Access token has no '{exc.claim}' claim.") from None
        except ClaimError as exc:
            message = _CLAIM_PROBLEMS.get(exc.claim, f"Access token's '{exc.claim}' is invalid.")
            raise Unauthenticated(message) from None
        _check_access_token(claims)
        return _principal(claims)

    def _verified_claims(self, token: str) -> dict[str, Any]:
        if len(token) > MAX_TOKEN_LENGTH:
            raise Unauthenticated("Access token is too long.")
        try:
            signed = jws.extract_compact(token.encode("ascii"))
        except (JoseError, UnicodeEncodeError, ValueError):
            raise Unauthenticated("Access token is malformed: not a signed JWT.") from None
        header = signed.headers()
        if header.get("alg") not in ALGORITHMS:
            raise Unauthenticated(
                "Access token algorithm is not allowed: it must be RS256 or ES256."
            )
        kid = header.get("kid")
        if kid is not None and not isinstance(kid, str):
            raise Unauthenticated("Access token is malformed: its 'kid' is not a string.")
        typ = header.get("typ")
        if typ is not None and (not isinstance(typ, str) or typ.lower() not in ACCESS_TOKEN_TYPES):
            raise Unauthenticated(f"{_NOT_AN_ACCESS_TOKEN}its type (typ) must be at+jwt or JWT.")
        try:
            if not jws.validate_compact(signed, self.keys.key_set(kid), registry=_SIGNATURES):
                raise Unauthenticated("Access token signature is invalid.")
        except InvalidKeyIdError:
            raise Unauthenticated("Access token was signed with an unknown key (kid).") from None
        except JoseError:  # e.g. an RS256 header naming an EC key
            raise Unauthenticated("Access token signature is invalid.") from None
        try:
            claims = json.loads(signed.payload)
        except ValueError:
            claims = None
        if not isinstance(claims, dict):
            raise Unauthenticated("Access token is malformed: its claims are not a JSON object.")
        return claims


def _check_access_token(claims: dict[str, Any]) -> None:
    """Refuse an ID token whose header passed for an access token's (Entra ID's ID tokens say
    `typ: JWT` as its access tokens do): by the claims only ID tokens carry."""
    for name in ID_TOKEN_CLAIMS:
        if name in claims:
            raise Unauthenticated(f"{_NOT_AN_ACCESS_TOKEN}it has an ID token's '{name}' claim.")
    typ = claims.get("typ")
    if typ is not None and (not isinstance(typ, str) or typ.lower() != "bearer"):
        raise Unauthenticated(f"{_NOT_AN_ACCESS_TOKEN}its 'typ' claim is not Bearer.")


def _principal(claims: dict[str, Any]) -> Principal:
    subject = claims.get("oid") or claims.get("sub")
    if not isinstance(subject, str) or not subject:
        raise Unauthenticated("Access token has no subject (sub or oid).")
    app_id = claims.get("azp") or claims.get("appid") or claims.get("client_id")
    if app_id is not None and not isinstance(app_id, str):
        raise Unauthenticated("Access token's client application (azp) is not a string.")
    try:
        expires_at = float(claims["exp"])  # checked as an integer above: it may exceed a float
    except OverflowError:
        raise Unauthenticated(_CLAIM_PROBLEMS["exp"]) from None
    return Principal(
        subject=subject,
        app_id=app_id,
        permissions=_scopes(claims, "scp") | _scopes(claims, "scope") | _roles(claims.get("roles")),
        expires_at=expires_at,
    )


def _scopes(claims: dict[str, Any], name: str) -> frozenset[str]:
    """Delegated permissions: a space-separated string, in Graph's `scp` or RFC 9068's `scope`
    (Keycloak, Auth0); a list of names, as Okta sends `scp`, is taken too."""
    value = claims.get(name)
    if value is None:
        return frozenset()
    if isinstance(value, str):
        return frozenset(value.split())
    if isinstance(value, list) and all(isinstance(item, str) for item in value):
        return frozenset(value)
    raise Unauthenticated(f"Access token's '{name}' claim is not a string.")


def _roles(value: Any) -> frozenset[str]:
    """Application permissions: a list of names."""
    if value is None:
        return frozenset()
    if isinstance(value, list) and all(isinstance(item, str) for item in value):
        return frozenset(value)
    raise Unauthenticated("Access token's 'roles' claim is not a list of strings.")


def issue_token(
    key: ECKey,
    *,
    issuer: str,
    audience: str,
    permissions: Collection[str],
    lifetime: float,
    subject: str,
    now: float | None = None,
) -> str:
    """A token signed with the service's own key, holding `permissions` as application roles
    (no user signed in to get it, so they are not delegated scopes)."""
    issued = int(time.time() if now is None else now)
    claims = {
        "iss": issuer,
        "aud": audience,
        "sub": subject,
        "azp": "datapolicy-cli",
        "roles": sorted(permissions),
        "iat": issued,
        "nbf": issued,
        "exp": issued + int(lifetime),
        "jti": str(uuid.uuid4()),
    }
    header = {"alg": SIGNING_ALGORITHM, "kid": key.kid, "typ": "at+jwt"}  # RFC 9068
    return jwt.encode(header, claims, key, [SIGNING_ALGORITHM])
