"""The bare Faust worker the floor measures: the least a task queue must do per task.

One agent (concurrency 1) reads ``add`` tasks in yadtq's wire format, decodes the JSON,
adds the two numbers and writes one status row (raw JSON bytes) into a RocksDB table,
whose changelog record is what the driver counts. No status checks, time limits,
threads, leases or HTTP. Of yadtq it takes only what its broker profile gives a
worker's consumer: the transport (fetch waits, the end-offset remedy) and the group's
session, heartbeat and rebalance timeouts; Faust's defaults otherwise (acks=all, as
yadtq's profiles keep). ``bench/floor_target.py`` starts it, one process per worker:

    FLOOR_BROKER=kafka://... FLOOR_PROFILE=embedded|kafka FLOOR_DATA=DIR FLOOR_WORKER=w0 \\
        python bench/floor_app.py worker -l warn --without-web

Each row names the worker that wrote it (``FLOOR_WORKER``): the driver knows from the
changelog when every worker holds partitions.
"""

from __future__ import annotations

import json
import os
from typing import Any

PARTITIONS = 8
APP_ID = "floor"
TOPIC = "floor-tasks"
#: Faust's name for the changelog of the ``floor-status`` table.
CHANGELOG = f"{APP_ID}-floor-status-changelog"
PROFILES = ("embedded", "kafka")


def _profile_options(profile: str) -> tuple[type[Any], dict[str, Any]]:
    """The transport class and consumer-group options of yadtq's ``profile``, as its
    workers get them when no ``YADTQ_*`` setting overrides them."""
    from yadtq_app.kafka.profiles import BrokerProfile, EmbeddedProfile, EmbeddedTransport
    from yadtq_app.kafka.transport import Transport  # its class defaults are the kafka profile's

    chosen, transport = (EmbeddedProfile, EmbeddedTransport) if profile == "embedded" else (BrokerProfile, Transport)
    return transport, {"broker_session_timeout": chosen.session_timeout,
                       "broker_heartbeat_interval": chosen.heartbeat_interval,
                       "broker_rebalance_timeout": max(chosen.session_timeout, chosen.rebalance_timeout)}


def build_app(env: dict[str, str]) -> Any:
    """The bare Faust app, configured from ``env`` (the ``FLOOR_*`` variables above)."""
    import faust

    profile = env.get("FLOOR_PROFILE", "embedded")
    if profile not in PROFILES:
        raise SystemExit(f"FLOOR_PROFILE={profile!r} is not one of {', '.join(PROFILES)}")
    transport, options = _profile_options(profile)

    class App(faust.App):
        def _new_transport(self) -> Any:
            return transport(self.conf.broker_consumer, self)

    app = App(APP_ID, broker=env["FLOOR_BROKER"], store="rocksdb://", datadir=env["FLOOR_DATA"],
              topic_partitions=PARTITIONS, web_port=int(env.get("FLOOR_WEB_PORT", "6066")), web_host="127.0.0.1",
              consumer_auto_offset_reset="earliest", table_standby_replicas=0, **options)
    tasks = app.topic(TOPIC, key_type=bytes, value_type=bytes, value_serializer="raw", partitions=PARTITIONS)
    status = app.Table("floor-status", key_type=bytes, value_type=bytes, partitions=PARTITIONS)
    worker = env.get("FLOOR_WORKER", "w0")

    @app.agent(tasks)
    async def run(stream: Any) -> None:
        async for event in stream.events():
            task = json.loads(event.value)
            result = task["args"][0] + task["args"][1]
            status[event.key] = json.dumps({"task-id": task["task-id"], "status": "success", "result": result,
                                            "worker": worker}).encode()

    return app


if __name__ == "__main__":
    build_app(dict(os.environ)).main()
