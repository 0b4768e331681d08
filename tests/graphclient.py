"""The official Microsoft Graph Python SDK pointed at a running `datapolicy serve`, changed only
in its base URL and its token, as docs/graph-compatibility.md, "Pointing the Graph SDK at
datapolicy", says: a static bearer token (the service's own, with every permission) for
loopback URLs. The beta SDK (`msgraph-beta-sdk`) the same way, at the service's `/beta`."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from kiota_abstractions.authentication import (
    AccessTokenProvider,
    AllowedHostsValidator,
    BaseBearerTokenAuthenticationProvider,
)
from kiota_http.kiota_client_factory import KiotaClientFactory
from msgraph import GraphRequestAdapter, GraphServiceClient
from msgraph_beta import GraphRequestAdapter as BetaGraphRequestAdapter
from msgraph_beta import GraphServiceClient as BetaGraphServiceClient
from msgraph_core import GraphClientFactory

from conftest import Service


class StaticToken(AccessTokenProvider):
    """Always the same token, for any loopback URL."""

    def __init__(self, token: str) -> None:
        self._token = token
        self._hosts = AllowedHostsValidator(["127.0.0.1"])

    async def get_authorization_token(
        self, uri: str, additional_authentication_context: dict[str, Any] | None = None
    ) -> str:
        return self._token

    def get_allowed_hosts_validator(self) -> AllowedHostsValidator:
        return self._hosts


@asynccontextmanager
async def graph_client(
    service: Service, *, explicit_base_url: bool = True, token: str | None = None
) -> AsyncIterator[GraphServiceClient]:
    """A Graph SDK client for `service`, sending `token` (by default the service's token with
    every permission). With `explicit_base_url` False the SDK derives its base URL from the
    httpx client, as it does by default: that URL ends in `/`, and the templates add another,
    so it sends `/v1.0//...`."""
    http = KiotaClientFactory.get_default_client()
    http.base_url = service.url  # httpx normalises this to end in "/"
    # The Graph transport that wraps this one has no aclose() of its own, so closing the client
    # would leave this transport's pooled connections open: keep it to close it ourselves.
    pooled = http._transport
    http = GraphClientFactory.create_with_default_middleware(client=http)
    adapter = GraphRequestAdapter(
        BaseBearerTokenAuthenticationProvider(StaticToken(token or service.token)), http
    )
    if explicit_base_url:
        adapter.base_url = service.url  # no trailing slash: docs/graph-compatibility.md
    try:
        yield GraphServiceClient(request_adapter=adapter)
    finally:
        await http.aclose()
        await pooled.aclose()


@asynccontextmanager
async def beta_graph_client(service: Service) -> AsyncIterator[BetaGraphServiceClient]:
    """A beta Graph SDK client for `service`'s `/beta` root, with the service's token."""
    http = KiotaClientFactory.get_default_client()
    pooled = http._transport
    http = GraphClientFactory.create_with_default_middleware(client=http)
    adapter = BetaGraphRequestAdapter(
        BaseBearerTokenAuthenticationProvider(StaticToken(service.token)), http
    )
    adapter.base_url = f"{service.root}/beta"
    try:
        yield BetaGraphServiceClient(request_adapter=adapter)
    finally:
        await http.aclose()
        await pooled.aclose()
