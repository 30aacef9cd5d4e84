"""The built distribution claims no top-level import name but ``yadtq_app``.

The repository keeps ``agents/`` and ``tables/`` at its top level; the wheel must install
them as ``yadtq_app.agents`` and ``yadtq_app.tables``, beside a package that owns the
name ``tables`` (PyTables) without touching it.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import sysconfig
import venv
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # Built from a copy of what the distribution needs: a build/ folder left in the
    # repository by an earlier build would leak its stale packages into the wheel.
    source = tmp_path_factory.mktemp("source")
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    for folder in ("yadtq_app", "agents", "tables"):
        shutil.copytree(ROOT / folder, source / folder, ignore=shutil.ignore_patterns("__pycache__"))
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps",
         "--wheel-dir", str(out), str(source)],
        check=True, timeout=300, capture_output=True,
    )
    (built,) = out.glob("yadtq-*.whl")
    return built


def test_the_wheel_has_one_top_level_package(wheel: Path) -> None:
    names = zipfile.ZipFile(wheel).namelist()
    tops = {name.split("/")[0] for name in names if not name.split("/")[0].endswith(".dist-info")}
    assert tops == {"yadtq_app"}
    assert "yadtq_app/agents/tasks.py" in names
    assert "yadtq_app/tables/task_status.py" in names
    (top_level,) = [name for name in names if name.endswith(".dist-info/top_level.txt")]
    assert zipfile.ZipFile(wheel).read(top_level).decode().split() == ["yadtq_app"]


def test_the_wheel_installs_beside_pytables_name(wheel: Path, tmp_path: Path) -> None:
    env = tmp_path / "venv"
    venv.EnvBuilder(with_pip=False).create(env)
    python = env / "bin" / "python"
    site = Path(subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True, timeout=60, capture_output=True, text=True,
    ).stdout.strip())
    # A package that owns the import name ``tables``, as PyTables does.
    (site / "tables").mkdir()
    (site / "tables" / "__init__.py").write_text("OWNER = 'pytables'\n")
    subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(python), "install", "--quiet", "--no-deps",
         "--no-index", str(wheel)],
        check=True, timeout=300, capture_output=True,
    )
    probe = (
        "import importlib.util, tables\n"
        "print(tables.OWNER)\n"
        "print(importlib.util.find_spec('agents'))\n"
        # Found, not imported: yadtq_app's dependencies are not installed here.
        "import pathlib\n"
        "package = pathlib.Path(importlib.util.find_spec('yadtq_app').origin).parent\n"
        "for name in ('agents/tasks.py', 'tables/task_status.py'):\n"
        "    print((package / name).resolve(strict=True))\n"
    )
    # Imports resolve in the fresh venv only: not from the repository, not from this venv.
    lines = subprocess.run(
        [str(python), "-I", "-c", probe], check=True, timeout=60, capture_output=True, text=True,
        cwd=tmp_path,
    ).stdout.split()
    assert lines[0] == "pytables"
    assert lines[1] == "None"
    for origin in lines[2:]:
        assert origin.startswith(str(site / "yadtq_app")), origin
    assert sysconfig.get_paths()["purelib"] != str(site)
