"""The served OpenAPI description: complete (every route the API serves, by the route table),
valid, and faithful to the seed."""

from __future__ import annotations

import re
from pathlib import Path

import yaml
from openapi_spec_validator import validate

from datapolicy.web.routes.table import API_ROUTES, ME_EXPORT, NAMESPACE

SEED = Path(__file__).parents[2] / "src/datapolicy/web/routes/openapi/seed.yml"


def refs(node) -> list[str]:
    if isinstance(node, dict):
        found = [node["$ref"]] if isinstance(node.get("$ref"), str) else []
        return found + [r for value in node.values() for r in refs(value)]
    if isinstance(node, list):
        return [r for item in node for r in refs(item)]
    return []


def resolve(document: dict, ref: str):
    node = document
    for part in ref.removeprefix("#/").split("/"):
        node = node[part.replace("~1", "/").replace("~0", "~")]
    return node


def test_yaml_and_json_are_the_same_valid_document(client):
    as_json = client.get("/openapi.json").json()
    as_yaml = yaml.safe_load(client.get("/openapi.yaml").text)
    assert as_json == as_yaml
    validate(as_json)


def test_every_ref_resolves_to_a_definition(client):
    document = client.get("/openapi.json").json()
    seed_refs = set(refs(yaml.safe_load(SEED.read_text())))
    assert seed_refs, "the seed should reference schemas it does not define"
    for ref in set(refs(document)) | seed_refs:
        assert resolve(document, ref), ref


def test_every_seed_operation_is_described(client):
    seed = yaml.safe_load(SEED.read_text())
    served = client.get("/openapi.json").json()
    for path, item in seed["paths"].items():
        for method, operation in item.items():
            if isinstance(operation, dict) and "operationId" in operation:
                assert served["paths"][path][method]["operationId"] == operation["operationId"]


def test_nullable_is_expressed_the_openapi_3_1_way(client):
    schema = client.get("/openapi.json").json()["components"]["schemas"]
    operation = schema["microsoft.graph.dataPolicyOperation"]["allOf"][1]["properties"]
    assert operation["completedDateTime"]["type"] == ["string", "null"]
    assert "nullable" not in str(schema)


def test_the_docs_page_and_its_assets_are_served(service):
    with service.client(headers={}) as http:
        page = http.get("/docs")
        asset = http.get("/docs/assets/swagger-ui-bundle.js")
    assert page.status_code == 200
    assert "openapi.json" in page.text
    assert asset.status_code == 200
    assert len(asset.content) > 100_000


# What the description does not describe as paths of its own, and why (its introduction says
# the rest): the description's own documents; and the Graph profile's `/me/exportPersonalData`,
# a test double's answer (web/test_double/profile.py) served only under `--profile graph`.
UNDESCRIBED = {"/openapi.yaml", "/openapi.json", "/docs", "/docs/assets", *ME_EXPORT.paths}


def _template(path: str) -> str:
    """A route table path as the description spells it: `{operation_id}` is
    `{dataPolicyOperation-id}`, `{user_id}` is `{user-id}`."""
    return path.replace("{operation_id}", "{dataPolicyOperation-id}").replace(
        "{user_id}", "{user-id}"
    )


def test_dry_run_and_the_erasure_s_requester_are_described(client):
    """`dryRun`, a nullable Boolean that `$select` and `$orderby` take, and the approval's
    `requestedBy`, a principal (docs/erasure.md, "Approval")."""
    described = client.get("/openapi.json").json()
    schemas, parameters = described["components"]["schemas"], described["components"]["parameters"]
    operation = schemas["microsoft.graph.dataPolicyOperation"]["allOf"][1]["properties"]
    assert operation["dryRun"]["type"] == ["boolean", "null"]
    assert "dryRun" in parameters["filter"]["description"]
    assert {"dryRun", "dryRun asc", "dryRun desc"} <= set(
        parameters["datapolicy.orderby"]["schema"]["items"]["enum"]
    )
    assert "dryRun" in parameters["datapolicy.select"]["schema"]["items"]["enum"]
    approval = schemas["microsoft.graph.dataPolicyOperationApproval"]
    assert "requestedBy" in approval["required"]
    principal = "#/components/schemas/microsoft.graph.dataPolicyOperationPrincipal"
    assert principal in refs(approval["properties"]["requestedBy"])


def test_every_route_the_api_serves_is_described(client):
    """Each path of each route of the route table (but the test doubles', documented in
    docs/testing-with-datapolicy.md) with each of its methods; a key in parentheses is another
    spelling of the path it stands for, which the introduction states, as it states the
    namespace-qualified action names, which are described as paths of their own too."""
    described = client.get("/openapi.json").json()
    paths = described["paths"]
    missing = []
    for route in API_ROUTES:
        if route.test_double or route.path in UNDESCRIBED:
            continue
        for path in route.paths:
            if re.search(r"\(\{\w+:odatakey\}\)", path) or path == "":  # `/v1.0` is `/v1.0/`
                continue
            for method in sorted(route.methods - {"HEAD"}):
                if method.lower() not in paths.get(_template(path), {}):
                    missing.append(f"{method} {path}")
    assert missing == []
    assert "in parentheses" in described["info"]["description"]
    assert NAMESPACE in described["info"]["description"]
    assert {server["url"] for server in described["servers"]} == {"/v1.0", "/beta"}
