"""The data folder: the lock, and when tables are stale (yadtq_app.datadir)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from yadtq_app.datadir import BrokerMarker, DataDirLock, check_marker, stale_reason


def marker(cluster: str = "c1", **offsets: int) -> BrokerMarker:
    return BrokerMarker(cluster, {"t-changelog": {p[1:]: o for p, o in offsets.items()}})


def test_tables_of_another_cluster_or_a_recreated_topic_are_stale() -> None:
    assert stale_reason(marker(p0=5), marker(p0=7), has_tables=True) is None
    assert stale_reason(marker(p0=5), marker(p0=5), has_tables=True) is None
    assert "cluster" in (stale_reason(marker("c1"), marker("c2"), has_tables=True) or "")
    assert "created again" in (stale_reason(marker(p0=5), marker(p0=3), has_tables=True) or "")
    assert "created again" in (stale_reason(marker(p0=5), marker(), has_tables=True) or "")
    assert stale_reason(None, marker(), has_tables=True) is not None
    assert stale_reason(None, marker(), has_tables=False) is None


def test_check_marker_wipes_only_stale_tables(tmp_path: Path) -> None:
    folder = str(tmp_path)
    (tmp_path / "v1").mkdir()
    assert check_marker(folder, marker("c1")) is not None  # tables with no marker: wiped
    assert not (tmp_path / "v1").exists()
    (tmp_path / "v1").mkdir()
    assert check_marker(folder, marker("c1")) is None and (tmp_path / "v1").exists()
    assert check_marker(folder, marker("c2")) is not None and not (tmp_path / "v1").exists()
    assert BrokerMarker.load(folder) == marker("c2")


def test_two_processes_never_share_a_data_folder(tmp_path: Path) -> None:
    mine = DataDirLock(str(tmp_path))
    mine.acquire()
    try:
        code = ("import sys; from yadtq_app.datadir import DataDirLock\n"
                f"try:\n DataDirLock({str(tmp_path)!r}).acquire()\nexcept Exception as e:\n print(e); sys.exit(3)")
        r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=30)
        assert r.returncode == 3 and "in use by another worker" in r.stdout, r.stdout + r.stderr
    finally:
        mine.release()
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stdout + r.stderr  # the control case: free again



def test_the_command_line_web_port_is_found() -> None:
    from yadtq_app.settings import command_line_port

    assert command_line_port(["/v/bin/faust", "-A", "yadtq_app", "worker", "--web-port", "6068"]) == 6068
    assert command_line_port(["/v/bin/faust", "-A", "yadtq_app", "worker", "-p", "6069"]) == 6069
    assert command_line_port(["/v/bin/yadtq", "worker", "--web-port=6070"]) == 6070
    assert command_line_port(["/v/bin/faust", "-A", "yadtq_app", "worker"]) is None
    assert command_line_port(["/v/bin/pytest", "-p", "no:x", "worker"]) is None  # not a worker command
