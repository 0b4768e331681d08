"""The official Microsoft Graph SDK (msgraph-sdk) pointed at a datapolicy server: changed only
in its base URL and its token (docs/graph-compatibility.md, "Pointing the Graph SDK at
datapolicy"). Imported only when a test asks for a Graph client, so the plugin loads without
the SDK."""

from __future__ import annotations

from typing import Any

import httpx
from kiota_abstractions.authentication import (
    AccessTokenProvider,
    AllowedHostsValidator,
    BaseBearerTokenAuthenticationProvider,
)
from msgraph.graph_request_adapter import GraphRequestAdapter
from msgraph.graph_request_adapter import options as graph_options
from msgraph.graph_service_client import GraphServiceClient
from msgraph_core import GraphClientFactory


class StaticToken(AccessTokenProvider):
    """Always the same token, for the server's host only."""

    def __init__(self, token: str, host: str) -> None:
        self._token = token
        self._hosts = AllowedHostsValidator([host])

    async def get_authorization_token(
        self, uri: str, additional_authentication_context: dict[str, Any] | None = None
    ) -> str:
        return self._token

    def get_allowed_hosts_validator(self) -> AllowedHostsValidator:
        return self._hosts


def graph_client(base_url: str, token: str) -> GraphServiceClient:
    """A GraphServiceClient for the API root `base_url` with the SDK's default middleware
    (its retry handler included). Connections are not kept alive, so the client needs no
    closing, whatever event loop each test runs it on."""
    http = httpx.AsyncClient(
        timeout=httpx.Timeout(100, connect=30),
        limits=httpx.Limits(max_keepalive_connections=0),
    )
    # The options GraphRequestAdapter gives its own client: `.me` sent as /me, not as
    # /users/me-token-to-replace.
    http = GraphClientFactory.create_with_default_middleware(client=http, options=graph_options)
    token_provider = StaticToken(token, httpx.URL(base_url).host)
    adapter = GraphRequestAdapter(BaseBearerTokenAuthenticationProvider(token_provider), http)
    adapter.base_url = base_url  # no trailing slash
    return GraphServiceClient(request_adapter=adapter)
