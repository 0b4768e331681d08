"""The permissions a token can carry, and what a request must show.

Permissions have Graph's names. `User.Export.All` covers everything about exports (starting
them, reading, changing and deleting operations); `User.Read.All` reads the user directory;
`PersonalData.Erase.All` starts erasures (a dry run, whose package holds the person's rows,
needs `User.Export.All` too: web/routes/users.py).
A token may carry a permission as a delegated scope (`scp`) or an application role (`roles`);
both count the same. Which route needs which is declared with the route, in the route table
(web/routes/table.py): this module knows permissions, not HTTP routes.
"""

from __future__ import annotations

from dataclasses import dataclass

EXPORT = "User.Export.All"
READ_USERS = "User.Read.All"
# datapolicy's own: starting an erasure (docs/erasure.md); User.Export.All does not cover it
ERASE = "PersonalData.Erase.All"
# datapolicy's own, for the test-double controls of `serve --scenarios` (not a Graph permission)
SCENARIOS = "DataPolicy.Scenarios.ReadWrite.All"
PERMISSIONS = (EXPORT, READ_USERS, ERASE, SCENARIOS)


@dataclass(frozen=True)
class Requirement:
    """What a request must show: nothing (`public`), or a valid token with `permission` (None:
    any valid token)."""

    public: bool = False
    permission: str | None = None


PUBLIC = Requirement(public=True)
ANY_TOKEN = Requirement()
