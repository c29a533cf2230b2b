"""The agent against a live VetSync (the test server) and a generated practice database."""

from __future__ import annotations

import datetime as dt
import os
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from clinics.models import Connector, Integration
from clinics.services import integration_issue_agent_token
from tests.agent.proxy import Proxy
from tests.conftest import World
from tests.prescriptions.conftest import catalogue  # noqa: F401 (a fixture, used by name)
from vetsync.agent.config import load_config
from vetsync.agent.demo import cornerstone_create
from vetsync.agent.runner import Agent

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "vetsync" / "agent" / "examples"


@dataclass
class Site:
    """Clinic B on Cornerstone through DataPoint, with WriteBack on, and its agent's token."""

    integration: Integration
    token: str
    url: str


@pytest.fixture
def site(world: World, live_server: Any) -> Site:
    clinic = world.b.clinic
    clinic.writeback_enabled = True
    clinic.save()
    integration = clinic.integration
    integration.connector = Connector.DATAPOINT
    integration.save()
    token = integration_issue_agent_token(integration=integration, actor=None)
    return Site(integration=integration, token=token, url=live_server.url)


@pytest.fixture
def practice_db(tmp_path: Path) -> Path:
    return cornerstone_create(tmp_path / "practice.sqlite3", clients=30)


@pytest.fixture
def proxy(site: Site) -> Iterator[Proxy]:
    proxy = Proxy(site.url)
    yield proxy
    proxy.close()


def write_config(
    folder: Path,
    *,
    url: str,
    token: str,
    practice: str,
    mapping: Path = EXAMPLES / "cornerstone.toml",
    kind: str = "sql",
    writer: str = "file",
    part_size: int = 1000,
    max_attempts: int = 3,
    name: str = "agent.toml",
    batch_source: str = "datapoint",
) -> Path:
    """An agent configuration file (fast retries: the tests wait for no real backoff)."""
    source = f'url = "{practice}"' if kind == "sql" else f'folder = "{practice}"'
    writeback_url = f'url = "{practice}"' if writer == "table" else ""
    path = folder / name
    path.write_text(
        f"""
[vetsync]
url = "{url}"
token = "{token}"
source = "{batch_source}"

[practice]
kind = "{kind}"
{source}
mapping = "{mapping}"

[state]
path = "agent-state.sqlite3"

[delivery]
part_size = {part_size}
max_attempts = {max_attempts}
backoff_base = 0.05
backoff_max = 0.2
apply_wait = 60

[writeback]
writer = "{writer}"
folder = "dropped"
{writeback_url}
""",
        encoding="utf-8",
    )
    return path


def once(config: Path) -> dict[str, Any]:
    agent = Agent(load_config(config))
    try:
        return agent.once()
    finally:
        agent.close()


def agent_command(config: Path, *args: str, **kwargs: Any) -> subprocess.CompletedProcess[str]:
    """``python -m vetsync.agent`` in its own process, as a clinic's server would run it."""
    return subprocess.run(
        [sys.executable, "-m", "vetsync.agent", "-c", str(config), *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        **kwargs,
    )


def practice_sql(db: Path, statement: str, *params: Any) -> None:
    """A change in the practice system, stamped as the practice system stamps it."""
    connection = sqlite3.connect(str(db))
    with connection:
        connection.execute(statement, params)
    connection.close()


def later(minutes: int = 5) -> str:
    return (dt.datetime(2026, 11, 1, 8, 0) + dt.timedelta(minutes=minutes)).isoformat(sep=" ")
