"""What the ezyVet client raises: ``EzyVetError`` and its kinds, and whether a failed write
may still have reached ezyVet."""

from __future__ import annotations

from collections.abc import Sequence


class EzyVetError(Exception):
    """Anything ezyVet refused or could not answer; ``texts`` are ezyVet's own messages."""

    def __init__(
        self, message: str, *, status: int | None = None, texts: Sequence[str] = ()
    ) -> None:
        super().__init__(message)
        self.status = status
        self.texts = tuple(texts)


class EzyVetAuthError(EzyVetError):
    """The credentials were refused (wrong secret, partner, site) or a fresh token was."""


class EzyVetScopeError(EzyVetError):
    """The token lacks a scope the call needs: the integration record must enable it."""


class EzyVetUnavailable(EzyVetError):
    """ezyVet could not be reached or kept failing (5xx, timeouts) after every retry."""


class EzyVetRateLimited(EzyVetUnavailable):
    """ezyVet kept answering 429 after every retry; try again after ``retry_after`` seconds."""

    def __init__(self, message: str, *, retry_after: float, status: int = 429) -> None:
        super().__init__(message, status=status)
        self.retry_after = retry_after


class EzyVetRequestError(EzyVetError):
    """ezyVet refused the request itself (4xx): retrying the same request will not help."""


class EzyVetProtocolError(EzyVetError):
    """ezyVet answered, but not in the shape v1 documents."""


class _AmbiguousWrite(EzyVetUnavailable):
    """A write may or may not have been applied: its answer was lost or was a 5xx."""


def write_may_have_landed(exc: BaseException) -> bool:
    """Whether ``exc`` came after a write whose answer was lost (the lookup that followed it
    failed too): the write may be in ezyVet, so the next try looks before writing again."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, _AmbiguousWrite):
            return True
        seen = seen.__cause__ or seen.__context__
    return False
