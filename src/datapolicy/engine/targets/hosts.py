"""http(s) storage URLs read the way the HTTP clients read them, and the allow-lists of storage
endpoints (`allowed_hosts`) they must pass: shared by the targets that take a URL from the
request (Azure Blob SAS URLs, presigned S3 URLs).

One parser decides both what is checked and what is connected to. A URL is split once, by
urllib3's `parse_url`: the parser with which urllib3 (under botocore, and under requests, azure-
core's transport) picks the host and port to connect to. Before that, anything on which parsers
could disagree is refused (docs/security.md, "Where packages may go"): a character outside RFC
3986 (a backslash, which urllib3 and WHATWG parsers take as the end of the host and `urlsplit`
does not; white space, quotes, non-ASCII), user information (`https://allowed.example@evil/`),
a host that is not plain ASCII (IDNA look-alikes: give the `xn--` form), percent-encoded or ending
in a dot, and a host that is neither a DNS host name (letters, digits and hyphens in dot-separated
labels, the subset of RFC 3986's reg-name that names a host) nor an IP literal: IPv4 in four
decimal numbers only (`127.1`, `2130706433`, `0x7f.1` are read by resolvers as 127.0.0.1), IPv6
in brackets without a zone id. The targets then hand their client `HttpURL.url` (or `origin`),
rebuilt from the checked components, never the string they were given.

An allow-list entry is `host`, `host:port` or `*.suffix`. A wildcard never matches an IP address,
a name of this machine or of a cloud metadata service (`SPECIAL_NAMES`), or a URL with an
explicit port, so that `*.example.com` cannot be stretched to a private address or another
service on the same machine; loopback, link-local, metadata and private endpoints (emulators,
test servers) must be listed exactly. Names are never resolved here: the allow-list trusts the
DNS of the names it lists (there is no lookup, so no rebinding window between a check and the
request, and no protection if a listed name points inside).
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable
from dataclasses import dataclass

from urllib3.exceptions import LocationParseError
from urllib3.util import parse_url

from datapolicy.engine.targets.base import StorageLocationError

# Names a wildcard never admits: this machine, and cloud metadata services (169.254.169.254 and
# fd00:ec2::254 are addresses, which no wildcard admits anyway).
SPECIAL_NAMES = frozenset(
    {
        "localhost",
        "metadata",
        "metadata.google.internal",
        "metadata.azure.internal",
        "instance-data",
    }
)
# RFC 3986 appendix B's regular expression, up to the authority: how the RFC itself splits a URI
# (and how every parser splits one made only of RFC 3986 characters).
_AUTHORITY = re.compile(r"^[^:/?#]+://(?P<authority>[^/?#]*)")
# A character RFC 3986 does not allow in a URI (it allows unreserved and reserved characters,
# and `%` only as `%HH`).
_NOT_URI_CHARACTER = re.compile(r"[^A-Za-z0-9\-._~:/?#\[\]@!$&'()*+,;=%]|%(?![0-9A-Fa-f]{2})")
# A DNS host name (RFC 1123): labels of letters, digits and hyphens, neither starting nor ending
# with a hyphen, at most 63 characters each and 253 in all.
_LABEL = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")
_NUMERIC_LABEL = re.compile(r"^(?:[0-9]+|0x[0-9a-f]*)$")


@dataclass(frozen=True)
class HttpURL:
    """An http(s) URL whose host passed the checks (`http_url`): the components that were
    checked, from which the URL a client is given is rebuilt."""

    scheme: str  # "http" or "https"
    hostname: str  # lower case; an IPv6 address without its brackets
    port: int | None  # as written, or None
    path: str
    query: str
    fragment: str

    @property
    def host(self) -> str:
        """`hostname[:port]` as a URL writes it (an IPv6 address in brackets)."""
        name = f"[{self.hostname}]" if ":" in self.hostname else self.hostname
        return f"{name}:{self.port}" if self.port is not None else name

    @property
    def origin(self) -> str:
        return f"{self.scheme}://{self.host}"

    @property
    def url(self) -> str:
        """The URL to send: the checked scheme, host, port, path and query (a fragment is
        never sent)."""
        return f"{self.origin}{self.path}{'?' + self.query if self.query else ''}"


def listed_exactly(hostname: str, port: int | None, entries: Iterable[str]) -> bool:
    """Whether `hostname` (with `port`, if the URL gives one) is an entry without a wildcard.
    An IPv6 address may be listed with or without brackets."""
    listed = {entry.lower() for entry in entries}
    names = {hostname, f"[{hostname}]"} if ":" in hostname else {hostname}
    if port is not None:
        return any(f"{name}:{port}" in listed for name in names)
    return bool(names & listed)


def host_allowed(hostname: str, port: int | None, entries: Iterable[str]) -> bool:
    """Whether an entry, exact or wildcard, admits `hostname` (and `port`)."""
    entries = tuple(entries)
    if listed_exactly(hostname, port, entries):
        return True
    for entry in entries:
        entry = entry.lower()
        if entry.startswith("*.") and port is None and hostname.endswith(entry[1:]):
            return not (is_ip(hostname) or is_special(hostname))
    return False


def is_special(hostname: str) -> bool:
    """Whether `hostname` names this machine or a cloud metadata service."""
    return hostname in SPECIAL_NAMES or hostname.endswith(".localhost")


def is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    return True


def is_loopback(host: str) -> bool:
    """Whether `host` is this machine: `localhost` or a loopback address (IPv4-mapped too)."""
    if host.lower() == "localhost":
        return True
    try:
        address = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    mapped = getattr(address, "ipv4_mapped", None)
    return (mapped or address).is_loopback


def http_url(location: str) -> HttpURL | None:
    """`location` read as an http(s) URL (see the module's docstring); None if it is not one
    (another scheme, or no host), so that a target that takes URLs can say "not mine" and let
    the next try. StorageLocationError for an http(s) URL whose host is ambiguous or malformed:
    no target may take it."""
    found = _AUTHORITY.match(location)
    if found is None or found.group(0).split(":", 1)[0].lower() not in ("http", "https"):
        return None
    authority = found["authority"]
    if not authority:
        return None
    _check_authority(authority, location)
    try:
        parts = parse_url(location)
    except LocationParseError:
        raise StorageLocationError(
            "The storage location is not a valid URL: its host or port is malformed."
        ) from None
    hostname = _checked_host(parts.host or "")
    if parts.port == 0:
        raise StorageLocationError("The storage location's port must be from 1 to 65535.")
    return HttpURL(
        scheme=parts.scheme or "",
        hostname=hostname,
        port=parts.port,
        path=parts.path or "",
        query=parts.query or "",
        fragment=parts.fragment or "",
    )


def _check_authority(authority: str, location: str) -> None:
    """StorageLocationError for what makes the host of the URL `location` ambiguous, with a
    reason."""
    if not authority.isascii():
        raise StorageLocationError(
            "The storage location's host is not plain ASCII: give an internationalised name in "
            "its IDNA form (xn--...)."
        )
    stray = _NOT_URI_CHARACTER.search(location)
    if stray is not None:
        raise StorageLocationError(
            f"The storage location is not a valid URL: it contains {stray.group(0)!r}, which "
            "RFC 3986 does not allow (such as a backslash, white space, a quote or a lone '%'; "
            "a client may read the host differently): percent-encode it."
        )
    if "@" in authority:
        raise StorageLocationError(
            "The storage location may not carry user information (user:password@ before the "
            "host): credentials belong in the SAS or the signature, and the host is what follows "
            "the '@'."
        )
    if "%" in authority:
        raise StorageLocationError("The storage location's host may not be percent-encoded.")


def _checked_host(host: str) -> str:
    """urllib3's reading of the host (lower case), if it is a DNS host name, four-number IPv4 or
    a bracketed IPv6 address; without brackets. StorageLocationError otherwise."""
    if host.startswith("["):
        try:
            ipaddress.IPv6Address(host[1:-1])
        except ValueError:
            raise StorageLocationError(
                f"The storage location's host {host!r} is not an IPv6 address."
            ) from None
        return host[1:-1]
    if host.endswith("."):
        raise StorageLocationError("The storage location's host may not end with a dot.")
    labels = host.split(".")
    if _NUMERIC_LABEL.match(labels[-1]):
        try:
            ipaddress.IPv4Address(host)
        except ValueError:
            raise StorageLocationError(
                "The storage location's host is an IPv4 address in a form other than four "
                "decimal numbers (such as 127.1, 2130706433 or 0x7f.0.0.1): write it as "
                "a.b.c.d."
            ) from None
        return host
    if len(host) > 253 or not all(_LABEL.match(label) for label in labels):
        raise StorageLocationError(
            "The storage location's host is not a host name: letters, digits and hyphens in "
            "labels separated by dots (or an IP address)."
        )
    return host
