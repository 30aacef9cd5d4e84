"""A network namespace joined to this host by a veth pair: a test host whose link to
the broker can be cut (``tc netem`` is not available here; link down is)."""

from __future__ import annotations

import os
import random
import shutil
import subprocess
import uuid
from typing import Optional


def netns_available() -> Optional[str]:
    """``None`` if namespaces can be made here, else why not."""
    if os.geteuid() != 0:
        return "network namespaces need root"
    if shutil.which("ip") is None:
        return "network namespaces need iproute2's ip"
    return None


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, timeout=10)


class TestHost:
    """A namespace ``name`` with address :attr:`address`, reached from this host's
    :attr:`gateway` over a veth pair. Only these two addresses, both made here, carry
    the test's traffic."""

    __test__ = False  # not a pytest test class

    def __init__(self) -> None:
        tag = uuid.uuid4().hex[:6]
        self.name = f"yadtq-{tag}"
        self.host_link = f"yqh{tag}"
        self.ns_link = f"yqn{tag}"
        subnet = random.randint(1, 250)
        self.gateway = f"10.213.{subnet}.1"
        self.address = f"10.213.{subnet}.2"

    @property
    def wrap(self) -> list[str]:
        """The prefix that runs a command inside the namespace."""
        return ["ip", "netns", "exec", self.name]

    def create(self) -> "TestHost":
        _ip("netns", "add", self.name)
        try:
            _ip("link", "add", self.host_link, "type", "veth", "peer", "name", self.ns_link)
            _ip("link", "set", self.ns_link, "netns", self.name)
            _ip("addr", "add", f"{self.gateway}/30", "dev", self.host_link)
            _ip("link", "set", self.host_link, "up")
            _ip("netns", "exec", self.name, "ip", "addr", "add", f"{self.address}/30", "dev", self.ns_link)
            _ip("netns", "exec", self.name, "ip", "link", "set", self.ns_link, "up")
            _ip("netns", "exec", self.name, "ip", "link", "set", "lo", "up")
        except BaseException:
            self.delete()
            raise
        return self

    def cut(self) -> None:
        """Take the link down: nothing passes either way."""
        _ip("link", "set", self.host_link, "down")

    def restore(self) -> None:
        _ip("link", "set", self.host_link, "up")

    def delete(self) -> None:
        subprocess.run(["ip", "link", "del", self.host_link], capture_output=True, timeout=10)
        subprocess.run(["ip", "netns", "del", self.name], capture_output=True, timeout=10)
