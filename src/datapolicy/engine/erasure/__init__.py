"""Erasure: a person's rows deleted or masked, as the configuration's rules say, selected by the
export's own selection (docs/erasure.md). No HTTP, no queue: `erase_person` is the whole of it."""

from datapolicy.engine.erasure.masks import Masker
from datapolicy.engine.erasure.run import ErasureFailed, ErasureResult, FilesResult, erase_person
from datapolicy.engine.erasure.sql import SqlEraser, TableResult

__all__ = [
    "ErasureFailed",
    "ErasureResult",
    "FilesResult",
    "Masker",
    "SqlEraser",
    "TableResult",
    "erase_person",
]
