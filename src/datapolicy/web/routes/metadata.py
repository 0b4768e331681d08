"""What OData clients discover the API by: `$metadata`, the CSDL document that every
`@odata.context` URL points into, and the service document at the API root, which lists the
entity sets.

Both are generated from one list of entity sets and from `datapolicy.model.PROPERTIES` and the
directory's `USER_FIELDS`, so they cannot drift from what the API serves. The CSDL declares the
actions too, bound to the entity they act on (`exportPersonalData` and `erasePersonalData` to a
user, `approve` to a dataPolicyOperation), as Graph's `$metadata` declares its own.
"""

from __future__ import annotations

from functools import cache
from xml.sax.saxutils import quoteattr

from starlette.requests import Request
from starlette.responses import Response

from datapolicy.model import (
    ENTITY_SET,
    ENTITY_TYPE,
    PRINCIPAL_TYPE,
    PROPERTIES,
    STATUS_TYPE,
    EdmType,
    OperationStatus,
)
from datapolicy.web.responses import json_response
from datapolicy.web.routes.roots import service_root
from datapolicy.web.routes.users import USER_FIELDS

USER_TYPE = "microsoft.graph.user"
#: The entity sets, by name, with their entity type: what the service document lists.
ENTITY_SETS = {ENTITY_SET: ENTITY_TYPE, "users": USER_TYPE}
#: The actions, by name: (the type they are bound to, their parameters: name, type, nullable).
ACTIONS: dict[str, tuple[str, tuple[tuple[str, str, bool], ...]]] = {
    "exportPersonalData": (USER_TYPE, (("storageLocation", "Edm.String", False),)),
    "erasePersonalData": (
        USER_TYPE,
        (("dryRun", "Edm.Boolean", True), ("storageLocation", "Edm.String", True)),
    ),
    "approve": (ENTITY_TYPE, ()),
}


def _name(qualified: str) -> str:
    return qualified.rpartition(".")[2]


def _property(name: str, edm_type: str, nullable: bool) -> str:
    return (
        f"        <Property Name={quoteattr(name)} Type={quoteattr(edm_type)}"
        f' Nullable="{str(nullable).lower()}"/>'
    )


def _action(name: str, bound_to: str, parameters: tuple[tuple[str, str, bool], ...]) -> str:
    lines = [
        f'      <Action Name={quoteattr(name)} IsBound="true">',
        f'        <Parameter Name="bindingParameter" Type={quoteattr(bound_to)} Nullable="false"/>',
        *(
            f"        <Parameter Name={quoteattr(parameter)} Type={quoteattr(edm_type)}"
            f' Nullable="{str(nullable).lower()}"/>'
            for parameter, edm_type, nullable in parameters
        ),
        "      </Action>",
    ]
    return "\n".join(lines)


@cache
def csdl() -> bytes:
    operation_properties = "\n".join(
        _property(p.name, p.edm_type.value, p.nullable)
        for p in PROPERTIES.values()
        if p.name != "id"
    )
    user_properties = "\n".join(
        _property(name, "Edm.String", True) for name in USER_FIELDS if name != "id"
    )
    members = "\n".join(
        f'        <Member Name={quoteattr(status.value)} Value="{index}"/>'
        for index, status in enumerate(OperationStatus)
    )
    actions = "\n".join(_action(name, *declared) for name, declared in ACTIONS.items())
    entity_sets = "\n".join(
        f"        <EntitySet Name={quoteattr(name)} EntityType={quoteattr(entity_type)}/>"
        for name, entity_type in ENTITY_SETS.items()
    )
    return f"""<?xml version="1.0" encoding="utf-8"?>
<edmx:Edmx Version="4.0" xmlns:edmx="http://docs.oasis-open.org/odata/ns/edmx">
  <edmx:DataServices>
    <Schema Namespace="microsoft.graph" xmlns="http://docs.oasis-open.org/odata/ns/edm">
      <EnumType Name="{_name(STATUS_TYPE)}">
{members}
      </EnumType>
      <ComplexType Name="publicError">
        <Property Name="code" Type="Edm.String"/>
        <Property Name="message" Type="Edm.String"/>
      </ComplexType>
      <ComplexType Name="{_name(EdmType.PROGRESS_DETAIL)}">
        <Property Name="part" Type="Edm.String" Nullable="false"/>
        <Property Name="records" Type="Edm.Int64" Nullable="false"/>
        <Property Name="bytes" Type="Edm.Int64" Nullable="false"/>
      </ComplexType>
      <ComplexType Name="{_name(EdmType.APPROVAL)}">
        <Property Name="status" Type="Edm.String" Nullable="false"/>
        <Property Name="requestedBy" Type="{PRINCIPAL_TYPE}"/>
        <Property Name="approvedBy" Type="{PRINCIPAL_TYPE}"/>
        <Property Name="approvedDateTime" Type="Edm.DateTimeOffset"/>
      </ComplexType>
      <ComplexType Name="{_name(PRINCIPAL_TYPE)}">
        <Property Name="application" Type="Edm.String"/>
        <Property Name="subject" Type="Edm.String"/>
      </ComplexType>
      <EntityType Name="entity" Abstract="true">
        <Key><PropertyRef Name="id"/></Key>
        <Property Name="id" Type="Edm.String" Nullable="false"/>
      </EntityType>
      <EntityType Name="{_name(ENTITY_TYPE)}" BaseType="microsoft.graph.entity">
{operation_properties}
      </EntityType>
      <EntityType Name="{_name(USER_TYPE)}" BaseType="microsoft.graph.entity">
{user_properties}
      </EntityType>
{actions}
      <EntityContainer Name="GraphService">
{entity_sets}
      </EntityContainer>
    </Schema>
  </edmx:DataServices>
</edmx:Edmx>
""".encode()


async def metadata(request: Request) -> Response:
    return Response(csdl(), media_type="application/xml", headers={"OData-Version": "4.0"})


async def service_document(request: Request) -> Response:
    """OData's JSON service document: the entity sets, each by its URL relative to the root."""
    return json_response(
        {
            "@odata.context": f"{service_root(request)}/$metadata",
            "value": [{"name": name, "kind": "EntitySet", "url": name} for name in ENTITY_SETS],
        }
    )
