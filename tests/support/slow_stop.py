"""``python -m tests.support.slow_stop …``: a ``yadtq worker`` whose stop is held for
``YADTQ_TEST_SLOW_STOP`` seconds (default 3) while its consumer is still in the group,
so a rebalance can assign it partitions while it stops. Used as a command prefix
(``Cluster.add(wrap=...)``): the arguments after it are ignored."""

from __future__ import annotations

import asyncio
import os
import sys

from mode import Service

from yadtq_app.application import app
from yadtq_app.cli import main


@app.service
class SlowStop(Service):
    """Sleeps in its ``on_stop``, which runs before the consumer's."""

    async def on_stop(self) -> None:
        await asyncio.sleep(float(os.environ.get("YADTQ_TEST_SLOW_STOP", "3")))


if __name__ == "__main__":
    sys.exit(main(["worker"]))
