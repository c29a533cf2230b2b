"""An ezyVet emulator on a real socket per test, and clients pointed at it."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
import requests

from vetsync.pims.emulator import EzyVetEmulator
from vetsync.pims.ezyvet import EzyVetClient, EzyVetCredentials, parse_credentials_file


class FakeClock:
    """Virtual time for the client: ``sleep`` advances it at once and is recorded."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


@pytest.fixture
def emulator() -> Iterator[EzyVetEmulator]:
    # Limits off (0) unless a test sets them: most tests are about something else.
    site = EzyVetEmulator(clients=30, seed=7, rate_per_minute=0, endpoint_rate_per_minute=0)
    site.start()
    yield site
    site.stop()


@pytest.fixture
def credentials(emulator: EzyVetEmulator) -> EzyVetCredentials:
    return parse_credentials_file(emulator.credentials.as_text())


@pytest.fixture
def make_client(
    emulator: EzyVetEmulator, credentials: EzyVetCredentials
) -> Iterator[Callable[..., EzyVetClient]]:
    clients: list[EzyVetClient] = []

    def make(**options: Any) -> EzyVetClient:
        defaults: dict[str, Any] = {
            "rate_per_minute": 0,
            "endpoint_rate_per_minute": 0,
            "backoff_base": 0.01,
            "timezone": "America/Chicago",
        }
        client = EzyVetClient(
            options.pop("base_url", emulator.base_url),
            options.pop("credentials", credentials),
            **{**defaults, **options},
        )
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.close()


@pytest.fixture
def ezyvet(make_client: Callable[..., EzyVetClient]) -> EzyVetClient:
    return make_client()


@pytest.fixture
def token_for(emulator: EzyVetEmulator) -> Callable[..., str]:
    """A bearer token straight from the emulator, for raw-HTTP contract tests."""

    def issue(scope: str = "") -> str:
        creds = emulator.credentials
        response = requests.post(
            f"{emulator.base_url}/v1/oauth/access_token",
            json={
                "partner_id": creds.partner_id,
                "client_id": creds.client_id,
                "client_secret": creds.client_secret,
                "grant_type": "client_credentials",
                "scope": scope or " ".join(emulator.scopes),
                "site_uid": creds.site_uid,
            },
            timeout=5,
        )
        assert response.status_code == 200, response.text
        return str(response.json()["access_token"])

    return issue


@pytest.fixture
def api(emulator: EzyVetEmulator, token_for: Callable[..., str]) -> Callable[..., Any]:
    """``api("GET", "contact", params=...)`` with a full-scope token: the raw HTTP answer."""
    token = token_for()

    def call(method: str, path: str, **kwargs: Any) -> requests.Response:
        return requests.request(
            method,
            f"{emulator.base_url}/v1/{path}",
            headers={"Authorization": f"Bearer {token}"},
            timeout=5,
            **kwargs,
        )

    return call
