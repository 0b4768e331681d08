"""Which permission each route needs: the matrix documented in docs/security.md.

Permissions have Graph's names. `User.Export.All` covers everything about exports (starting
them, reading, changing and deleting operations); `User.Read.All` reads the user directory.
A token may carry a permission as a delegated scope (`scp`) or an application role (`roles`);
both count the same.

Paths are relative to the API root (`/dataPolicyOperations`, not `/v1.0/dataPolicyOperations`).
The description of the API (`$metadata`, `openapi.yaml`, `openapi.json`, the docs page and its
assets) is public, as Graph's `$metadata` is. Any other path, and any method a route lacks,
needs a valid token but no permission: the app then answers 404 or 405, and a caller without a
token learns nothing about which routes exist.
"""

from __future__ import annotations

from dataclasses import dataclass

EXPORT = "User.Export.All"
READ_USERS = "User.Read.All"
# datapolicy's own, for the test-double controls of `serve --scenarios` (not a Graph permission)
SCENARIOS = "DataPolicy.Scenarios.ReadWrite.All"
PERMISSIONS = (EXPORT, READ_USERS, SCENARIOS)

_ID = "{id}"  # one path segment, not empty

ROUTES: dict[tuple[str, ...], dict[str, str]] = {
    ("dataPolicyOperations",): {"GET": EXPORT, "POST": EXPORT},
    ("dataPolicyOperations", "$count"): {"GET": EXPORT},
    ("dataPolicyOperations", _ID): {"GET": EXPORT, "PATCH": EXPORT, "DELETE": EXPORT},
    ("dataPolicyOperations", _ID, "package"): {"GET": EXPORT},
    ("users",): {"GET": READ_USERS},
    ("users", _ID): {"GET": READ_USERS},
    ("users", _ID, "exportPersonalData"): {"POST": EXPORT},
    **{
        ("admin", "datapolicy", "scenarios", *rest): dict.fromkeys(methods, SCENARIOS)
        for rest, methods in (
            ((), ("GET",)),
            (("faults",), ("GET", "POST", "DELETE")),
            (("faults", _ID), ("DELETE",)),
            (("time",), ("GET", "PUT")),
            (("exportFailures",), ("GET", "POST")),
            (("operations", _ID, "advance"), ("POST",)),
            (("requests",), ("GET", "DELETE")),
            (("reset",), ("POST",)),
            (("snapshots",), ("GET",)),
            (("snapshots", _ID), ("PUT",)),
            (("snapshots", _ID, "restore"), ("POST",)),
        )
    },
}
PUBLIC_PATHS = ("/$metadata", "/openapi.yaml", "/openapi.json", "/docs")
_PUBLIC_PREFIXES = ("/docs/assets/",)  # Swagger UI's scripts and styles


@dataclass(frozen=True)
class Requirement:
    """What a request must show: nothing (`public`), or a valid token with `permission` (None:
    any valid token)."""

    public: bool = False
    permission: str | None = None


PUBLIC = Requirement(public=True)
ANY_TOKEN = Requirement()


def requirement(method: str, path: str | None) -> Requirement:
    """What `method` on `path` (relative to the API root; None for a path outside it) needs.
    HEAD needs what GET does."""
    if path is None:
        return ANY_TOKEN
    if path in PUBLIC_PATHS or path.startswith(_PUBLIC_PREFIXES):
        return PUBLIC
    methods = _route(path.split("/")[1:])
    if methods is None:
        return ANY_TOKEN
    return methods.get("GET" if method == "HEAD" else method, ANY_TOKEN)


def _route(segments: list[str]) -> dict[str, Requirement] | None:
    """The methods of the route `segments` address. Runs on every request, so it is a dictionary
    look-up or two rather than a match against each template."""
    exact = _REQUIREMENTS.get(tuple(segments))
    if exact is not None:
        return exact
    for position in _ID_POSITIONS:
        if position < len(segments) and segments[position]:
            rest = (*segments[:position], *segments[position + 1 :])
            found = _BY_ID_POSITION.get((position, rest))
            if found is not None:
                return found
    return None


_REQUIREMENTS = {
    template: {method: Requirement(permission=p) for method, p in methods.items()}
    for template, methods in ROUTES.items()
}
# Each template with an id, keyed by where the id is and the segments around it.
_BY_ID_POSITION = {
    (template.index(_ID), tuple(part for part in template if part != _ID)): methods
    for template, methods in _REQUIREMENTS.items()
    if _ID in template
}
_ID_POSITIONS = sorted({position for position, _ in _BY_ID_POSITION})
