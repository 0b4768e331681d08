"""Secrets out of text bound for a log or an error message: the one redaction helper.

What it removes (docs/security.md, "Secrets in logs and messages"):

- the query of every URL (a SAS, a presigned S3 URL's signature and credential scope);
- stray credential fields wherever they appear (`sig=`, `se=`, `X-Amz-Signature=`,
  `X-Amz-Credential=`, `Signature=`, `Credential=`, `AWSAccessKeyId=`, `password=`, ...),
  as in a signed request's `Authorization` header, and a signature botocore logs on its own;
- the password of a URL's user information (`postgresql://user:PASSWORD@host/db`);
- bearer tokens and anything shaped like a JWT.

`install()` makes every log record of the process pass through it (its message and its
traceback), whichever library logs it and whichever handler writes it.
"""

from __future__ import annotations

import logging
import re
from typing import Any

MASK = "…"

_URL_QUERY = re.compile(r"([a-z][a-z0-9+.-]*://[^\s'\"?]*)\?[^\s'\"]*", re.IGNORECASE)
# (a password SQLAlchemy already hid as *** is left as it is)
_USERINFO_PASSWORD = re.compile(
    r"([a-z][a-z0-9+.-]*://[^\s/:@'\"]*):(?!\*+@)[^\s/@'\"]+@", re.IGNORECASE
)
_FIELD = re.compile(
    r"\b(sig|se|sp|sv|st|si|skoid|sktid|skt|ske|sks|skv|X-Amz-[A-Za-z-]+|Signature|Credential"
    r"|AWSAccessKeyId|access_key_id|secret_access_key|aws_secret_access_key|password|passwd"
    r"|client_secret|access_token|refresh_token|id_token|token)=[^&\s'\",;]*",
    re.IGNORECASE,
)
_LABELLED_SIGNATURE = re.compile(r"\b(Signature:\s*)[0-9a-f]{16,}", re.IGNORECASE)  # botocore
_BEARER = re.compile(r"\b(Bearer)\s+[A-Za-z0-9._~+/=-]+", re.IGNORECASE)
_JWT = re.compile(r"\beyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*")


def redact(text: str) -> str:
    """`text` without the secrets listed in the module's docstring."""
    text = _URL_QUERY.sub(r"\1", text)
    text = _USERINFO_PASSWORD.sub(rf"\1:{MASK}@", text)
    text = _FIELD.sub(rf"\1={MASK}", text)
    text = _LABELLED_SIGNATURE.sub(rf"\1{MASK}", text)
    text = _BEARER.sub(rf"\1 {MASK}", text)
    return _JWT.sub(MASK, text)


_installed: list[Any] = []


def install() -> None:
    """Redact every log record made from now on in this process (once; later calls do
    nothing). A record factory rather than a handler filter, so that records of every logger
    (azure, botocore, urllib3, uvicorn) are covered whatever handlers are configured later."""
    if _installed:
        return
    make_record = logging.getLogRecordFactory()

    def redacting_record(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = make_record(*args, **kwargs)
        message = record.getMessage()
        cleaned = redact(message)
        if cleaned != message:
            record.msg, record.args = cleaned, ()
        if record.exc_info and record.exc_info[0] is not None:
            record.exc_text = redact(logging.Formatter().formatException(record.exc_info))
        return record

    logging.setLogRecordFactory(redacting_record)
    _installed.append(redacting_record)
