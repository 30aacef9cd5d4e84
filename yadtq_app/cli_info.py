"""``yadtq info``: the broker and topics from this environment's settings, and the tasks
a worker registers (or this folder's task modules, ``--local``)."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
from typing import Any, Optional

from .cli_tasks import worker_client
from .errors import ClientError

__all__ = ["cmd_info"]

# The name the CLI's log lines have always had (yadtq_app.cli), wherever the code lives.
logger = logging.getLogger("yadtq_app.cli")


def cmd_info(args: argparse.Namespace) -> int:
    """The broker and topics (from this environment's settings) and the tasks a worker
    registers (asked of ``--url``), or this folder's task modules with ``--local``."""
    from .admin import describe_topics
    from .security import client_options
    from .settings import Settings

    settings = Settings.from_env()
    if args.local:
        from .registry import default_registry, describe_task

        default_registry.load_modules(settings.task_modules)
        registry: dict[str, Any] = {"worker": None, "task_modules": list(settings.task_modules),
                                    "tasks_digest": default_registry.digest(),
                                    "tasks": [describe_task(t, settings) for t in default_registry]}
    else:
        try:
            registry = worker_client(args).registry()
        except ClientError as exc:  # the broker and topics are still worth showing
            registry = {"error": f"{exc}; start a worker (make run), pass --url, or --local to list this folder's "
                                 "YADTQ_TASK_MODULES without a worker"}
    wanted = settings.topics()
    try:
        actual: Optional[dict[str, int]] = asyncio.run(
            asyncio.wait_for(describe_topics(settings.bootstrap_servers, wanted,
                                                client_options=client_options(settings)), 10))
    except Exception as exc:  # noqa: BLE001 - info still shows the configuration
        logger.debug("could not describe topics: %s", exc)
        actual = None
    info: dict[str, Any] = {
        "broker_url": settings.broker_url,
        "broker_profile": settings.resolved_profile,
        "broker_reachable": actual is not None,
        "topics": [{"name": n, "partitions": p, "exists": None if actual is None else n in actual,
                    "broker_partitions": None if actual is None else actual.get(n)} for n, p in wanted.items()],
        "tasks_from": "local" if args.local else args.url,
        **{k: registry.get(k) for k in ("worker", "task_modules", "tasks_digest", "tasks")},
    }
    if args.json:
        print(json.dumps({**info, "error": registry.get("error")} if "error" in registry else info, indent=2))
        return 2 if "error" in registry else 0
    print(f"broker   {info['broker_url']} (profile {info['broker_profile']}"
          f"{'' if actual is not None else ', not reachable'})")
    print("topics")
    for t in info["topics"]:
        state = "" if actual is None else ("" if t["exists"] else "  (not created yet)")
        count = t["partitions"]
        print(f"  {t['name']:40} {count} partition{'' if count == 1 else 's'}{state}")
    if "error" in registry:
        print(f"yadtq: tasks: {registry['error']}", file=sys.stderr)
        return 2
    source = "this folder's task modules (--local)" if args.local else f"worker {info['worker']} at {args.url}"
    print(f"tasks of {source}: {', '.join(info['task_modules'] or [])}")
    for t in info["tasks"] or []:
        kind = "async" if t["async"] else ("process" if t["process"] else "thread")
        print(f"  {t['name']:24} {kind:8} timeout {t['timeout']:g} s, max_retries {t['max_retries']}"
              f"{'  ' + t['doc'] if t.get('doc') else ''}")
    return 0
