"""Allow-lists of storage endpoints (`allowed_hosts`), shared by the targets that take a URL from
the request (Azure Blob SAS URLs, presigned S3 URLs).

An entry is `host`, `host:port` or `*.suffix`. A wildcard never matches an IP address, a name
of this machine or of a cloud metadata service (`SPECIAL_NAMES`), or a URL with an explicit port,
so that `*.example.com` cannot be stretched to a private address or another service on the same
machine; loopback, link-local, metadata and private endpoints (emulators, test servers) must be
listed exactly.

Before any entry is compared, `http_url` refuses the URLs whose host a client could read
differently from us (docs/security.md, "Where packages may go"): user information
(`https://allowed.example@evil/`), hosts that are not plain ASCII (IDNA look-alikes: give the
`xn--` form), percent-encoded or ending in a dot, and IPv4 addresses in any form but dotted
decimal (`127.1`, `2130706433`, `0x7f.1`, which resolvers read as 127.0.0.1). Names are never
resolved here: the allow-list trusts the DNS of the names it lists (there is no lookup, so no
rebinding window between a check and the request, and no protection if a listed name points
inside).
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable
from typing import Any
from urllib.parse import SplitResult, urlsplit

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
_NUMERIC_LABEL = re.compile(r"^(?:[0-9]+|0x[0-9a-f]*)$")


def listed_exactly(hostname: str, port: int | None, entries: Iterable[str]) -> bool:
    """Whether `hostname` (with `port`, if the URL gives one) is an entry without a wildcard."""
    listed = {entry.lower() for entry in entries}
    host = f"{hostname}:{port}" if port else hostname
    return host in listed or (hostname in listed and port is None)


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


def http_url(location: str) -> SplitResult | None:
    """`location` split, if it is an http(s) URL with a host and a well-formed port (or none);
    None otherwise, so that a target that takes URLs can say "not mine" and let the next try.
    StorageLocationError for an http(s) URL whose host is ambiguous (see the module's
    docstring): no target may take it."""
    try:
        parts = urlsplit(location)
    except ValueError:
        return None
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        return None
    if not valid_port(parts):
        return None
    _check_unambiguous(parts)
    return parts


def _check_unambiguous(parts: SplitResult) -> None:
    """StorageLocationError unless the URL's host is one that every client reads as we do."""
    if "@" in parts.netloc:
        raise StorageLocationError(
            "The storage location may not carry user information (user:password@ before the "
            "host): credentials belong in the SAS or the signature, and the host is what follows "
            "the '@'."
        )
    hostname = parts.hostname or ""
    if not hostname.isascii():
        raise StorageLocationError(
            "The storage location's host is not plain ASCII: give an internationalised name in "
            "its IDNA form (xn--...)."
        )
    if "%" in hostname:
        raise StorageLocationError("The storage location's host may not be percent-encoded.")
    if hostname.endswith("."):
        raise StorageLocationError("The storage location's host may not end with a dot.")
    if ":" not in hostname and _NUMERIC_LABEL.match(hostname.rsplit(".", 1)[-1]):
        try:
            ipaddress.IPv4Address(hostname)
        except ValueError:
            raise StorageLocationError(
                "The storage location's host is an IPv4 address in a form other than four "
                "decimal numbers (such as 127.1, 2130706433 or 0x7f.0.0.1): write it as "
                "a.b.c.d."
            ) from None


def valid_port(parts: Any) -> bool:
    """Whether a `urlsplit` result has a well-formed port (or none)."""
    try:
        parts.port  # noqa: B018 - raises for a malformed port
    except ValueError:
        return False
    return True
