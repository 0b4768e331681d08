"""The served OpenAPI description: Graph's seed slice, completed and extended by datapolicy.

The seed is kept verbatim (openapi/seed.yml) and `openapi/additions.yml` is merged over it: it
defines the schemas the seed `$ref`s without defining, and states what datapolicy adds. The seed
declares OpenAPI 3.1 but writes `nullable: true` in the 3.0 way, which 3.1 ignores; we rewrite it
as the 3.1 form (`type: [T, "null"]`) so that validators read the seed as its authors meant.
"""

from __future__ import annotations

from functools import cache
from importlib import resources
from typing import Any

import orjson
import yaml
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response

_FILES = resources.files("datapolicy.web.routes") / "openapi"


@cache
def description() -> dict[str, Any]:
    seed = yaml.safe_load((_FILES / "seed.yml").read_text())
    additions = yaml.safe_load((_FILES / "additions.yml").read_text())
    document: dict[str, Any] = _with_3_1_nullability(_with_own_properties(_merge(seed, additions)))
    return document


def _with_own_properties(document: dict[str, Any]) -> dict[str, Any]:
    """datapolicy's `error`, `operationType`, `progressDetail`, `approval` and `dryRun`
    properties on dataPolicyOperation. Added here rather than in additions.yml because the
    seed's schema is an `allOf` list, which a merge would replace."""
    own = document["components"]["schemas"]["microsoft.graph.dataPolicyOperation"]["allOf"][1]
    own["properties"]["error"] = {
        "anyOf": [{"$ref": "#/components/schemas/microsoft.graph.publicError"}],
        "nullable": True,
        "description": "datapolicy: why the operation failed; null unless status is failed.",
    }
    own["properties"]["operationType"] = {
        "type": "string",
        "enum": ["exportPersonalData", "erasePersonalData"],
        "description": "datapolicy: what the operation does (docs/erasure.md); filterable "
        "and orderable.",
    }
    own["properties"]["progressDetail"] = {
        "anyOf": [
            {"$ref": "#/components/schemas/microsoft.graph.dataPolicyOperationProgressDetail"}
        ],
        "nullable": True,
        "description": "datapolicy: what the export has written, recorded with progress; null "
        "until it began writing, and for erasures.",
    }
    own["properties"]["approval"] = {
        "anyOf": [{"$ref": "#/components/schemas/microsoft.graph.dataPolicyOperationApproval"}],
        "nullable": True,
        "description": "datapolicy: an erasure's approval under [erasure] approval = "
        '"required": pending (it waits, notStarted) or approved (by whom, when), and who '
        "requested it; null for exports and erasures that need none. Not filterable or "
        "orderable.",
    }
    own["properties"]["dryRun"] = {
        "type": "boolean",
        "nullable": True,
        "description": "datapolicy: an erasure's: true for a dry run (it changes nothing; its "
        "package holds the rows it would change), false for the erasure itself, which cannot "
        "be undone; null for exports. Filterable, compared with true, false or null "
        "(operationType eq 'erasePersonalData' and dryRun eq false), and orderable (false "
        "before true).",
    }
    return document


def _merge(base: Any, extra: Any) -> Any:
    if isinstance(base, dict) and isinstance(extra, dict):
        merged = dict(base)
        for key, value in extra.items():
            merged[key] = _merge(base[key], value) if key in base else value
        return merged
    return extra


def _with_3_1_nullability(node: Any) -> Any:
    if isinstance(node, list):
        return [_with_3_1_nullability(item) for item in node]
    if not isinstance(node, dict):
        return node
    node = {key: _with_3_1_nullability(value) for key, value in node.items()}
    if node.pop("nullable", False) is True:
        if "type" in node:
            types = node["type"] if isinstance(node["type"], list) else [node["type"]]
            node["type"] = [*types, "null"]
            if "enum" in node:
                node["enum"] = [*node["enum"], None]
        else:
            node = {"anyOf": [node, {"type": "null"}]}
    return node


@cache
def _yaml_bytes() -> bytes:
    return yaml.safe_dump(description(), sort_keys=False, allow_unicode=True).encode()


async def openapi_yaml(request: Request) -> Response:
    return Response(_yaml_bytes(), media_type="application/yaml")


async def openapi_json(request: Request) -> Response:
    return Response(orjson.dumps(description()), media_type="application/json")


_DOCS_PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>datapolicy API</title>
<link rel="stylesheet" href="docs/assets/swagger-ui.css">
</head>
<body>
<div id="swagger-ui"></div>
<script src="docs/assets/swagger-ui-bundle.js"></script>
<script>
SwaggerUIBundle({url: "openapi.json", dom_id: "#swagger-ui", deepLinking: true,
                 supportedSubmitMethods: []});
</script>
</body>
</html>
"""


async def docs_page(request: Request) -> Response:
    return HTMLResponse(_DOCS_PAGE)
