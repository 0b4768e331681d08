"""Token validation: every kind of bad token is refused with a message naming the check (and
never the token); good ones, RS256 and ES256, become a `Principal` with Graph's permissions."""

from __future__ import annotations

import time

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from joserfc import jws, jwt
from joserfc.jwk import ECKey, KeySet, OctKey, RSAKey
from joserfc.registry import HeaderParameter

from datapolicy.auth.keys import LocalKeys
from datapolicy.auth.tokens import MAX_TOKEN_LENGTH, TokenValidator, issue_token
from datapolicy.errors import Unauthenticated
from jwtkinds import AUDIENCE, ISSUER, REFUSED_KINDS, claims, refused, sign

SKEW = 60


class StaticKeys:
    """Exactly these keys, as a configured JWKS would give them."""

    def __init__(self, *keys: ECKey | RSAKey):
        self._keys = KeySet([type(k).import_key(k.as_dict(private=False)) for k in keys])

    def key_set(self, kid: str | None) -> KeySet:
        return self._keys


@pytest.fixture(scope="module")
def es_key() -> ECKey:
    return ECKey.generate_key("P-256", auto_kid=True)


@pytest.fixture(scope="module")
def rs_key() -> RSAKey:
    return RSAKey.generate_key(2048, auto_kid=True)


@pytest.fixture(scope="module")
def validator(es_key, rs_key) -> TokenValidator:
    return TokenValidator(
        StaticKeys(es_key, rs_key), issuer=ISSUER, audience=AUDIENCE, clock_skew=SKEW
    )


def refusal(validator: TokenValidator, token: str) -> str:
    with pytest.raises(Unauthenticated) as raised:
        validator.validate(token)
    assert token not in raised.value.message
    assert raised.value.code == "InvalidAuthenticationToken"
    return raised.value.message


@pytest.mark.parametrize("key_name", ["es_key", "rs_key"])
@pytest.mark.parametrize("kind", REFUSED_KINDS)
def test_every_kind_of_bad_token_is_refused_naming_the_check(validator, request, key_name, kind):
    token, expected = refused(request.getfixturevalue(key_name))[kind]
    assert expected in refusal(validator, token)


def test_a_valid_token_gives_the_principal_with_scopes_and_roles(validator, es_key, rs_key):
    for key in (es_key, rs_key):
        principal = validator.validate(
            sign(key, claims(scp="User.Read.All openid", roles=["User.Export.All"], azp="app-1"))
        )
        assert principal.subject == "tester"
        assert principal.app_id == "app-1"
        assert principal.permissions == {"User.Read.All", "openid", "User.Export.All"}


def test_rfc_9068_scope_and_client_id_as_keycloak_and_auth0_send_them(validator, es_key):
    principal = validator.validate(
        sign(es_key, claims(scope="openid User.Export.All", client_id="kc-client"))
    )
    assert principal.permissions == {"openid", "User.Export.All"}
    assert principal.app_id == "kc-client"


def test_entra_id_v1_claims_object_id_and_appid(validator, es_key):
    token = sign(es_key, claims(sub="pairwise", oid="object-id", appid="entra-app"))
    principal = validator.validate(token)
    assert (principal.subject, principal.app_id, principal.permissions) == (
        "object-id",
        "entra-app",
        frozenset(),
    )


