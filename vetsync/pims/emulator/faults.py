"""Faults a test injects: the next matching requests misbehave (429, 5xx, delay, drop, or a
write applied whose answer is lost)."""

from __future__ import annotations

from dataclasses import dataclass

from vetsync.pims.emulator.errors import ApiError
from vetsync.pims.emulator.reply import Reply, _error_reply

FAULT_KINDS = ("rate_limit", "server_error", "delay", "drop", "lost_write")


@dataclass(slots=True)
class Fault:
    kind: str
    remaining: int
    endpoint: str | None = None
    retry_after: int = 1
    status: int = 500
    seconds: float = 1.0
    # Set: every matching request misbehaves until this epoch time, whatever ``remaining``.
    until: float | None = None

    def active(self, now: float) -> bool:
        return now < self.until if self.until is not None else self.remaining > 0

    def spend(self) -> None:
        if self.until is None:
            self.remaining -= 1

    def as_dict(self) -> dict[str, object]:
        return {
            "kind": self.kind,
            "remaining": self.remaining,
            "endpoint": self.endpoint,
            "retry_after": self.retry_after,
            "status": self.status,
            "seconds": self.seconds,
            "until": self.until,
        }


def _due_fault(faults: list[Fault], method: str, endpoint: str, now: float) -> Fault | None:
    """The first fault still active that matches this request."""
    for fault in faults:
        if not fault.active(now):
            continue
        if fault.endpoint is None and endpoint == "oauth":
            continue
        if fault.endpoint is not None and fault.endpoint != endpoint:
            continue
        if fault.kind == "lost_write" and not (
            endpoint == "externalprescription" and method in {"POST", "PATCH"}
        ):
            continue
        return fault
    return None


def _fault_reply(fault: Fault) -> Reply:
    """The answer of a fault that replaces the real one (all kinds but delay and lost_write)."""
    if fault.kind == "rate_limit":
        return _error_reply(
            ApiError(
                429,
                "Too many requests. Please wait before trying again.",
                kind="TooManyRequestsException",
                headers={"Retry-After": str(fault.retry_after)},
            )
        )
    if fault.kind == "server_error":
        return _error_reply(
            ApiError(fault.status, "The server encountered an error.", kind="ServerException")
        )
    return Reply(0, drop=True)
