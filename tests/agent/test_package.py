"""The agent as clinics install it: its own wheel with only what it needs, Python 3.10 code,
and no Django or Celery behind its imports."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

from tests.agent.conftest import ROOT

WHEEL_SOURCES = [
    "vetsync/agent",
    "vetsync/pims/__init__.py",
    "vetsync/pims/agent.py",
    "vetsync/pims/records.py",
]


def test_importing_the_agent_pulls_in_neither_django_nor_celery() -> None:
    probe = (
        "import sys, vetsync.agent.cli, vetsync.agent.runner, vetsync.agent.demo; "
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'django', 'celery'}))"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, cwd=ROOT, check=True
    )
    assert result.stdout.strip() == "[]"


def test_the_wheel_holds_the_agent_and_the_batch_format_in_python_310_code(
    tmp_path: Path,
) -> None:
    # Built from a copy of only the files the wheel may hold: anything else it imported from
    # the repository would be missing here.
    source = tmp_path / "src"
    for relative in WHEEL_SOURCES:
        origin, target = ROOT / relative, source / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        if origin.is_dir():
            shutil.copytree(origin, target, ignore=shutil.ignore_patterns("__pycache__", "build"))
        else:
            shutil.copy(origin, target)
    built = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
         "-w", str(tmp_path / "dist"), str(source / "vetsync/agent")],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert built.returncode == 0, built.stderr
    (wheel,) = (tmp_path / "dist").glob("vetsync_agent-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        archive.extractall(tmp_path / "unpacked")
        metadata = next(archive.read(n) for n in names if n.endswith("METADATA")).decode()
    assert {"vetsync/agent/cli.py", "vetsync/pims/agent.py", "vetsync/pims/records.py"} <= names
    assert "vetsync/agent/examples/cornerstone.toml" in names
    assert not any(
        n.startswith(("vetsync/__init__", "vetsync/settings", "vetsync/pims/ezyvet")) for n in names
    )
    assert "Requires-Python: >=3.10" in metadata
    assert 'Requires-Dist: tomli>=2.0; python_version < "3.11"' in metadata
    assert "vetsync-agent = vetsync.agent.cli:main" in next(
        zipfile.ZipFile(wheel).read(n).decode() for n in names if n.endswith("entry_points.txt")
    )
    vermin = subprocess.run(
        [str(Path(sys.executable).with_name("vermin")), "-t=3.10-", "--no-tips", "--violations",
         "--eval-annotations", str(tmp_path / "unpacked" / "vetsync")],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert vermin.returncode == 0, vermin.stdout
