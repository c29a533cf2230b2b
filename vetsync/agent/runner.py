"""One run of the agent (read, queue what changed, deliver, write back), the service loop, the
``check`` of everything it depends on, and its ``status``."""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from vetsync.agent import __version__
from vetsync.agent.config import Config
from vetsync.agent.delivery import deliver, plan
from vetsync.agent.mapping import Mapping, load_mapping
from vetsync.agent.readers import Reader, SourceError, make_reader, read_entries
from vetsync.agent.state import State
from vetsync.agent.transport import Refused, Unreachable, VetSync
from vetsync.agent.writeback import FileWriter, TableWriter, Writer, writeback_pull
from vetsync.pims.agent import BatchError, parse_client_entry, parse_header

log = logging.getLogger("vetsync.agent")


class Agent:
    def __init__(self, config: Config, *, stop: threading.Event | None = None) -> None:
        self.config = config
        self.stop = stop or threading.Event()
        self.mapping: Mapping = load_mapping(config.mapping_path)
        self.reader: Reader = make_reader(
            config.practice_kind,
            url=config.practice_url,
            folder=config.practice_folder,
            mapping=self.mapping,
        )
        self.state = State(config.state_path)
        self.vetsync = VetSync(config, stop=self.stop)
        self.writer = self._writer()
        self.check_report: dict[str, Any] = {}

    def _writer(self) -> Writer | None:
        cfg = self.config
        if cfg.writer == "none":
            return None
        if cfg.writer == "table":
            if self.mapping.writeback is None:
                raise SourceError(
                    f"writer = table needs a [writeback] section in {self.mapping.path.name}."
                )
            return TableWriter(cfg.writeback_url, self.mapping.writeback)
        assert cfg.writeback_folder is not None
        return FileWriter(cfg.writeback_folder, cfg.writeback_format)

    def close(self) -> None:
        self.vetsync.close()
        self.state.close()

    # --- one run -------------------------------------------------------------------------------

    def once(self) -> dict[str, Any]:
        """Read, queue what changed, deliver, write back; one log line says what happened."""
        started = time.monotonic()
        summary: dict[str, Any] = {"at": time.time(), "errors": []}
        try:
            extract = read_entries(self.reader, self.mapping)
            planned = plan(self.state, self.config, extract.entries)
            summary.update(
                read=len(extract.entries),
                queued_clients=planned.clients,
                queued_batches=planned.batches,
                first_copy=planned.full,
                orphans=extract.orphans,
            )
            if extract.duplicates:
                summary["errors"].append(f"{len(extract.duplicates)} duplicate client ids skipped")
        except SourceError as exc:
            summary["errors"].append(f"practice system: {exc}")
        sent = deliver(self.state, self.vetsync)
        summary.update(sent_batches=sent.batches, sent_clients=sent.clients, waiting=sent.waiting)
        summary["errors"] += sent.refused
        if sent.error:
            summary["errors"].append(f"delivery: {sent.error}")
        if self.writer is not None and not sent.error:
            pulled = writeback_pull(self.state, self.vetsync, self.writer)
            summary.update(written_back=pulled.written, writeback_failed=pulled.failed)
            if pulled.error:
                summary["errors"].append(f"writeback: {pulled.error}")
        summary["seconds"] = round(time.monotonic() - started, 2)
        self._remember(summary)
        return summary

    def _remember(self, summary: dict[str, Any]) -> None:
        line = run_line(summary)
        self.state.put("last_run_at", summary["at"])
        self.state.put("last_run", line)
        if self.vetsync.last_contact is not None:
            self.state.put("last_contact_at", self.vetsync.last_contact)
        if summary["errors"]:
            self.state.put("last_error", "; ".join(summary["errors"]))
            self.state.put("last_error_at", summary["at"])
            log.warning(line)
        else:
            self.state.put("last_ok_at", summary["at"])
            log.info(line)

    def run_forever(self) -> None:
        """Run every ``interval`` seconds until stopped (SIGTERM, Ctrl-C)."""
        interval = self.config.interval
        while not self.stop.is_set():
            began = time.monotonic()
            try:
                self.once()
            except Exception:  # a service keeps its schedule; the next run starts afresh
                log.exception("run failed")
            self.stop.wait(max(0.0, interval - (time.monotonic() - began)))

    # --- check ---------------------------------------------------------------------------------

    def check(self) -> list[str]:
        """Everything that would stop a run; empty when the agent can run."""
        problems = list(self.reader.problems())
        if isinstance(self.writer, TableWriter):
            problems += self.writer.problems()
        if not problems:
            problems += self._check_records()
        try:
            self.vetsync.probe()
        except Refused as exc:
            if exc.status == 401:
                problems.append(f"VetSync refused the agent token ({exc.message}).")
            else:
                problems.append(f"VetSync answered {exc}.")
        except Unreachable as exc:
            problems.append(f"VetSync at {self.config.url} cannot be reached: {exc}")
        return problems

    def _check_records(self) -> list[str]:
        """Read the practice system once and validate what would be sent, as VetSync would."""
        try:
            extract = read_entries(self.reader, self.mapping)
        except SourceError as exc:
            return [f"The practice system cannot be read: {exc}"]
        sample = {"source": self.config.source, "batch_id": "check", "clients": []}
        try:
            parse_header(sample)
        except BatchError as exc:
            return [str(exc)]
        reasons: dict[str, int] = {}
        for entry in extract.entries.values():
            for record in parse_client_entry(entry)[1]:
                reasons[record.reason] = reasons.get(record.reason, 0) + 1
        self.check_report = {"clients": len(extract.entries), "quarantined": reasons}
        if extract.entries:
            return []
        return [f"The mapping reads no clients from {self.mapping.clients.table!r}."]


