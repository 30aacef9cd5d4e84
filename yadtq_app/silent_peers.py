"""Which workers did not answer a request forwarded to them, said once each.

A worker that stopped is still named the owner of its partitions until the group has
moved them, and every read of them is forwarded to it meanwhile: one warning per read
would flood the log of every worker during each failover. :class:`SilentPeers` warns
of a worker's first failure, logs the next ones at debug level, and says at info level
when it answers again. Pure code: no Faust, no I/O.
"""

from __future__ import annotations

import logging

__all__ = ["SilentPeers"]

logger = logging.getLogger(__name__)


class SilentPeers:
    """The workers whose last forwarded request failed."""

    def __init__(self) -> None:
        self._silent: set[str] = set()

    def failed(self, owner: str, what: str, exc: BaseException) -> None:
        """``owner`` did not answer the request for ``what``: a warning the first time."""
        if owner in self._silent:
            logger.debug("could not reach %s for %s: %s", owner, what, exc)
            return
        self._silent.add(owner)
        logger.warning("could not reach %s for %s: %s (said again only after it has answered)",
                       owner, what, exc)

    def answered(self, owner: str) -> None:
        """``owner`` answered a forwarded request."""
        if owner in self._silent:
            self._silent.discard(owner)
            logger.info("%s answers again", owner)

    def __contains__(self, owner: object) -> bool:
        return owner in self._silent
