"""`GET /dataPolicyOperations/{id}/package`: a complete export's package, when it was written
to a local directory of this server.

Graph hands packages out through the storage they were written to (a blob container); a local
directory has no such door, so this route is it (the web console downloads through it). It
needs User.Export.All like every other operation route, each download leaves a
`package.downloaded` audit entry (before the first byte is sent), and the answer is marked
`no-store`: it is someone's personal data.
"""

from __future__ import annotations

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import FileResponse, Response

from datapolicy.engine import ExportService
from datapolicy.model import ENTITY_SET
from datapolicy.odata.options import NO_OPTIONS, parse_query_options
from datapolicy.store.audit import AuditAction
from datapolicy.web.audit import audit_of
from datapolicy.web.routing import by_method


async def download_package(request: Request) -> Response:
    parse_query_options(request.query_params.multi_items(), NO_OPTIONS)
    operation_id = request.path_params["operation_id"]
    exports: ExportService = request.app.state.exports
    operation, package = await run_in_threadpool(exports.local_package, operation_id)
    await audit_of(request).record(
        request.scope,
        AuditAction.PACKAGE_DOWNLOADED,
        user_id=operation.user_id,
        operation_id=operation.id,
    )
    return FileResponse(
        package,
        media_type="application/zip",
        filename=f"{operation_id}.zip",
        headers={"Cache-Control": "no-store"},
    )


routes = [by_method(f"/{ENTITY_SET}/{{operation_id}}/package", GET=download_package)]
