"""The cloud SDKs (azure-storage-blob with aiohttp, boto3) are imported when a storage location
needs them, not by every process: importing them costs about 0.75 s of CPU, which each `serve`
and `worker` process and each command that opens the store would pay (engine/targets)."""

from __future__ import annotations

import subprocess
import sys

SDKS = ("azure", "aiohttp", "boto3", "botocore", "s3transfer")
CHECK = f"""
import sys
import datapolicy.cli.serve, datapolicy.server, datapolicy.engine.worker
import datapolicy.web.test_double.profile
print(sorted({{name.split(".")[0] for name in sys.modules}} & set({SDKS!r})))
"""


def test_the_server_and_the_worker_import_no_cloud_sdk():
    loaded = subprocess.run(
        [sys.executable, "-c", CHECK], capture_output=True, text=True, timeout=120, check=True
    )
    assert loaded.stdout.strip() == "[]", loaded.stdout
