"""Change detection and delivery.

Each run reads the practice system, compares every client (with its patients) with the
fingerprint of what VetSync was last given, and queues what differs in the outbox of the local
state, in the same transaction that moves the fingerprints. The outbox is then sent in order.
The first run queues one full extract in parts (PIMS.md, "Agent batches"). A batch id is
``<agent>-<sequence>-<content digest>``: a resend after a kill is the same id (VetSync's no-op),
and new content never gets an id that was used before.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import time
from dataclasses import dataclass, field
from typing import Any

from vetsync.agent.config import Config
from vetsync.agent.state import DONE, QUEUED, REJECTED, SENT, OutboxRow, State
from vetsync.agent.transport import Refused, Unreachable, VetSync

FINISHED_RUN = {"succeeded", "failed"}


def digest(entry: dict[str, Any]) -> str:
    canonical = json.dumps(entry, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


def _now_iso() -> str:
    return (
        dt.datetime.now(dt.timezone.utc).replace(microsecond=0).isoformat().replace("+00:00", "Z")
    )


@dataclass
class Planned:
    batches: int = 0
    clients: int = 0
    full: bool = False


def _removed(entry_json: str) -> dict[str, Any]:
    """A client that left the practice system: sent once more, inactive with its pets."""
    entry = json.loads(entry_json)
    # Stamped now: the practice kept no time for a deletion, and VetSync skips a record whose
    # modified_at is not newer than what it holds.
    entry["active"], entry["modified_at"] = False, _now_iso()
    for pet in entry.get("patients", []):
        pet["active"], pet["modified_at"] = False, entry["modified_at"]
    return entry


def _with_vanished_pets(entry: dict[str, Any], before_json: str | None) -> dict[str, Any]:
    """A pet gone from a client's list is sent once as inactive rather than silently dropped."""
    if before_json is None:
        return entry
    before = json.loads(before_json)
    current = {pet["pims_id"] for pet in entry.get("patients", [])}
    gone = [p for p in before.get("patients", []) if p.get("pims_id") not in current]
    if not gone:
        return entry
    for pet in gone:
        pet["active"], pet["modified_at"] = False, _now_iso()
    return {**entry, "patients": [*entry.get("patients", []), *gone]}


def plan(state: State, config: Config, entries: dict[str, dict[str, Any]]) -> Planned:
    """Queue what differs from what VetSync was given; nothing at all when nothing differs."""
    given = state.given()
    first = state.get("extract_id") is None
    changed: list[dict[str, Any]] = []
    fingerprints: list[tuple[str, str, str]] = []
    for pims_id, entry in entries.items():
        fingerprint = digest(entry)
        before = given.get(pims_id)
        if first or before is None or before[0] != fingerprint:
            changed.append(entry if first else _with_vanished_pets(entry, before and before[1]))
            fingerprints.append((pims_id, fingerprint, json.dumps(entry, default=str)))
    if not first:
        for pims_id, (old_digest, entry_json) in given.items():
            if pims_id not in entries and old_digest != "removed":
                changed.append(_removed(entry_json))
                fingerprints.append((pims_id, "removed", entry_json))
    if not changed:
        return Planned()
    batches = _batches(state, config, changed, first)
    facts = {"extract_id": batches[0]["extract_id"]} if first else {}
    state.queue(batches, fingerprints, facts)
    return Planned(batches=len(batches), clients=len(changed), full=first)


def _batches(
    state: State, config: Config, clients: list[dict[str, Any]], full: bool
) -> list[dict[str, Any]]:
    size = config.part_size
    chunks = [clients[i : i + size] for i in range(0, len(clients), size)]
    agent_id, seq, sent_at = state.get("agent_id"), state.next_seq(), _now_iso()
    extract_id = f"{agent_id}-x{seq:06d}" if full else ""
    batches = []
    for number, chunk in enumerate(chunks, start=1):
        content = digest({"clients": chunk, "full": full})[:16]
        batch: dict[str, Any] = {
            "source": config.source,
            "batch_id": f"{agent_id}-{seq + number - 1:09d}-{content}",
            "sent_at": sent_at,
            "full": full,
        }
        if full:
            batch.update(extract_id=extract_id, part=number, parts=len(chunks))
        batch["clients"] = chunk
        batches.append(batch)
    return batches


# --- sending -----------------------------------------------------------------------------------


@dataclass
class Sent:
    batches: int = 0
    clients: int = 0
    waiting: int = 0  # batches still queued or being applied when the run ended
    error: str = ""
    refused: list[str] = field(default_factory=list)  # batches VetSync refused (400)


def deliver(state: State, vetsync: VetSync) -> Sent:
    """Send the outbox in order. A batch goes only once the one before it is applied, so a
    delta never overtakes the first copy. Stops at the first batch that cannot go now."""
    sent = Sent()
    rows = state.pending()
    for index, row in enumerate(rows):
        try:
            if row.status == QUEUED:
                refusal = _post(state, vetsync, row)
                if refusal:
                    sent.refused.append(f"batch {row.batch_id} refused: {refusal}")
                else:
                    sent.batches += 1
                    sent.clients += row.clients
            if not _applied(state, vetsync, row):
                sent.waiting = len(rows) - index
                return sent
        except (Unreachable, Refused) as exc:
            state.note_attempt(row.seq, str(exc))
            sent.error = str(exc)
            sent.waiting = len(rows) - index
            return sent
    return sent


def _post(state: State, vetsync: VetSync, row: OutboxRow) -> str:
    """Send one batch; the reason when VetSync refused it for good, else ""."""
    assert row.body is not None
    try:
        answer = vetsync.post_batch(row.body)
    except Refused as exc:
        if exc.status == 400:
            # The batch itself is refused (e.g. a source this token may not post): resending it
            # cannot help. It stays in the state file for status and the log, its clients are
            # queued again on the next run (after the cause is fixed), and the rest goes on.
            state.reject(row.seq, error=str(exc))
            return str(exc)
        raise
    status = DONE if answer.status == 200 and answer.body.get("status") in FINISHED_RUN else SENT
    state.mark(row.seq, status, run_url=str(answer.body.get("run_url", "")))
    state.put("last_delivered_at", time.time())
    return ""


def _applied(state: State, vetsync: VetSync, row: OutboxRow) -> bool:
    """Wait (up to ``apply_wait``) for VetSync to finish applying a batch it took with a 202."""
    current = state.db.execute("SELECT status FROM outbox WHERE seq = ?", (row.seq,)).fetchone()[0]
    if current in (DONE, REJECTED):
        return True
    deadline = time.monotonic() + vetsync.config.apply_wait
    pause = 0.2
    while True:
        try:
            answer = vetsync.batch_status(row.batch_id)
        except Refused as exc:
            if exc.status != 404:
                raise
            # VetSync has no such batch (its database was restored): send it again, same id.
            state.mark(row.seq, QUEUED, error="VetSync did not know this batch; queued again")
            return False
        if answer.body.get("status") in FINISHED_RUN:
            error = str(answer.body.get("error") or "")
            state.mark(row.seq, DONE, error=error)
            return True
        if time.monotonic() + pause > deadline or vetsync.stop.wait(pause):
            return False
        pause = min(pause * 2, 5.0)
