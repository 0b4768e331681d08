"""`$metadata`: the CSDL document that every `@odata.context` URL points into.

It is generated from `datapolicy.model.PROPERTIES`, so it cannot drift from what the API serves.
"""

from __future__ import annotations

from functools import cache
from xml.sax.saxutils import quoteattr

from starlette.requests import Request
from starlette.responses import Response

from datapolicy.model import ENTITY_SET, PROPERTIES, OperationStatus


@cache
def csdl() -> bytes:
    properties = "\n".join(
        f"        <Property Name={quoteattr(p.name)} Type={quoteattr(p.edm_type.value)}"
        f' Nullable="{str(p.nullable).lower()}"/>'
        for p in PROPERTIES.values()
        if p.name != "id"
    )
    members = "\n".join(
        f'        <Member Name={quoteattr(status.value)} Value="{index}"/>'
        for index, status in enumerate(OperationStatus)
    )
    return f"""<?xml version="1.0" encoding="utf-8"?>
<edmx:Edmx Version="4.0" xmlns:edmx="http://docs.oasis-open.org/odata/ns/edmx">
  <edmx:DataServices>
    <Schema Namespace="microsoft.graph" xmlns="http://docs.oasis-open.org/odata/ns/edm">
      <EnumType Name="dataPolicyOperationStatus">
{members}
      </EnumType>
      <ComplexType Name="publicError">
        <Property Name="code" Type="Edm.String"/>
        <Property Name="message" Type="Edm.String"/>
      </ComplexType>
      <EntityType Name="entity" Abstract="true">
        <Key><PropertyRef Name="id"/></Key>
        <Property Name="id" Type="Edm.String" Nullable="false"/>
      </EntityType>
      <EntityType Name="dataPolicyOperation" BaseType="microsoft.graph.entity">
{properties}
      </EntityType>
      <EntityContainer Name="GraphService">
        <EntitySet Name="{ENTITY_SET}" EntityType="microsoft.graph.dataPolicyOperation"/>
      </EntityContainer>
    </Schema>
  </edmx:DataServices>
</edmx:Edmx>
""".encode()


async def metadata(request: Request) -> Response:
    return Response(csdl(), media_type="application/xml", headers={"OData-Version": "4.0"})
