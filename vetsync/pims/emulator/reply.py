"""What the site answers: a status and a body already serialised, plus what the HTTP layer
must do besides (wait, or drop the connection)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from vetsync.pims.emulator.errors import ApiError


@dataclass(slots=True)
class Reply:
    status: int
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    drop: bool = False  # close the connection without answering


def _json(value: object) -> bytes:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()


def _error_reply(error: ApiError) -> Reply:
    return Reply(error.status, _json(error.body()), dict(error.headers))
