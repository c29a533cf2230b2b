"""The agent's local state, one SQLite file: what VetSync has been given (a fingerprint and the
last entry of each client), the outbox of batches in order, the writeback items applied, and a
few facts for ``status``. Every step that must survive a kill commits here first."""

from __future__ import annotations

import json
import secrets
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS given (
    pims_id TEXT PRIMARY KEY,
    digest TEXT NOT NULL,
    entry TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS outbox (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    batch_id TEXT NOT NULL UNIQUE,
    full INTEGER NOT NULL,
    extract_id TEXT NOT NULL DEFAULT '',
    part INTEGER NOT NULL DEFAULT 0,
    parts INTEGER NOT NULL DEFAULT 0,
    clients INTEGER NOT NULL,
    body BLOB,
    status TEXT NOT NULL DEFAULT 'queued',
    queued_at REAL NOT NULL,
    sent_at REAL,
    done_at REAL,
    attempts INTEGER NOT NULL DEFAULT 0,
    run_url TEXT NOT NULL DEFAULT '',
    last_error TEXT NOT NULL DEFAULT ''
);
CREATE TABLE IF NOT EXISTS writeback (
    item_id INTEGER PRIMARY KEY,
    state TEXT NOT NULL,
    ok INTEGER,
    error TEXT NOT NULL DEFAULT '',
    item TEXT NOT NULL,
    applied_at REAL,
    acked_at REAL
);
"""

# Outbox row states: queued (not yet accepted), sent (accepted with 202, VetSync still applying
# it), done (applied), rejected (VetSync refused it: 4xx; kept for status and the log).
QUEUED, SENT, DONE, REJECTED = "queued", "sent", "done", "rejected"


@dataclass(frozen=True)
class OutboxRow:
    seq: int
    batch_id: str
    full: bool
    extract_id: str
    part: int
    parts: int
    clients: int
    body: bytes | None
    status: str
    attempts: int


class State:
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.db = sqlite3.connect(str(path), isolation_level=None, timeout=30)
        self.db.execute("PRAGMA journal_mode = WAL")
        self.db.execute("PRAGMA synchronous = FULL")
        self.db.executescript(SCHEMA)
        if self.get("agent_id") is None:
            # Part of every batch id: a fresh state file (a reinstall) never reuses an id.
            self.put("agent_id", secrets.token_hex(4))

    def close(self) -> None:
        self.db.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        self.db.execute("BEGIN IMMEDIATE")
        try:
            yield self.db
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        self.db.execute("COMMIT")

    # --- facts ---------------------------------------------------------------------------------

    def get(self, key: str, default: str | None = None) -> str | None:
        row = self.db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return row[0] if row else default

    def put(self, key: str, value: object) -> None:
        self.db.execute(
            "INSERT INTO meta (key, value) VALUES (?, ?) "
            "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            (key, str(value)),
        )

    def facts(self) -> dict[str, str]:
        return dict(self.db.execute("SELECT key, value FROM meta").fetchall())

    # --- what VetSync has been given -----------------------------------------------------------

    def given(self) -> dict[str, tuple[str, str]]:
        rows = self.db.execute("SELECT pims_id, digest, entry FROM given")
        return {pims_id: (digest, entry) for pims_id, digest, entry in rows}

    def given_count(self) -> int:
        return int(self.db.execute("SELECT count(*) FROM given").fetchone()[0])

    # --- the outbox ----------------------------------------------------------------------------

    def queue(
        self,
        batches: list[dict[str, Any]],
        given: list[tuple[str, str, str]],
        facts: dict[str, str],
    ) -> None:
        """Queue batches and record what they give VetSync, in one transaction: after a kill
        either both are there or neither, so no change is lost and none is queued twice."""
        now = time.time()
        with self.transaction() as db:
            for batch in batches:
                db.execute(
                    "INSERT INTO outbox (batch_id, full, extract_id, part, parts, clients, body, "
                    "queued_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        batch["batch_id"],
                        int(batch["full"]),
                        batch.get("extract_id", ""),
                        batch.get("part", 0),
                        batch.get("parts", 0),
                        len(batch["clients"]),
                        json.dumps(batch, separators=(",", ":")).encode(),
                        now,
                    ),
                )
            db.executemany(
                "INSERT INTO given (pims_id, digest, entry) VALUES (?, ?, ?) "
                "ON CONFLICT(pims_id) DO UPDATE "
                "SET digest = excluded.digest, entry = excluded.entry",
                given,
            )
            for key, value in facts.items():
                self.put(key, value)

    def reject(self, seq: int, *, error: str) -> None:
        """VetSync refused a batch: forget that its clients were given, so that the next run
        queues them again (a refused first-copy part starts a new first copy)."""
        body, full = self.db.execute(
            "SELECT body, full FROM outbox WHERE seq = ?", (seq,)
        ).fetchone()
        with self.transaction() as db:
            self.mark(seq, REJECTED, error=error)
            ids = [(c["pims_id"],) for c in json.loads(body or b"{}").get("clients", [])]
            db.executemany("DELETE FROM given WHERE pims_id = ?", ids)
            if full:
                db.execute("DELETE FROM meta WHERE key = 'extract_id'")

    def next_seq(self) -> int:
        row = self.db.execute("SELECT seq FROM sqlite_sequence WHERE name = 'outbox'").fetchone()
        return (row[0] if row else 0) + 1

    def pending(self) -> list[OutboxRow]:
        rows = self.db.execute(
            "SELECT seq, batch_id, full, extract_id, part, parts, clients, body, status, attempts "
            "FROM outbox WHERE status IN (?, ?) ORDER BY seq",
            (QUEUED, SENT),
        ).fetchall()
        return [
            OutboxRow(
                seq=row[0],
                batch_id=row[1],
                full=bool(row[2]),
                extract_id=row[3],
                part=row[4],
                parts=row[5],
                clients=row[6],
                body=row[7],
                status=row[8],
                attempts=row[9],
            )
            for row in rows
        ]

    def mark(self, seq: int, status: str, *, run_url: str = "", error: str = "") -> None:
        now = time.time()
        done = status in (DONE, REJECTED)
        self.db.execute(
            "UPDATE outbox SET status = ?, sent_at = coalesce(sent_at, ?), "
            "done_at = CASE WHEN ? THEN ? ELSE done_at END, "
            "run_url = CASE WHEN ? != '' THEN ? ELSE run_url END, last_error = ?, "
            # A delivered batch's body is not needed again; its batch id is.
            "body = CASE WHEN ? = 'done' THEN NULL ELSE body END WHERE seq = ?",
            (status, now, done, now, run_url, run_url, error, status, seq),
        )

    def note_attempt(self, seq: int, error: str) -> None:
        self.db.execute(
            "UPDATE outbox SET attempts = attempts + 1, last_error = ? WHERE seq = ?", (error, seq)
        )

    def outbox_counts(self) -> dict[str, tuple[int, int]]:
        rows = self.db.execute(
            "SELECT status, count(*), coalesce(sum(clients), 0) FROM outbox GROUP BY status"
        )
        return {status: (batches, clients) for status, batches, clients in rows}

    def extract_progress(self) -> tuple[str, int, int] | None:
        """The first copy's id, parts done, parts in all (None before the first run)."""
        row = self.db.execute(
            "SELECT extract_id, sum(status = 'done'), max(parts) FROM outbox "
            "WHERE full = 1 GROUP BY extract_id ORDER BY min(seq) DESC LIMIT 1"
        ).fetchone()
        return (row[0], int(row[1]), int(row[2])) if row else None

    def last_rejected(self) -> tuple[str, str] | None:
        row = self.db.execute(
            "SELECT batch_id, last_error FROM outbox WHERE status = 'rejected' "
            "ORDER BY seq DESC LIMIT 1"
        ).fetchone()
        return (row[0], row[1]) if row else None

    # --- writeback items -----------------------------------------------------------------------

    def writeback_state(self, item_id: int) -> tuple[str, bool | None, str] | None:
        row = self.db.execute(
            "SELECT state, ok, error FROM writeback WHERE item_id = ?", (item_id,)
        ).fetchone()
        return (row[0], None if row[1] is None else bool(row[1]), row[2]) if row else None

    def writeback_claim(self, item: dict[str, Any]) -> None:
        self.db.execute(
            "INSERT OR IGNORE INTO writeback (item_id, state, item) VALUES (?, 'applying', ?)",
            (item["id"], json.dumps(item, sort_keys=True, default=str)),
        )

    def writeback_applied(self, item_id: int, ok: bool, error: str) -> None:
        self.db.execute(
            "UPDATE writeback SET state = 'applied', ok = ?, error = ?, applied_at = ? "
            "WHERE item_id = ?",
            (int(ok), error, time.time(), item_id),
        )

    def writeback_acked(self, item_id: int) -> None:
        self.db.execute(
            "UPDATE writeback SET state = 'acked', acked_at = ? WHERE item_id = ?",
            (time.time(), item_id),
        )

    def writeback_counts(self) -> dict[str, int]:
        rows = self.db.execute(
            "SELECT CASE WHEN state = 'acked' AND ok = 1 THEN 'written' "
            "WHEN state = 'acked' THEN 'failed' ELSE 'not acknowledged yet' END, count(*) "
            "FROM writeback GROUP BY 1"
        )
        return dict(rows.fetchall())
