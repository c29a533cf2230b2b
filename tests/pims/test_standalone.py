"""``vetsync.pims`` runs on its own: the clinic-side agent imports it without Django, Celery
or any of VetSync's apps."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

# Imports every module under vetsync.pims (the emulator's CLI too), then names any module it
# pulled in from a package vetsync.pims must not need.
PROBE = """
import importlib, pkgutil, sys
import vetsync.pims
for module in pkgutil.walk_packages(vetsync.pims.__path__, "vetsync.pims."):
    importlib.import_module(module.name)
banned = {"django", "celery", "kombu", "clinics", "records", "prescriptions"}
print(" ".join(sorted(m for m in sys.modules if m.split(".")[0] in banned)))
"""


def test_vetsync_pims_imports_without_django_celery_or_the_apps() -> None:
    result = subprocess.run(
        [sys.executable, "-c", PROBE],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == []
