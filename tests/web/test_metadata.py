"""What OData clients discover the API by (web/routes/metadata.py): `$metadata`, well-formed CSDL
whose every referenced type is declared and whose entity types, sets and actions are what the API
serves; and the service document at each API root, behind a token as Graph's is."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

import httpx
import pytest

from conftest import Service, token_for
from datapolicy.demo import demo_user_id
from datapolicy.web.routes.roots import API_ROOTS
from datapolicy.web.routes.table import API_ROUTES, NAMESPACE

EDM = "{http://docs.oasis-open.org/odata/ns/edm}"
EDMX = "{http://docs.oasis-open.org/odata/ns/edmx}"
# The primitive types of OData's CSDL (part 3, 4.4), which need no declaration.
PRIMITIVES = {
    f"Edm.{name}"
    for name in [
        "Binary",
        "Boolean",
        "Byte",
        "Date",
        "DateTimeOffset",
        "Decimal",
        "Double",
        "Duration",
        "Guid",
        "Int16",
        "Int32",
        "Int64",
        "SByte",
        "Single",
        "Stream",
        "String",
        "TimeOfDay",
    ]
}


def schema_of(document: bytes) -> ET.Element:
    root = ET.fromstring(document)  # well-formed XML, or this raises
    assert root.tag == f"{EDMX}Edmx"
    assert root.get("Version") == "4.0"
    (services,) = root.findall(f"{EDMX}DataServices")
    (schema,) = services.findall(f"{EDM}Schema")
    assert schema.get("Namespace") == NAMESPACE
    return schema


def referenced_types(schema: ET.Element) -> set[str]:
    """Every type the schema names: properties', parameters', base types, entity sets'."""
    found = set()
    for element in schema.iter():
        for attribute in ("Type", "BaseType", "EntityType"):
            value = element.get(attribute)
            if value is not None:
                collection = re.fullmatch(r"Collection\((.*)\)", value)
                found.add(collection[1] if collection else value)
    return found


def declared_types(schema: ET.Element) -> set[str]:
    return {
        f"{NAMESPACE}.{element.get('Name')}"
        for kind in ("EntityType", "ComplexType", "EnumType")
        for element in schema.findall(f"{EDM}{kind}")
    }


@pytest.fixture
def csdl(client) -> ET.Element:
    response = client.get("/$metadata")
    assert response.status_code == 200
    return schema_of(response.content)


def test_the_csdl_is_well_formed_and_every_referenced_type_is_declared(csdl):
    assert referenced_types(csdl) - PRIMITIVES <= declared_types(csdl)
    # Each entity type has a key, its own or its base type's.
    types = {element.get("Name"): element for element in csdl.findall(f"{EDM}EntityType")}
    for name, element in types.items():
        while element.find(f"{EDM}Key") is None:
            base = element.get("BaseType")
            assert base is not None, f"{name} has no key"
            element = types[base.removeprefix(f"{NAMESPACE}.")]


def test_the_reference_check_fails_on_an_undeclared_type():
    """The check above can fail: a property of a type nobody declared is caught."""
    broken = (
        b'<edmx:Edmx Version="4.0" xmlns:edmx="http://docs.oasis-open.org/odata/ns/edmx">'
        b'<edmx:DataServices><Schema Namespace="microsoft.graph" '
        b'xmlns="http://docs.oasis-open.org/odata/ns/edm"><EntityType Name="x">'
        b'<Property Name="p" Type="microsoft.graph.nowhere"/></EntityType></Schema>'
        b"</edmx:DataServices></edmx:Edmx>"
    )
    schema = schema_of(broken)
    assert referenced_types(schema) - PRIMITIVES - declared_types(schema) == {
        "microsoft.graph.nowhere"
    }


