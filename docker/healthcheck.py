#!/usr/bin/env python3
"""Container health check: the worker answers ``GET /health`` on its advertised address.

Same address rule as ``entrypoint.sh`` (a health check does not see the variables the
entry point exported). Exit status 0 is healthy, 1 unhealthy.
"""

import os
import socket
import sys
import urllib.request

host = os.environ.get("YADTQ_WEB_HOST") or socket.gethostbyname(socket.gethostname())
port = os.environ.get("YADTQ_WEB_PORT") or "6066"
try:
    with urllib.request.urlopen(f"http://{host}:{port}/health", timeout=3) as response:
        sys.exit(0 if response.status == 200 else 1)
except Exception as exc:  # noqa: BLE001 - any failure is "unhealthy", with the reason in the health log
    sys.stderr.write(f"unhealthy: {exc}\n")
    sys.exit(1)
