"""A configured JWKS, served by a loopback HTTP server as an identity provider would: fetched
once and cached, fetched again when a token names a key it does not hold (key rotation), but
at most once per interval, and kept through a provider's outage."""

from __future__ import annotations

import json
from functools import partial
from pathlib import Path

import pytest
from joserfc.jwk import ECKey, OctKey, RSAKey

from datapolicy.auth.configure import validator_for
from datapolicy.auth.keys import JwksKeys, jwks_from_url, parse_jwks
from datapolicy.auth.tokens import TokenValidator
from datapolicy.config import AuthConfig, ConfigError
from datapolicy.errors import Unauthenticated, Unavailable
from jwksserver import serve_jwks
from jwtkinds import AUDIENCE, ISSUER, claims, sign


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def validator(keys: JwksKeys) -> TokenValidator:
    return TokenValidator(keys, issuer=ISSUER, audience=AUDIENCE, clock_skew=60)


def test_the_key_set_is_fetched_once_then_cached():
    key = RSAKey.generate_key(2048, auto_kid=True)
    with serve_jwks(key) as jwks:
        check = validator(JwksKeys(partial(jwks_from_url, jwks.url)))
        for _ in range(5):
            check.validate(sign(key, claims()))
        assert jwks.fetches == 1


def test_an_unknown_kid_fetches_again_but_at_most_once_per_interval():
    old = ECKey.generate_key("P-256", auto_kid=True)
    new = RSAKey.generate_key(2048, auto_kid=True)
    clock = Clock()
    with serve_jwks(old) as jwks:
        keys = JwksKeys(partial(jwks_from_url, jwks.url), min_interval=60, clock=clock)
        check = validator(keys)
        check.validate(sign(old, claims()))
        assert jwks.fetches == 1

        jwks.keys = [old, new]  # the provider rotates
        clock.now += 61
        check.validate(sign(new, claims()))
        assert jwks.fetches == 2

        # Made-up kids: one more fetch per interval, however many tokens name them.
        clock.now += 61
        for attempt in range(10):
            with pytest.raises(Unauthenticated, match="unknown key"):
                check.validate(sign(new, claims(), kid=f"made-up-{attempt}"))
        assert jwks.fetches == 3
        # Known keys go on working without fetching.
        check.validate(sign(old, claims()))
        check.validate(sign(new, claims()))
        assert jwks.fetches == 3


def test_a_rotation_within_the_interval_is_seen_after_it():
    old = ECKey.generate_key("P-256", auto_kid=True)
    new = ECKey.generate_key("P-256", auto_kid=True)
    clock = Clock()
    with serve_jwks(old) as jwks:
        check = validator(JwksKeys(partial(jwks_from_url, jwks.url), min_interval=60, clock=clock))
        check.validate(sign(old, claims()))
        jwks.keys = [new]
        with pytest.raises(Unauthenticated, match="unknown key"):
            check.validate(sign(new, claims()))  # fetched at 1000: too soon
        clock.now += 60
        check.validate(sign(new, claims()))
        assert jwks.fetches == 2


def test_the_set_is_refreshed_after_max_age_and_kept_through_an_outage():
    key = ECKey.generate_key("P-256", auto_kid=True)
    clock = Clock()
    with serve_jwks(key) as jwks:
        keys = JwksKeys(
            partial(jwks_from_url, jwks.url), max_age=3600, min_interval=60, clock=clock
        )
        check = validator(keys)
        check.validate(sign(key, claims()))
        clock.now += 3600
        jwks.failing = True
        check.validate(sign(key, claims()))  # the fetch failed: the cached keys still serve
        assert jwks.fetches == 2
        clock.now += 30
        check.validate(sign(key, claims()))  # no new attempt within the interval
        assert jwks.fetches == 2
        jwks.failing = False
        clock.now += 60
        check.validate(sign(key, claims()))
        assert jwks.fetches == 3


def test_without_any_keys_the_answer_is_unavailable_not_unauthenticated():
    key = ECKey.generate_key("P-256", auto_kid=True)
    with serve_jwks(key) as jwks:
        jwks.failing = True
        check = validator(JwksKeys(partial(jwks_from_url, jwks.url)))
        with pytest.raises(Unavailable):
            check.validate(sign(key, claims()))


def test_only_rsa_and_ec_public_keys_are_taken():
    ec = ECKey.generate_key("P-256", auto_kid=True)
    secret = OctKey.generate_key(256, auto_kid=True)
    document = {"keys": [ec.as_dict(private=True), secret.as_dict(private=True)]}
    keys = list(parse_jwks(json.dumps(document).encode(), "test"))
    assert [(k.key_type, k.kid, k.is_private) for k in keys] == [("EC", ec.kid, False)]
    for bad in (b"{}", b"[]", b"not json", json.dumps({"keys": [secret.as_dict()]}).encode()):
        with pytest.raises(ValueError, match="not a JWKS with RSA or EC keys"):
            parse_jwks(bad, "test")


def test_a_jwks_file_is_read_again_on_an_unknown_kid(tmp_path: Path):
    old = ECKey.generate_key("P-256", auto_kid=True)
    new = ECKey.generate_key("P-256", auto_kid=True)
    path = tmp_path / "jwks.json"
    path.write_text(json.dumps({"keys": [old.as_dict(private=False)]}))
    config = AuthConfig(jwks_file=path, issuer=ISSUER, audience=AUDIENCE)
    check = validator_for(config, tmp_path / "data")
    check.validate(sign(old, claims()))
    path.write_text(json.dumps({"keys": [new.as_dict(private=False)]}))
    check.validate(sign(new, claims()))
    assert not (tmp_path / "data").exists(), "no local key is made when a JWKS is configured"


def test_a_missing_jwks_file_stops_the_start(tmp_path: Path):
    config = AuthConfig(jwks_file=tmp_path / "absent.json", issuer=ISSUER, audience=AUDIENCE)
    with pytest.raises(ConfigError, match=r"\[auth\] jwks_file: .*absent\.json"):
        validator_for(config, tmp_path)