def test_exp_is_required_and_the_clock_skew_applies(validator, es_key):
    assert "'exp'" in refusal(validator, sign(es_key, claims(exp=None)))
    now = int(time.time())
    # Within the skew, on both sides: still valid.
    validator.validate(sign(es_key, claims(exp=now - SKEW // 2, iat=now - 600)))
    validator.validate(sign(es_key, claims(nbf=now + SKEW // 2)))
    assert "expired" in refusal(validator, sign(es_key, claims(exp=now - SKEW - 5)))
    assert "future" in refusal(validator, sign(es_key, claims(iat=now + SKEW + 60)))


def test_a_token_needs_a_subject(validator, es_key):
    assert "subject" in refusal(validator, sign(es_key, claims(sub=None)))


@pytest.mark.parametrize(
    ("claim", "value", "named"),
    [
        ("scp", 5, "'scp'"),
        ("scope", {"a": 1}, "'scope'"),
        ("roles", "User.Export.All", "'roles'"),
        ("roles", [1], "'roles'"),
        ("azp", 3, "(azp)"),
        ("sub", 7, "'sub'"),
        ("exp", 10**400, "(exp)"),  # in the future, and no float holds it: was a 500
    ],
)
def test_claims_of_the_wrong_type_are_refused(validator, es_key, claim, value, named):
    assert named in refusal(validator, sign(es_key, claims(**{claim: value})))


def test_audience_may_be_one_of_a_list(validator, es_key):
    validator.validate(sign(es_key, claims(aud=["api://other", AUDIENCE])))
    assert "audience" in refusal(validator, sign(es_key, claims(aud=["api://other"])))


def test_an_unknown_kid_is_refused(validator, es_key):
    assert "unknown key" in refusal(validator, sign(es_key, claims(), kid="not-a-known-kid"))


def test_hs256_keyed_with_the_public_key_is_refused(validator, rs_key):
    """The classic confusion: HMAC with the RSA public key as the secret."""
    public = OctKey.import_key(rs_key.as_dict(private=False)["n"].encode())
    hs = jwt.encode({"alg": "HS256", "kid": rs_key.kid}, claims(), public, ["HS256"])
    assert "algorithm" in refusal(validator, hs)


def test_a_header_kid_naming_a_key_of_another_type_is_a_bad_signature(validator, es_key, rs_key):
    token = sign(rs_key, claims(), kid=es_key.kid)
    assert "signature" in refusal(validator, token)


def test_overlong_and_non_ascii_tokens_are_malformed(validator):
    assert "too long" in refusal(validator, "a" * (MAX_TOKEN_LENGTH + 1))
    assert "malformed" in refusal(validator, "é.é.é")


def test_issued_tokens_are_valid_for_their_lifetime_only():
    key = ECKey.generate_key("P-256", auto_kid=True)
    validator = TokenValidator(LocalKeys(key), issuer="i", audience="a", clock_skew=0)
    token = issue_token(
        key, issuer="i", audience="a", permissions=["User.Export.All"], lifetime=60, subject="me"
    )
    principal = validator.validate(token)
    assert principal.permissions == {"User.Export.All"}
    assert principal.subject == "me"
    old = issue_token(
        key,
        issuer="i",
        audience="a",
        permissions=["User.Export.All"],
        lifetime=60,
        subject="me",
        now=time.time() - 120,
    )
    assert "expired" in refusal(validator, old)


TYPES = st.one_of(
    st.none(),
    st.sampled_from(
        ["at+jwt", "AT+JWT", "application/at+jwt", "JWT", "jwt", "JOSE", "id_token+jwt"]
    ),
    st.text(max_size=12),
    st.integers(),
)
ID_CLAIMS = st.dictionaries(
    st.sampled_from(["nonce", "at_hash", "c_hash", "s_hash", "typ"]),
    st.one_of(st.sampled_from(["Bearer", "bearer", "ID", "Refresh", "abc"]), st.integers()),
    max_size=2,
)


# joserfc refuses to sign a header whose typ is not a string; a hostile token may have one.
ANY_TYP = jws.JWSRegistry(header_registry={"typ": HeaderParameter("Type", lambda value: None)})


def is_access_token(header_typ: object, extra: dict[str, object]) -> bool:
    """The reference: RFC 9068's at+jwt, JWT or no typ; none of an ID token's claims; a claims
    `typ` (Keycloak's) only if it says Bearer."""
    access_types = {"at+jwt", "application/at+jwt", "jwt"}
    if header_typ is not None and not (
        isinstance(header_typ, str) and header_typ.lower() in access_types
    ):
        return False
    if any(name in extra for name in ("nonce", "at_hash", "c_hash", "s_hash")):
        return False
    typ = extra.get("typ")
    return typ is None or (isinstance(typ, str) and typ.lower() == "bearer")


@example(header_typ="JWT", extra={"nonce": "abc"})  # Entra ID's ID token: typ JWT, a nonce
@example(header_typ="JWT", extra={"typ": "ID"})  # Keycloak's ID token
@example(header_typ=None, extra={"typ": "Bearer"})  # Keycloak's access token
@example(header_typ="at+jwt", extra={})
@settings(max_examples=150, deadline=None)
@given(header_typ=TYPES, extra=ID_CLAIMS)
def test_only_access_tokens_are_accepted_never_an_id_token(validator, es_key, header_typ, extra):
    header = {"alg": "ES256", "kid": es_key.kid}
    if header_typ is not None:
        header["typ"] = header_typ
    payload = claims(roles=["User.Export.All"], **extra)
    token = jwt.encode(header, payload, es_key, registry=ANY_TYP, default_type=None)
    if is_access_token(header_typ, extra):
        assert validator.validate(token).subject == "tester"
    else:
        assert "is not an access token" in refusal(validator, token)


def test_issued_tokens_say_they_are_access_tokens(es_key):
    token = issue_token(
        es_key, issuer=ISSUER, audience=AUDIENCE, permissions=(), lifetime=60, subject="s"
    )
    assert jwt.decode(token, es_key).header["typ"] == "at+jwt"
