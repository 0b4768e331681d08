"""JSON responses in Graph's dialect: orjson-encoded, with OData's content type and version."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson
from starlette.responses import Response

ODATA_JSON = (
    "application/json;odata.metadata=minimal;odata.streaming=true;"
    "IEEE754Compatible=false;charset=utf-8"
)


def json_response(
    body: Any, status: int = 200, headers: Mapping[str, str] | None = None, *, option: int = 0
) -> Response:
    """`body` as Graph JSON; `option` is orjson's (what a body's values need to be written)."""
    response = Response(
        orjson.dumps(body, option=option),
        status_code=status,
        headers=headers,
        media_type=ODATA_JSON,
    )
    response.headers["OData-Version"] = "4.0"
    return response
