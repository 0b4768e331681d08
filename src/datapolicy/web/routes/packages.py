"""`GET /dataPolicyOperations/{id}/package`: a complete export's package, when it was written
to a local directory of this server.

Graph hands packages out through the storage they were written to (a blob container); a local
directory has no such door, so this route is it (the web console downloads through it). It
needs User.Export.All like every other operation route, each download leaves a
`package.downloaded` audit entry (before the first byte is sent), and the answer is marked
`no-store`: it is someone's personal data.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import BinaryIO

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from datapolicy.engine import ExportService
from datapolicy.odata.options import NO_OPTIONS, parse_query_options
from datapolicy.store.audit import AuditAction
from datapolicy.web.middleware.audit import audit_of


async def download_package(request: Request) -> Response:
    parse_query_options(request.query_params.multi_items(), NO_OPTIONS)
    operation_id = request.path_params["operation_id"]
    exports: ExportService = request.app.state.exports
    # Opened by the engine before anything is answered: a package that retention or a DELETE
    # removes meanwhile is still read whole from the open file, not failed mid-response.
    operation, file = await run_in_threadpool(exports.local_package, operation_id)
    try:
        await audit_of(request).record(
            request.scope,
            AuditAction.PACKAGE_DOWNLOADED,
            user_id=operation.user_id,
            operation_id=operation.id,
        )
    except BaseException:
        file.close()
        raise
    return StreamingResponse(
        _chunks(file),
        media_type="application/zip",
        headers={
            "Content-Length": str(os.fstat(file.fileno()).st_size),
            "Content-Disposition": f'attachment; filename="{operation_id}.zip"',
            "Cache-Control": "no-store",
        },
    )


def _chunks(file: BinaryIO, size: int = 1024 * 1024) -> Iterator[bytes]:
    """The open package in chunks (Starlette reads a sync iterator in its thread pool)."""
    with file:
        while chunk := file.read(size):
            yield chunk
