"""The clinic's ezyVet API credentials: the scopes VetSync needs, and reading the
``client_credentials.txt`` ezyVet hands out (or a mapping spelled any common way)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field

from vetsync.lib import json_input

PULL_SCOPES = (
    "read-contact",
    "read-contactdetail",
    "read-contactdetailtype",
    "read-address",
    "read-animal",
    "read-species",
    "read-breed",
    "read-sex",
)
WRITEBACK_SCOPES = ("read-user", "read-consult", "write-externalprescription")
REQUIRED_SCOPES = PULL_SCOPES + WRITEBACK_SCOPES


@dataclass(frozen=True, slots=True)
class EzyVetCredentials:
    """The clinic's API credentials, as in the ``client_credentials.txt`` ezyVet hands out."""

    partner_id: str
    client_id: str
    client_secret: str = field(repr=False)
    site_uid: str
    scope: str = " ".join(REQUIRED_SCOPES)

    @property
    def scopes(self) -> tuple[str, ...]:
        return tuple(s for s in self.scope.replace(",", " ").split() if s)

    def token_request(self) -> dict[str, str]:
        return {
            "partner_id": self.partner_id,
            "client_id": self.client_id,
            "client_secret": self.client_secret,
            "grant_type": "client_credentials",
            "scope": " ".join(self.scopes),
            "site_uid": self.site_uid,
        }


_LABELS = {
    "partner_id": "Partner ID",
    "client_id": "Client ID",
    "client_secret": "Client Secret",
    "site_uid": "Site UID",
}
_KEYS = {
    "partnerid": "partner_id",
    "clientid": "client_id",
    "clientsecret": "client_secret",
    "secret": "client_secret",
    "siteuid": "site_uid",
    "siteid": "site_uid",
    "scope": "scope",
    "scopes": "scope",
}


def _normal_key(key: str) -> str:
    return "".join(ch for ch in key.lower() if ch.isalnum())


def credentials_from_mapping(values: Mapping[str, object]) -> EzyVetCredentials:
    """Credentials from a key/value mapping whose keys may be spelled any common way
    (``partner_id``, ``Partner ID``, ``partnerId``); ``scope`` defaults to what VetSync needs."""
    found: dict[str, str] = {}
    for raw_key, raw_value in values.items():
        key = _KEYS.get(_normal_key(str(raw_key)))
        if key is None:
            continue  # ezyVet's file carries other lines (names, grant type) we do not need
        value = "" if raw_value is None else str(raw_value).strip().strip("\"'").strip()
        if key in found and found[key] != value:
            raise ValueError(f"The credentials give two different values for {_label(key)}.")
        found[key] = value
    missing = [_LABELS[key] for key in _LABELS if not found.get(key)]
    if missing:
        raise ValueError(f"The credentials are missing {_join(missing)}.")
    scope = found.get("scope") or " ".join(REQUIRED_SCOPES)
    return EzyVetCredentials(
        partner_id=found["partner_id"],
        client_id=found["client_id"],
        client_secret=found["client_secret"],
        site_uid=found["site_uid"],
        scope=" ".join(s for s in scope.replace(",", " ").split() if s),
    )


def parse_credentials_file(text: str) -> EzyVetCredentials:
    """Read a ``client_credentials.txt``: ``key: value`` or ``key=value`` lines, a label
    alone on a line with its value on the next, or a JSON object. Raises ValueError naming
    what is missing or unreadable."""
    if not text or not text.strip():
        raise ValueError("The credentials file is empty.")
    stripped = text.strip().lstrip("\ufeff")
    if stripped.startswith("{"):
        try:
            data = json_input.loads(stripped)
        except json_input.JsonInputError as exc:
            raise ValueError(f"The credentials file is not valid JSON ({exc}).") from exc
        if not isinstance(data, dict):
            raise ValueError("The credentials file must be a JSON object.")
        return credentials_from_mapping(data)
    pairs: list[tuple[str, str]] = []
    pending_label: str | None = None
    for raw in stripped.splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", "//", ";")):
            continue
        cuts = [i for i in (line.find(":"), line.find("=")) if i > 0]
        if cuts:
            cut = min(cuts)
            key, value = line[:cut], line[cut + 1 :]
            if _normal_key(key) in _KEYS:
                pairs.append((key, value))
                pending_label = None
                continue
        if pending_label is not None:
            pairs.append((pending_label, line))
            pending_label = None
        elif _normal_key(line) in _KEYS:
            pending_label = line
    return credentials_from_mapping(dict(_merge_pairs(pairs)))


def _merge_pairs(pairs: list[tuple[str, str]]) -> Iterator[tuple[str, str]]:
    seen: dict[str, tuple[str, str]] = {}
    for key, value in pairs:
        normal = _KEYS[_normal_key(key)]
        if normal in seen and seen[normal][1].strip() != value.strip():
            raise ValueError(
                f"The credentials file gives two different values for {_label(normal)}."
            )
        seen[normal] = (key, value)
    yield from seen.values()


def _label(key: str) -> str:
    return _LABELS.get(key, "Scope")


def _join(names: Sequence[str]) -> str:
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]
