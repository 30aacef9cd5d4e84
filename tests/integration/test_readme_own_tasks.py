"""The README's "Your own tasks" section, run as written from an empty folder outside the repository.

Only the install line differs by default: the project's own virtualenv is linked as
``.venv`` instead of a fresh one with ``pip install <repo>`` (a minute of installing on
this machine). ``YADTQ_TEST_FRESH_VENV=1`` runs that line as written too. Ports come from
``YADTQ_BROKER_URL``, ``YADTQ_WEB_PORT`` and ``YADTQ_URL``, which the commands honour,
so the test never takes 9092 or 6066.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.cluster import ROOT, free_port
from tests.support.wait import wait_for
from yadtq_app.broker import port_is_free

pytestmark = pytest.mark.integration

INSTALL = "python3 -m venv .venv && .venv/bin/pip install --quiet /path/to/yadtq"


def readme_sh_block(marker: str) -> str:
    """The ``sh`` block that follows ``<!-- own-tasks: marker -->`` in the README."""
    text = (ROOT / "README.md").read_text()
    m = re.search(rf"<!-- own-tasks: {marker} -->\n```sh\n(.*?)```", text, re.S)
    assert m, f"README has no own-tasks {marker} block"
    return m.group(1)


def three_free_ports() -> int:
    def candidate() -> int:
        p = free_port()
        return p if p < 65000 and all(port_is_free("127.0.0.1", p + i) for i in range(3)) else 0

    return wait_for(candidate, timeout=10, message="three free ports in a row")


def test_your_own_tasks_section_as_written(tmp_path: Path) -> None:
    assert not str(tmp_path).startswith(str(ROOT))
    setup = readme_sh_block("setup")
    assert INSTALL in setup
    if os.environ.get("YADTQ_TEST_FRESH_VENV") == "1":
        setup = setup.replace("/path/to/yadtq", str(ROOT))
    else:
        setup = setup.replace(INSTALL, f"ln -s {Path(sys.executable).parent.parent} .venv")
    web_port = three_free_ports()
    env = {k: v for k, v in os.environ.items() if not k.startswith("YADTQ_") and k != "PYTHONPATH"}
    env.update(YADTQ_BROKER_URL=f"kafka://127.0.0.1:{free_port()}", YADTQ_WEB_PORT=str(web_port),
               YADTQ_URL=f"http://127.0.0.1:{web_port}")
    log_path = tmp_path / "run.log"
    with open(log_path, "wb") as log:
        # The block ends in `yadtq run`, in the foreground: its own process group, stopped with Ctrl-C.
        run = subprocess.Popen(["bash", "-ec", setup], cwd=str(tmp_path), env=env, stdout=log,
                               stderr=subprocess.STDOUT, start_new_session=True)
    try:
        wait_for(lambda: "Ctrl-C stops" in log_path.read_text(errors="replace") or run.poll() is not None,
                 timeout=240, interval=0.5, message="`yadtq run --workers 3` to print its hints")
        assert run.poll() is None, log_path.read_text(errors="replace")
        use = subprocess.run(["bash", "-ec", readme_sh_block("use")], cwd=str(tmp_path), env=env,
                             capture_output=True, text=True, timeout=180)
        out = use.stdout
        assert use.returncode == 0, use.stdout + use.stderr
        assert '"cat.png at 200px"' in out.splitlines()[0], out
        workers = [line for line in out.splitlines() if re.match(r"\S+\s+\d+\s+yes\s", line)]
        assert len(workers) == 3 and "DIFFERS" not in out, out
        assert re.search(r"^\s+resize\s+thread\s+timeout 300 s, max_retries 3", out, re.M), out
        assert "multiply" not in out  # only the listed module's tasks
        assert (tmp_path / "myproject" / ".yadtq" / f"worker-{web_port + 2}").is_dir()
    finally:
        if run.poll() is None:
            os.killpg(run.pid, signal.SIGINT)
            try:
                run.wait(90)
            except subprocess.TimeoutExpired:
                os.killpg(run.pid, signal.SIGKILL)
                run.wait(10)
