"""Allow-lists of storage endpoints (`allowed_hosts`), shared by the targets that take a URL from
the request (Azure Blob SAS URLs, presigned S3 URLs).

An entry is `host`, `host:port` or `*.suffix`. A wildcard never matches an IP address or a URL
with an explicit port, so that `*.example.com` cannot be stretched to a private address or another
service on the same machine; loopback and private endpoints (emulators, test servers) must be
listed exactly.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from typing import Any
from urllib.parse import SplitResult, urlsplit


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
            return not is_ip(hostname)
    return False


def is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    return True


def is_loopback(host: str) -> bool:
    """Whether `host` is this machine: `localhost` or a loopback address."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def http_url(location: str) -> SplitResult | None:
    """`location` split, if it is an http(s) URL with a host and a well-formed port (or none);
    None otherwise, so that a target that takes URLs can say "not mine" and let the next try."""
    try:
        parts = urlsplit(location)
    except ValueError:
        return None
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        return None
    return parts if valid_port(parts) else None


def valid_port(parts: Any) -> bool:
    """Whether a `urlsplit` result has a well-formed port (or none)."""
    try:
        parts.port  # noqa: B018 - raises for a malformed port
    except ValueError:
        return False
    return True
