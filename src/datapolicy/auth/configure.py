"""The token validator that the `[auth]` configuration asks for."""

from __future__ import annotations

import logging
from functools import partial
from pathlib import Path

from datapolicy.auth.keys import (
    JwksKeys,
    LocalKeys,
    jwks_from_file,
    jwks_from_url,
    signing_key,
)
from datapolicy.auth.tokens import TokenValidator
from datapolicy.config import AuthConfig, ConfigError
from datapolicy.errors import Unavailable

logger = logging.getLogger(__name__)


def validator_for(config: AuthConfig, data_dir: Path) -> TokenValidator:
    """The validator the configuration asks for. A JWKS file that cannot be read stops the
    start (`ConfigError`); a JWKS URL that cannot be fetched yet is only a warning, since the
    identity provider may come up later."""
    if config.jwks_file is not None:
        try:
            initial = jwks_from_file(config.jwks_file)
        except (OSError, ValueError) as exc:
            raise ConfigError(f"[auth] jwks_file: {exc}") from None
        # Reading a local file costs about what checking a signature does: no need to space
        # out the reads, and a replaced file is seen by the first token that needs it.
        keys: LocalKeys | JwksKeys = JwksKeys(
            partial(jwks_from_file, config.jwks_file), initial=initial, min_interval=0
        )
        source = f"the JWKS file {config.jwks_file}"
    elif config.jwks_url is not None:
        keys = JwksKeys(partial(jwks_from_url, config.jwks_url))
        try:
            keys.key_set(None)
        except Unavailable:
            logger.warning(
                "no keys from %s yet: every request is refused until there are", config.jwks_url
            )
        source = f"the JWKS at {config.jwks_url}"
    else:
        keys = LocalKeys(signing_key(data_dir))
        source = "the service's own key (datapolicy token makes tokens)"
    logger.info(
        "access tokens: signed by %s, issuer %r, audience %r",
        source,
        config.issuer,
        config.audience,
    )
    return TokenValidator(
        keys, issuer=config.issuer, audience=config.audience, clock_skew=config.clock_skew
    )
