"""Presigned S3 PUT URLs for tests whose server never checks the signature: the SigV4 fields a
location must carry to be recognised as presigned, with a signature no S3 server would accept."""

from __future__ import annotations

from datetime import UTC, datetime
from urllib.parse import urlencode

from s3server import REGION

SIGNATURE = "5ec7e75ec7e75ec7e75ec7e75ec7e75ec7e75ec7e75ec7e75ec7e75ec7e75ec7"


def sigv4(base: str, signed_at: datetime | None = None, expires: int = 3600, **fields: str) -> str:
    """`base` with SigV4 query fields; `fields` add or (empty) remove one (`X_Amz_Date=""`)."""
    signed_at = signed_at or datetime.now(UTC)
    query = {
        "X-Amz-Algorithm": "AWS4-HMAC-SHA256",
        "X-Amz-Credential": f"AKIDEXAMPLE/{signed_at:%Y%m%d}/{REGION}/s3/aws4_request",
        "X-Amz-Date": f"{signed_at:%Y%m%dT%H%M%SZ}",
        "X-Amz-Expires": str(expires),
        "X-Amz-SignedHeaders": "host",
        "X-Amz-Signature": SIGNATURE,
        **{name.replace("_", "-"): value for name, value in fields.items()},
    }
    return f"{base}?{urlencode({k: v for k, v in query.items() if v})}"
