"""What went wrong with a clinic's practice-system connection, in words for clinic staff.

The technical text (ezyVet's answer, the address, the HTTP status) is kept on the integration
for the onboarding team; clinic pages show the kind of problem, in plain words, and what to do.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.db import models

from vetsync.pims.ezyvet import (
    EzyVetAuthError,
    EzyVetRateLimited,
    EzyVetScopeError,
    EzyVetUnavailable,
)


class ProblemKind(models.TextChoices):
    CREDENTIALS = "credentials", "Credentials refused"
    SCOPES = "scopes", "Permissions missing"
    UNREACHABLE = "unreachable", "Practice system unreachable"
    BUSY = "busy", "Practice system asked us to slow down"
    NOT_SET_UP = "not_set_up", "Connection not set up"
    OTHER = "other", "Unexpected answer"
    INTERNAL = "internal", "Stopped on an error in VetSync"


@dataclass(frozen=True)
class Problem:
    kind: str
    summary: str
    action: str
    # Whether a clinic admin can fix it on the Practice system page (a new credentials file).
    admin_fixes: bool = False


_PROBLEMS = {
    ProblemKind.CREDENTIALS: Problem(
        ProblemKind.CREDENTIALS,
        "ezyVet no longer accepts VetSync's sign-in details.",
        "A clinic admin downloads the latest client_credentials.txt from ezyVet (Admin → "
        "Integrations → API) and uploads it on the Practice system page.",
        admin_fixes=True,
    ),
    ProblemKind.SCOPES: Problem(
        ProblemKind.SCOPES,
        "ezyVet does not let VetSync read everything it needs.",
        "In ezyVet, give the VetSync integration the permissions listed on the Practice system "
        "page, then upload its credentials file again.",
        admin_fixes=True,
    ),
    ProblemKind.UNREACHABLE: Problem(
        ProblemKind.UNREACHABLE,
        "VetSync could not reach your practice system.",
        "Nothing to do for now: VetSync tries again on its own. If it lasts more than a day, "
        "contact the VetSync onboarding team.",
    ),
    ProblemKind.BUSY: Problem(
        ProblemKind.BUSY,
        "Your practice system asked VetSync to slow down.",
        "Nothing to do: VetSync tries again on its own, more slowly.",
    ),
    ProblemKind.NOT_SET_UP: Problem(
        ProblemKind.NOT_SET_UP,
        "The connection to your practice system is not set up yet.",
        "The VetSync onboarding team or your clinic admin connects it.",
        admin_fixes=True,
    ),
    ProblemKind.OTHER: Problem(
        ProblemKind.OTHER,
        "Your practice system answered in a way VetSync did not expect.",
        "The VetSync onboarding team has the details and has been told; contact them if it "
        "lasts more than a day.",
    ),
    ProblemKind.INTERNAL: Problem(
        ProblemKind.INTERNAL,
        "VetSync stopped on an unexpected error while applying these records.",
        "Resume the run; if it stops again, contact the VetSync onboarding team (they have "
        "the details).",
    ),
}


def problem_kind(exc: BaseException) -> str:
    """The kind of a connector error (``ProblemKind``), for ``integration_record_sync``."""
    if isinstance(exc, EzyVetAuthError):
        return ProblemKind.CREDENTIALS
    if isinstance(exc, EzyVetScopeError):
        return ProblemKind.SCOPES
    if isinstance(exc, EzyVetRateLimited):
        return ProblemKind.BUSY
    if isinstance(exc, EzyVetUnavailable):
        return ProblemKind.UNREACHABLE
    if isinstance(exc, ValueError):  # CredentialsError: no address or no credentials
        return ProblemKind.NOT_SET_UP
    return ProblemKind.OTHER


def problem_for(kind: str) -> Problem:
    """The plain words for a kind; an unknown or empty kind reads as "unexpected answer"."""
    return _PROBLEMS.get(kind, _PROBLEMS[ProblemKind.OTHER])  # type: ignore[call-overload]
