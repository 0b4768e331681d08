"""The entity sets the query layer serves: each one's type name, properties, searchable
properties and default order, so that one parser and one SQL compiler serve them all.

`OPERATIONS` is the dataPolicyOperation set (model.py); `USERS` is Graph's user as the
configured directory gives it (engine/directory.py): four strings, `id` the key.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from datapolicy.model import ENTITY_TYPE, PROPERTIES, EdmType, Property

USER_TYPE = "microsoft.graph.user"


@dataclass(frozen=True, eq=False)
class Entity:
    """What the query layer needs to know of an entity set (compared by identity)."""

    type_name: str
    properties: Mapping[str, Property]
    #: The properties `$search` looks in, and that `"property:text"` may name.
    searchable: tuple[Property, ...]
    #: The order of a list without `$orderby` (then `id`, see skiptoken.effective_order).
    default_order: str


OPERATIONS = Entity(
    ENTITY_TYPE,
    PROPERTIES,
    (PROPERTIES["userId"], PROPERTIES["storageLocation"], PROPERTIES["status"]),
    "submittedDateTime",
)

USER_PROPERTIES: dict[str, Property] = {
    p.name: p
    for p in (
        Property("id", EdmType.STRING, False, "id"),
        Property("displayName", EdmType.STRING, True, "display_name"),
        Property("mail", EdmType.STRING, True, "mail"),
        Property("userPrincipalName", EdmType.STRING, True, "user_principal_name"),
    )
}

USERS = Entity(
    USER_TYPE,
    USER_PROPERTIES,
    (USER_PROPERTIES["displayName"], USER_PROPERTIES["mail"]),
    "id",
)
