"""SilentPeers: a worker that does not answer forwarded requests is warned of once."""

from __future__ import annotations

import logging

import pytest

from yadtq_app.silent_peers import SilentPeers

A, B = "http://127.0.0.1:6066", "http://127.0.0.1:6067"


def _said(caplog: pytest.LogCaptureFixture, level: int) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "yadtq_app.silent_peers" and r.levelno == level]


def test_a_silent_worker_is_warned_of_once_until_it_answers_again(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="yadtq_app.silent_peers")
    peers = SilentPeers()
    peers.answered(A)  # answering all along: nothing to say
    assert caplog.records == []
    for _ in range(50):  # every read of its partitions during a failover
        peers.failed(A, "/tasks/x", ConnectionRefusedError("refused"))
    peers.failed(B, "3 statuses", TimeoutError())
    warned = _said(caplog, logging.WARNING)
    assert len(warned) == 2 and A in warned[0] and "/tasks/x" in warned[0] and B in warned[1]
    assert len(_said(caplog, logging.DEBUG)) == 49
    assert A in peers and B in peers

    peers.answered(A)
    assert _said(caplog, logging.INFO) == [f"{A} answers again"] and A not in peers
    peers.failed(A, "/tasks/y", ConnectionRefusedError("refused"))  # silent again: said again
    assert len(_said(caplog, logging.WARNING)) == 3