def run_line(summary: dict[str, Any]) -> str:
    parts = [
        f"read={summary.get('read', '?')}",
        f"queued={summary.get('queued_clients', 0)}",
        f"sent_batches={summary.get('sent_batches', 0)}",
        f"sent_clients={summary.get('sent_clients', 0)}",
        f"waiting={summary.get('waiting', 0)}",
        f"written_back={summary.get('written_back', 0)}",
        f"writeback_failed={summary.get('writeback_failed', 0)}",
        f"seconds={summary.get('seconds', 0)}",
    ]
    if summary.get("first_copy"):
        parts.insert(1, "first_copy=yes")
    outcome = "error " + " | ".join(summary["errors"]) if summary.get("errors") else "ok"
    return f"run {outcome} " + " ".join(parts)


@dataclass
class Status:
    lines: list[tuple[str, str]] = field(default_factory=list)

    def add(self, label: str, value: object) -> None:
        self.lines.append((label, str(value)))

    def text(self) -> str:
        width = max(len(label) for label, _ in self.lines)
        return "\n".join(f"{label.ljust(width)}  {value}" for label, value in self.lines)


def _when(value: str | None) -> str:
    if not value:
        return "never"
    moment = dt.datetime.fromtimestamp(float(value), dt.timezone.utc)
    ago = int(time.time() - float(value))
    return f"{moment.isoformat(timespec='seconds')} ({_ago(ago)} ago)"


def _ago(seconds: int) -> str:
    if seconds < 120:
        return f"{seconds} s"
    if seconds < 7200:
        return f"{seconds // 60} min"
    return f"{seconds // 3600} h"


def status(config: Config) -> Status:
    """What the agent knows from its state file; no network, no practice system."""
    state = State(config.state_path)
    try:
        facts = state.facts()
        out = Status()
        out.add("agent", f"vetsync-agent {__version__} (id {facts.get('agent_id')})")
        out.add("VetSync", config.url)
        out.add("state file", config.state_path)
        out.add("last run", _when(facts.get("last_run_at")))
        out.add("last run said", facts.get("last_run", "-"))
        out.add("last VetSync contact", _when(facts.get("last_contact_at")))
        out.add("last delivery", _when(facts.get("last_delivered_at")))
        progress = state.extract_progress()
        if progress is None:
            out.add("first copy", "not started")
        else:
            done = "complete" if progress[1] == progress[2] else "in progress"
            out.add("first copy", f"{done}: {progress[1]} of {progress[2]} parts ({progress[0]})")
        counts = state.outbox_counts()
        queued = [counts.get(s, (0, 0)) for s in ("queued", "sent")]
        out.add(
            "waiting to send",
            f"{sum(b for b, _ in queued)} batches, {sum(c for _, c in queued)} clients",
        )
        out.add("clients tracked", state.given_count())
        rejected = state.last_rejected()
        if rejected:
            out.add("last refused batch", f"{rejected[0]}: {rejected[1]}")
        wb = state.writeback_counts()
        out.add("writeback items", ", ".join(f"{v} {k}" for k, v in sorted(wb.items())) or "none")
        if facts.get("last_error"):
            out.add("last error", f"{facts['last_error']} ({_when(facts.get('last_error_at'))})")
        return out
    finally:
        state.close()
