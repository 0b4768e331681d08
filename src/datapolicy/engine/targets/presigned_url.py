"""SigV4 presigned S3 URLs: recognising them, and checking what can be checked without using them.

A presigned URL carries its authentication in the query (`X-Amz-Algorithm`, `X-Amz-Credential`,
`X-Amz-Date`, `X-Amz-Expires`, `X-Amz-SignedHeaders`, `X-Amz-Signature`). Whether the signature
is right, and whether it was made for PUT, only the storage can tell, and only by answering a
request that would create the object; so here we check the rest:

- the endpoint is permitted: a bucket of a `[[storage.s3]]` entry on that entry's endpoint (path
  style `ENDPOINT/BUCKET/KEY` or virtual-hosted `BUCKET.ENDPOINT-HOST/KEY`), the operator having
  trusted it with credentials already; or a host in `[storage.s3_presigned] allowed_hosts`. Not
  every bucket on a configured endpoint: `s3.eu-west-1.amazonaws.com` serves anyone's bucket;
- https, or plain http where the operator chose it: to a `[[storage.s3]]` endpoint configured
  with http, or to a loopback host listed exactly (personal data and a write credential never
  cross a network in clear text);
- every SigV4 field is there once, the algorithm is AWS4-HMAC-SHA256, the URL names an object;
- it signs no header but `host` and `content-type`: we cannot know the values of others;
- it has not expired, is not dated in the future, and (at request time) stays valid long enough
  for the package to be made and sent.

SigV2 URLs (`AWSAccessKeyId`, `Signature`, `Expires`) are refused: S3 no longer accepts them from
new accounts and they cannot say how long they were meant to last.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from datapolicy.config import StorageConfig
from datapolicy.engine.targets.base import StorageLocationError
from datapolicy.engine.targets.hosts import HttpURL, host_allowed, is_loopback, listed_exactly

ALGORITHM = "AWS4-HMAC-SHA256"
SIGV4_FIELDS = (
    "X-Amz-Algorithm",
    "X-Amz-Credential",
    "X-Amz-Date",
    "X-Amz-Expires",
    "X-Amz-SignedHeaders",
    "X-Amz-Signature",
)
SIGV2_FIELDS = ("awsaccesskeyid", "signature")
MAX_EXPIRES = 7 * 24 * 3600  # the longest validity S3 accepts for a SigV4 presigned URL
FUTURE_SKEW = timedelta(minutes=15)  # S3's own tolerance for a request's clock
SENDABLE_HEADERS = frozenset({"host", "content-type"})  # we send Content-Type: application/zip
_DEFAULT_PORTS = {"http": 80, "https": 443}
_HEADER_NAME = re.compile(r"^[a-z0-9-]{1,64}$")


@dataclass(frozen=True)
class PresignedURL:
    """A presigned PUT URL that passed the checks that need no request.

    `url` is the whole URL, signature included, rebuilt from the checked components (`hosts`):
    it is sent, never shown. `where` is for messages."""

    url: str
    where: str
    signed_at: datetime
    expires_at: datetime

    def check_validity(self, now: datetime, minimum: timedelta) -> None:
        """StorageLocationError unless the URL is valid now and for at least `minimum` more."""
        if now >= self.expires_at:
            raise StorageLocationError(
                f"The presigned S3 URL expired at {_iso(self.expires_at)}: sign a new one."
            )
        if self.signed_at > now + FUTURE_SKEW:
            raise StorageLocationError(
                f"The presigned S3 URL is dated {_iso(self.signed_at)}, in the future: check "
                "the clock of the machine that signed it."
            )
        left = self.expires_at - now
        if left < minimum:
            raise StorageLocationError(
                f"The presigned S3 URL expires at {_iso(self.expires_at)}, in "
                f"{_duration(left)}: it must be valid for at least {_duration(minimum)} when the "
                "export is requested, so that the package can be made and sent before it expires."
            )


def query_fields(query: str) -> list[tuple[str, str]]:
    return parse_qsl(query, keep_blank_values=True)


def is_sigv4(fields: list[tuple[str, str]]) -> bool:
    """Whether the query carries any SigV4 query-authentication field."""
    names = {field.lower() for field in SIGV4_FIELDS}
    return any(key.lower() in names for key, _ in fields)


def is_sigv2(fields: list[tuple[str, str]]) -> bool:
    return set(SIGV2_FIELDS) <= {key.lower() for key, _ in fields}


def on_s3_host(parts: HttpURL, storage: StorageConfig) -> bool:
    """Whether the URL names an S3 endpoint that storage knows (for a clearer refusal)."""
    hostname, port = parts.hostname, parts.port
    return host_allowed(hostname, port, storage.s3_presigned.allowed_hosts) or any(
        _configured_bucket(parts, config) is not None for config in storage.s3
    )


def parse_presigned(parts: HttpURL, storage: StorageConfig) -> PresignedURL:
    """The URL `parts` checked as a presigned PUT URL (see the module's docstring), or
    StorageLocationError saying what is wrong."""
    where = f"{parts.origin}{parts.path}"
    _check_endpoint(parts, storage, parts.host)
    values = _sigv4_values(query_fields(parts.query))
    if parts.fragment or not parts.path.strip("/") or parts.path.endswith("/"):
        raise StorageLocationError(
            "The presigned S3 URL must name an object (BUCKET/KEY), without a fragment."
        )
    if values["X-Amz-Algorithm"] != ALGORITHM:
        raise StorageLocationError(
            f"The presigned S3 URL must be signed with SigV4: X-Amz-Algorithm={ALGORITHM}."
        )
    try:
        signed_at = datetime.strptime(values["X-Amz-Date"], "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
    except ValueError:
        raise StorageLocationError(
            "The presigned S3 URL's X-Amz-Date is not a time (YYYYMMDDTHHMMSSZ)."
        ) from None
    expires = values["X-Amz-Expires"]
    if not expires.isdigit() or not 1 <= int(expires) <= MAX_EXPIRES:
        raise StorageLocationError(
            "The presigned S3 URL's X-Amz-Expires must be a number of seconds from 1 to "
            f"{MAX_EXPIRES} (7 days)."
        )
    signed = {name.strip().lower() for name in values["X-Amz-SignedHeaders"].split(";")}
    if "host" not in signed or not signed <= SENDABLE_HEADERS:
        others = sorted(h for h in signed - SENDABLE_HEADERS if _HEADER_NAME.match(h))
        raise StorageLocationError(
            "The presigned S3 URL must sign the host header and no header but content-type "
            "(which must then be application/zip): the package cannot be sent with values we "
            f"do not know{' (it signs ' + ', '.join(others) + ')' if others else ''}."
        )
    return PresignedURL(parts.url, where, signed_at, signed_at + timedelta(seconds=int(expires)))


def _check_endpoint(parts: HttpURL, storage: StorageConfig, host: str) -> None:
    scheme = parts.scheme
    hostname, port = parts.hostname, parts.port
    allowed = storage.s3_presigned.allowed_hosts
    configured = [
        endpoint_scheme
        for config in storage.s3
        if (endpoint_scheme := _configured_bucket(parts, config)) is not None
    ]
    if not configured and not host_allowed(hostname, port, allowed):
        raise StorageLocationError(
            f"The S3 endpoint '{host}' is not allowed for presigned URLs: list it in "
            "[storage.s3_presigned] allowed_hosts, or presign for a bucket of a [[storage.s3]] "
            "entry on that entry's endpoint, to export there."
        )
    plain_http_allowed = "http" in configured or (
        listed_exactly(hostname, port, allowed) and is_loopback(hostname)
    )
    if scheme != "https" and not plain_http_allowed:
        raise StorageLocationError(
            f"The S3 endpoint '{host}' must be reached over https (plain http only for a "
            "[[storage.s3]] endpoint configured with http, or a loopback host listed exactly in "
            "[storage.s3_presigned] allowed_hosts)."
        )


def _configured_bucket(parts: HttpURL, config: Any) -> str | None:
    """The scheme of `config`'s endpoint if the URL names one of its buckets on its host and
    port (path style or virtual-hosted), else None."""
    endpoint = urlsplit(config.endpoint_url)
    endpoint_scheme = endpoint.scheme.lower()
    default_port = _DEFAULT_PORTS.get(endpoint_scheme)
    try:
        # http://HOST/... on an https endpoint matches it, to be refused for its scheme
        if (parts.port or default_port) != (endpoint.port or default_port):
            return None
    except ValueError:  # a malformed port in the configured endpoint
        return None
    hostname = parts.hostname
    endpoint_host = (endpoint.hostname or "").lower()
    if not endpoint_host:
        return None
    if hostname == endpoint_host:
        bucket = parts.path.lstrip("/").split("/", 1)[0]
    elif hostname.endswith(f".{endpoint_host}"):
        bucket = hostname.removesuffix(f".{endpoint_host}")
    else:
        return None
    return endpoint_scheme if bucket in config.buckets else None


def _sigv4_values(fields: list[tuple[str, str]]) -> dict[str, str]:
    """The SigV4 fields by their canonical names, each present exactly once."""
    canonical = {name.lower(): name for name in SIGV4_FIELDS}
    values: dict[str, str] = {}
    for key, value in fields:
        name = canonical.get(key.lower())
        if name is None:
            continue
        if name in values:
            raise StorageLocationError(f"The presigned S3 URL repeats {name}.")
        values[name] = value
    if not values.get("X-Amz-Signature"):
        raise StorageLocationError(
            "The presigned S3 URL carries no signature (X-Amz-Signature): presign it for PUT "
            "with SigV4."
        )
    missing = [name for name in SIGV4_FIELDS if not values.get(name)]
    if missing:
        raise StorageLocationError(
            f"The presigned S3 URL lacks {', '.join(missing)}: presign it for PUT with SigV4."
        )
    return values


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _duration(span: timedelta) -> str:
    seconds = max(0, int(span.total_seconds()))
    if seconds < 120:
        return f"{seconds} seconds"
    return f"{seconds // 60} minutes"
