"""The emulator as its command line runs it, in a process of its own, for the CLI's tests."""

from __future__ import annotations

import contextlib
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


@contextlib.contextmanager
def emulator_process(*args: str) -> Iterator[str]:
    """``python -m vetsync.pims.emulator --port 0 ARGS``; yields the address it prints."""
    process = subprocess.Popen(
        [sys.executable, "-m", "vetsync.pims.emulator", "--port", "0", *args],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        match = re.search(r"listening on (http://\S+)", line)
        assert match, line
        yield match.group(1)
    finally:
        process.terminate()
        process.wait(timeout=5)
