"""Behind reverse proxies: the client's address and the scheme it used, from the proxies'
`X-Forwarded-For` and `X-Forwarded-Proto`, but only when the peer is a trusted proxy
(`[server] trusted_proxies`; docs/deployment.md, "Behind a load balancer").

From any other peer the headers are ignored: a client cannot choose its address or scheme.
Behind trusted proxies, the client is the nearest address in `X-Forwarded-For` that is not a
trusted proxy itself (what the outermost trusted proxy saw; entries a client wrote further left
are ignored), and the scheme is what `X-Forwarded-Proto` says at the same hop (or its last
value, when only the edge proxy sets it). The scope's `client` and `scheme` are rewritten, so
everything after sees them: `Location` and `@odata.context` (https behind a TLS-terminating
load balancer), the audit trail's client address and per-address rate limits.

Hand-written: a dozen lines over `ipaddress`. uvicorn has an equivalent
(`ProxyHeadersMiddleware`), but it would tie these rules to one server, while the app runs under
any ASGI server (docs/architecture.md); server.py turns uvicorn's off (`proxy_headers=False`).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from ipaddress import IPv4Network, IPv6Network

from starlette.types import Scope

Network = IPv4Network | IPv6Network
_SCHEMES = frozenset({"http", "https"})


class ProxyHeaders:
    """The request pipeline's first step (web/middleware/pipeline.py), only when there are trusted
    proxies (web/app.py): no cost otherwise."""

    def __init__(self, trusted: Iterable[Network]):
        self.trusted = tuple(trusted)

    def rewrite(self, scope: Scope) -> None:
        """Rewrite the scope's `client` and `scheme` if its peer is a trusted proxy."""
        client = scope.get("client")
        if client and self._trusted(client[0]):
            self._forwarded(scope, client)

    def _forwarded(self, scope: Scope, peer: tuple[str, int]) -> None:
        addresses = _values(scope, b"x-forwarded-for")
        schemes = _values(scope, b"x-forwarded-proto")
        hop = None  # index of the client's entry in X-Forwarded-For
        for index in range(len(addresses) - 1, -1, -1):
            if not self._trusted(addresses[index]):
                hop = index if _is_address(addresses[index]) else None
                break
        if hop is not None:
            scope["client"] = (addresses[hop], peer[1])
        if schemes:
            aligned = hop is not None and len(schemes) == len(addresses)
            scheme = schemes[hop if aligned and hop is not None else -1].lower()
            if scheme in _SCHEMES:
                scope["scheme"] = scheme

    def _trusted(self, address: str) -> bool:
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return False
        return any(ip in network for network in self.trusted)


def _values(scope: Scope, name: bytes) -> list[str]:
    """Every comma-separated value of every `name` header, in order."""
    return [
        part.strip()
        for header, value in scope["headers"]
        if header == name
        for part in value.decode("latin-1").split(",")
        if part.strip()
    ]


def _is_address(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True
