"""Encryption at rest for PIMS credentials, and hashing for agent bearer tokens.

Credentials are a JSON object sealed with Fernet (AES-128-CBC + HMAC). ``CREDENTIALS_KEYS``
lists Fernet keys, the first encrypting, all decrypting, so keys can be rotated; without it a
key is derived from ``SECRET_KEY``. Agent tokens are random 256-bit strings: a SHA-256 of one
is enough to find it and cannot be reversed, so only the hash is stored.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings

AGENT_TOKEN_PREFIX = "vsa_"  # noqa: S105 - a public prefix, not a secret


class CredentialsUnreadable(Exception):
    """The stored ciphertext cannot be decrypted with any configured key."""


def _fernet() -> MultiFernet:
    keys = list(settings.CREDENTIALS_KEYS)
    if not keys:
        digest = hashlib.sha256(("vetsync-credentials:" + settings.SECRET_KEY).encode()).digest()
        keys = [base64.urlsafe_b64encode(digest).decode()]
    return MultiFernet([Fernet(key) for key in keys])


def seal(values: dict[str, str]) -> str:
    return _fernet().encrypt(json.dumps(values, sort_keys=True).encode()).decode()


def unseal(ciphertext: str) -> dict[str, str]:
    if not ciphertext:
        return {}
    try:
        return json.loads(_fernet().decrypt(ciphertext.encode()))
    except InvalidToken as exc:
        raise CredentialsUnreadable("stored credentials cannot be decrypted") from exc


def new_agent_token() -> str:
    return AGENT_TOKEN_PREFIX + secrets.token_urlsafe(32)


def hash_agent_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()
