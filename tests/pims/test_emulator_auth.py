"""ezyVet's OAuth rules as the emulator enforces them (raw HTTP, no connector)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import requests

from vetsync.pims.emulator import EzyVetEmulator


def _token_request(emulator: EzyVetEmulator, **overrides: Any) -> dict[str, str]:
    creds = emulator.credentials
    body = {
        "partner_id": creds.partner_id,
        "client_id": creds.client_id,
        "client_secret": creds.client_secret,
        "grant_type": "client_credentials",
        "scope": "read-contact read-animal",
        "site_uid": creds.site_uid,
    }
    body.update(overrides)
    return {k: v for k, v in body.items() if v is not None}


def _post_token(
    emulator: EzyVetEmulator, *, form: bool = False, **overrides: Any
) -> requests.Response:
    body = _token_request(emulator, **overrides)
    url = f"{emulator.base_url}/v1/oauth/access_token"
    if form:
        return requests.post(url, data=body, timeout=5)
    return requests.post(url, json=body, timeout=5)


def _get(emulator: EzyVetEmulator, resource: str, token: str) -> requests.Response:
    return requests.get(
        f"{emulator.base_url}/v1/{resource}",
        headers={"Authorization": f"Bearer {token}"},
        timeout=5,
    )


@pytest.mark.parametrize("form", [False, True], ids=["json", "form"])
def test_token_from_json_or_form_body(emulator: EzyVetEmulator, form: bool) -> None:
    response = _post_token(emulator, form=form)

    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"access_token", "token_type", "expires_in"}
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == 43200
    assert _get(emulator, "contact", body["access_token"]).status_code == 200


@pytest.mark.parametrize("scope", ["read-contact,read-animal", "read-contact read-animal"])
def test_scopes_comma_or_space_separated(emulator: EzyVetEmulator, scope: str) -> None:
    token = _post_token(emulator, scope=scope).json()["access_token"]

    assert _get(emulator, "contact", token).status_code == 200
    assert _get(emulator, "animal", token).status_code == 200
    assert _get(emulator, "species", token).status_code == 403


@pytest.mark.parametrize(
    "missing", ["partner_id", "client_id", "client_secret", "grant_type", "scope", "site_uid"]
)
def test_missing_field_is_401_naming_it(emulator: EzyVetEmulator, missing: str) -> None:
    response = _post_token(emulator, **{missing: None})

    assert response.status_code == 401
    (message,) = response.json()["messages"]
    assert message["level"] == "error"
    assert message["type"] == "InvalidRequestException"
    assert f'Check the "{missing}" parameter.' in message["text"]


def test_bad_secret_is_401_with_ezyvets_body(emulator: EzyVetEmulator) -> None:
    response = _post_token(emulator, client_secret="not-the-secret")

    assert response.status_code == 401
    assert response.json() == {
        "messages": [
            {
                "level": "error",
                "type": "InvalidRequestException",
                "text": "Client authentication failed.",
                "fields": [],
            }
        ]
    }


@pytest.mark.parametrize(
    ("field", "value"),
    [("site_uid", "another-site"), ("partner_id", "someone-else"), ("grant_type", "password")],
)
def test_wrong_site_partner_or_grant_is_401(
    emulator: EzyVetEmulator, field: str, value: str
) -> None:
    assert _post_token(emulator, **{field: value}).status_code == 401


def test_new_token_expires_the_previous_one(emulator: EzyVetEmulator) -> None:
    first = _post_token(emulator).json()["access_token"]
    second = _post_token(emulator).json()["access_token"]

    assert _get(emulator, "contact", first).status_code == 401
    assert _get(emulator, "contact", second).status_code == 200
    assert emulator.state()["tokens_issued"] == 2


def test_missing_scope_is_403(emulator: EzyVetEmulator) -> None:
    token = _post_token(emulator, scope="read-contact").json()["access_token"]

    response = _get(emulator, "animal", token)

    assert response.status_code == 403
    assert "read-animal" in response.json()["messages"][0]["text"]


def test_scope_not_enabled_on_the_integration_is_not_granted(emulator: EzyVetEmulator) -> None:
    emulator.configure(scopes=("read-contact",))
    token = _post_token(emulator, scope="read-contact read-animal").json()["access_token"]

    assert _get(emulator, "contact", token).status_code == 200
    assert _get(emulator, "animal", token).status_code == 403


def test_unknown_scope_is_refused(emulator: EzyVetEmulator) -> None:
    response = _post_token(emulator, scope="read-contact read-everything")

    assert response.status_code == 401
    assert "read-everything" in response.json()["messages"][0]["text"]


def test_expired_or_absent_token_is_401(
    emulator: EzyVetEmulator, token_for: Callable[..., str]
) -> None:
    token = token_for()
    assert _get(emulator, "contact", token).status_code == 200

    emulator.expire_tokens()

    assert _get(emulator, "contact", token).status_code == 401
    assert requests.get(f"{emulator.base_url}/v1/contact", timeout=5).status_code == 401


def test_token_lifetime_is_configurable(emulator: EzyVetEmulator) -> None:
    emulator.configure(token_lifetime=120)

    assert _post_token(emulator).json()["expires_in"] == 120
