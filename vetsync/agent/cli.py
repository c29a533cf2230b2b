"""``vetsync-agent`` / ``python -m vetsync.agent``: check, run, once, status."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
from pathlib import Path
from typing import TYPE_CHECKING

from vetsync.agent import __version__
from vetsync.agent.config import Config, ConfigError, load_config

if TYPE_CHECKING:
    from vetsync.agent.runner import Agent

DEFAULT_CONFIG = "vetsync-agent.toml"

DESCRIPTION = """\
VetSync's clinic-side agent. It reads the practice system (a SQL database through a mapping
file, or a folder of CSV exports), sends VetSync the first copy and then every change, and
writes shipped orders back into the practice (a file drop, or an import table).

commands:
  check    test the configuration, the mapping, the practice system and VetSync (token)
  run      run as a service: a run every interval until stopped (SIGTERM or Ctrl-C)
  once     one run: read, send what changed, write back; exit 0 when nothing failed
  status   what the agent has done and has still to send, from its state file
"""


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="vetsync-agent",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "-c",
        "--config",
        default=os.environ.get("VETSYNC_AGENT_CONFIG", DEFAULT_CONFIG),
        help=f"the configuration file (default: $VETSYNC_AGENT_CONFIG or ./{DEFAULT_CONFIG})",
    )
    parser.add_argument("-q", "--quiet", action="store_true", help="log warnings only")
    parser.add_argument("--version", action="version", version=f"vetsync-agent {__version__}")
    parser.add_argument("command", choices=("check", "run", "once", "status"))
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(
        level=logging.WARNING if args.quiet else logging.INFO,
        format="%(asctime)s %(name)s %(levelname)s %(message)s",
        stream=sys.stderr,
    )
    try:
        config = load_config(Path(args.config))
    except ConfigError as exc:
        print(f"vetsync-agent: {exc}", file=sys.stderr)
        return 2
    if args.command == "status":
        from vetsync.agent.runner import status

        print(status(config).text())
        return 0
    return _with_agent(args.command, config)


def _with_agent(command: str, config: Config) -> int:
    from vetsync.agent.readers import SourceError
    from vetsync.agent.runner import Agent

    stop = threading.Event()
    try:
        agent = Agent(config, stop=stop)
    except (ConfigError, SourceError) as exc:
        print(f"vetsync-agent: {exc}", file=sys.stderr)
        return 2
    try:
        if command == "check":
            return _check(agent)
        if command == "once":
            return 1 if agent.once()["errors"] else 0
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, lambda *_: stop.set())
        agent.run_forever()
        return 0
    finally:
        agent.close()


def _check(agent: Agent) -> int:
    problems = agent.check()
    report = agent.check_report
    if report:
        print(f"practice system: {report['clients']} clients readable")
        for reason, count in sorted(report["quarantined"].items(), key=lambda kv: -kv[1])[:10]:
            print(f"  VetSync would quarantine {count}: {reason}")
    for problem in problems:
        print(f"problem: {problem}", file=sys.stderr)
    if problems:
        return 1
    print(f"ok: VetSync at {agent.config.url} takes the token; the practice system is readable.")
    return 0