def test_the_entity_sets_and_types_are_what_the_api_serves(csdl, demo_service, client, user_id):
    """Each entity set's type declares exactly the properties its entities are served with."""
    sets = {
        element.get("Name"): element.get("EntityType") for element in csdl.iter(f"{EDM}EntitySet")
    }
    assert sets == {
        "dataPolicyOperations": "microsoft.graph.dataPolicyOperation",
        "users": "microsoft.graph.user",
    }
    types = {element.get("Name"): element for element in csdl.findall(f"{EDM}EntityType")}

    def properties(name: str) -> set[str]:
        element = types[name]
        own = {p.get("Name") for p in element.findall(f"{EDM}Property")}
        base = element.get("BaseType")
        return own | (properties(base.removeprefix(f"{NAMESPACE}.")) if base else set())

    operation = client.post("/dataPolicyOperations", json={"userId": user_id}).json()
    with demo_service.client() as http:
        user = http.get(f"/users/{demo_user_id(0)}").json()
    assert properties("dataPolicyOperation") == {k for k in operation if not k.startswith("@")}
    assert properties("user") == {k for k in user if not k.startswith("@")}


def test_dry_run_is_a_nullable_boolean_and_an_approval_names_its_requester(csdl):
    """datapolicy's `dryRun` (true or false for an erasure, null for an export) and the
    `requestedBy` principal of `approval`, as $metadata declares them."""
    types = {
        element.get("Name"): element
        for kind in ("EntityType", "ComplexType")
        for element in csdl.findall(f"{EDM}{kind}")
    }
    operation = {p.get("Name"): p for p in types["dataPolicyOperation"].findall(f"{EDM}Property")}
    assert (operation["dryRun"].get("Type"), operation["dryRun"].get("Nullable")) == (
        "Edm.Boolean",
        "true",
    )
    approval = {p.get("Name"): p for p in types["dataPolicyOperationApproval"]}
    assert approval["requestedBy"].get("Type") == f"{NAMESPACE}.dataPolicyOperationPrincipal"
    assert list(approval) == ["status", "requestedBy", "approvedBy", "approvedDateTime"]


def test_every_action_the_api_has_is_declared_bound_to_its_entity(csdl):
    actions = {
        element.get("Name"): [
            (p.get("Name"), p.get("Type")) for p in element.findall(f"{EDM}Parameter")
        ]
        for element in csdl.findall(f"{EDM}Action")
    }
    assert actions == {
        "exportPersonalData": [
            ("bindingParameter", "microsoft.graph.user"),
            ("storageLocation", "Edm.String"),
        ],
        "erasePersonalData": [
            ("bindingParameter", "microsoft.graph.user"),
            ("dryRun", "Edm.Boolean"),
            ("storageLocation", "Edm.String"),
        ],
        "approve": [("bindingParameter", "microsoft.graph.dataPolicyOperation")],
    }
    assert all(element.get("IsBound") == "true" for element in csdl.findall(f"{EDM}Action"))
    # ... and each is a route, by its qualified name too.
    served = {path for route in API_ROUTES for path in route.paths}
    for name in actions:
        assert any(path.endswith(f"/{name}") for path in served), name
        assert any(path.endswith(f"/{NAMESPACE}.{name}") for path in served), name


@pytest.mark.parametrize("slash", ["/", ""])
@pytest.mark.parametrize("root", API_ROOTS)
def test_the_service_document_lists_the_entity_sets(service: Service, root: str, slash: str):
    """At the API root, with or without the final slash, as Graph serves it."""
    with httpx.Client(transport=service.transport, headers=service.headers) as http:
        response = http.get(f"{service.root}{root}{slash}")
        sets = http.get(f"{service.root}{root}/$metadata").content
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/json")
    assert response.json() == {
        "@odata.context": f"{service.root}{root}/$metadata",
        "value": [
            {"name": "dataPolicyOperations", "kind": "EntitySet", "url": "dataPolicyOperations"},
            {"name": "users", "kind": "EntitySet", "url": "users"},
        ],
    }
    declared = {e.get("Name") for e in schema_of(sets).iter(f"{EDM}EntitySet")}
    assert {entry["name"] for entry in response.json()["value"]} == declared


def test_the_service_document_needs_a_token_but_no_permission(service: Service):
    """As Graph: no token is a 401; any valid token, whatever it may do, reads it."""
    bare = token_for(service.data_dir)
    with httpx.Client(transport=service.transport) as http:
        anonymous = http.get(f"{service.url}/")
        signed_in = http.get(f"{service.url}/", headers={"Authorization": f"Bearer {bare}"})
    assert anonymous.status_code == 401
    assert anonymous.json()["error"]["code"] == "InvalidAuthenticationToken"
    assert signed_in.status_code == 200
