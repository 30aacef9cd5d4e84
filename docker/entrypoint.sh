#!/bin/sh
# Entry point of the yadtq worker image.
#
# A worker's HTTP address is also the address other workers route reads to
# (GET /tasks/{id} goes to the worker that owns the task's partition), so it must be
# this container's own, reachable address: not 0.0.0.0, and different in every
# replica of a scaled service. Unless set explicitly, take the address the container's
# hostname resolves to, and name the worker after the container.
set -eu
if [ -z "${YADTQ_WEB_HOST:-}" ]; then
    YADTQ_WEB_HOST=$(python -c 'import socket; print(socket.gethostbyname(socket.gethostname()))')
    export YADTQ_WEB_HOST
fi
if [ -z "${YADTQ_WORKER_ID:-}" ]; then
    YADTQ_WORKER_ID=$(hostname 2>/dev/null || python -c 'import socket; print(socket.gethostname())')
    export YADTQ_WORKER_ID
fi
exec "$@"
