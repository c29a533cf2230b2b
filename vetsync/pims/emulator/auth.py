"""The token endpoint's side of auth: the credentials a site accepts, and how ezyVet reads
and refuses a token request (every refusal a 401 with its ``messages`` body)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import parse_qsl

from vetsync.pims.emulator.errors import ApiError
from vetsync.pims.emulator.schema import ALL_SCOPES

TOKEN_FIELDS = ("partner_id", "client_id", "client_secret", "grant_type", "scope", "site_uid")
MISSING_PARAMETER = (
    "The request is missing a required parameter, includes an invalid parameter value, "
    'includes a parameter more than once, or is otherwise malformed. Check the "{}" parameter.'
)


@dataclass(frozen=True, slots=True)
class EmulatorCredentials:
    """What the clinic's ``client_credentials.txt`` holds, plus the partner's display name."""

    partner_id: str = "vetsync-partner"
    client_id: str = "demo-client"
    client_secret: str = "demo-secret"
    site_uid: str = "demo-site"
    partner_name: str = "VetSync"

    def as_text(self, scopes: tuple[str, ...] = ALL_SCOPES) -> str:
        """The file as ezyVet hands it out, for the demo's onboarding upload."""
        return (
            f"Partner ID: {self.partner_id}\n"
            f"Client ID: {self.client_id}\n"
            f"Client Secret: {self.client_secret}\n"
            f"Site UID: {self.site_uid}\n"
            f"Scope: {' '.join(scopes)}\n"
        )


@dataclass(slots=True)
class Token:
    value: str
    owner: tuple[str, str, str]  # partner, client, site
    scopes: frozenset[str]
    expires_at: float


def _requested_scopes(
    headers: Mapping[str, str], body: bytes, credentials: EmulatorCredentials
) -> list[str]:
    """The scopes a token request asks for, once it is complete and its credentials match."""
    form = _token_form(headers, body)
    for name in TOKEN_FIELDS:
        if not form.get(name, "").strip():
            raise ApiError(401, MISSING_PARAMETER.format(name), fields=(name,))
    if form["grant_type"] != "client_credentials":
        raise ApiError(
            401,
            "The authorization grant type is not supported by the authorization server.",
            fields=("grant_type",),
        )
    if (form["partner_id"], form["client_id"], form["client_secret"], form["site_uid"]) != (
        credentials.partner_id,
        credentials.client_id,
        credentials.client_secret,
        credentials.site_uid,
    ):
        raise ApiError(401, "Client authentication failed.", fields=())
    requested = [s for s in form["scope"].replace(",", " ").split() if s]
    unknown = [s for s in requested if s not in ALL_SCOPES]
    if unknown:
        raise ApiError(
            401,
            f'The requested scope is invalid, unknown, or malformed. Check the "{unknown[0]}" '
            "scope.",
            fields=("scope",),
        )
    return requested


def _token_form(headers: Mapping[str, str], body: bytes) -> dict[str, str]:
    content_type = headers.get("Content-Type", "").lower()
    text = body.decode("utf-8", errors="replace")
    parsed: object = None
    if "json" in content_type or (not content_type and text.lstrip().startswith("{")):
        try:
            parsed = json.loads(text or "{}")
        except json.JSONDecodeError as exc:
            raise ApiError(401, MISSING_PARAMETER.format("body"), fields=()) from exc
    else:
        parsed = dict(parse_qsl(text, keep_blank_values=True))
    if not isinstance(parsed, dict):
        raise ApiError(401, MISSING_PARAMETER.format("body"), fields=())
    return {str(k): "" if v is None else str(v) for k, v in parsed.items()}
