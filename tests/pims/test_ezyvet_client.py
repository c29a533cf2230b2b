"""The HTTP client: tokens, scopes, limits, Retry-After, backoff, timeouts, onboarding check."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable
from itertools import pairwise
from typing import Any

import pytest
import requests

from tests.pims.conftest import FakeClock
from vetsync.pims.emulator import EzyVetEmulator
from vetsync.pims.ezyvet import (
    REQUIRED_SCOPES,
    EzyVetAuthError,
    EzyVetClient,
    EzyVetCredentials,
    EzyVetRateLimited,
    EzyVetScopeError,
    EzyVetUnavailable,
    SlidingWindowLimiter,
)

MakeClient = Callable[..., EzyVetClient]


def _sends(client: EzyVetClient, clock: FakeClock, endpoint: str) -> list[tuple[float, int]]:
    """(virtual time, status) of every answer to ``endpoint``, recorded as it arrives."""
    seen: list[tuple[float, int]] = []

    def hook(response: requests.Response, *args: Any, **kwargs: Any) -> None:
        if f"/v1/{endpoint}" in response.url:
            seen.append((clock.now, response.status_code))

    client.session.hooks["response"].append(hook)
    return seen


def test_429_waits_retry_after_before_sending_again(
    emulator: EzyVetEmulator, make_client: MakeClient
) -> None:
    clock = FakeClock()
    client = make_client(clock=clock, sleep=clock.sleep)
    sends = _sends(client, clock, "sex")
    emulator.inject_fault("rate_limit", 2, endpoint="sex", retry_after=3)

    records = list(client.iter_records("sex"))

    assert records
    assert [status for _, status in sends] == [429, 429, 200]
    gaps = [later - earlier for (earlier, _), (later, _) in pairwise(sends)]
    assert all(gap >= 3 for gap in gaps)


def test_429_from_the_real_limit_is_honoured_on_the_wall_clock(
    emulator: EzyVetEmulator, make_client: MakeClient
) -> None:
    # given a site that allows 2 calls a second and a client that does not limit itself
    emulator.configure(rate_per_minute=2, endpoint_rate_per_minute=2, window_seconds=1.0)
    client = make_client()

    for _ in range(4):
        client.request("GET", "sex")

    log = [e for e in emulator.request_log() if e["endpoint"] == "sex"]
    assert [e["status"] for e in log].count(200) == 4
    throttled = [i for i, e in enumerate(log) if e["status"] == 429]
    assert throttled
    for i in throttled:
        assert float(log[i + 1]["t"]) - float(log[i]["t"]) >= 1.0  # Retry-After: 1


def test_client_side_limiter_keeps_under_the_site_limits(
    emulator: EzyVetEmulator, make_client: MakeClient
) -> None:
    emulator.configure(rate_per_minute=5, endpoint_rate_per_minute=3, window_seconds=0.5)
    client = make_client(rate_per_minute=5, endpoint_rate_per_minute=3, window_seconds=0.5)
    started = time.monotonic()

    for _ in range(6):
        client.request("GET", "sex")
        client.request("GET", "species")

    assert "429" not in emulator.state()["status_counts"]
    # 6 calls per endpoint at 3 per half second need at least one full window of waiting.
    assert time.monotonic() - started >= 0.5


def test_sliding_window_limiter_counts_from_when_calls_finish() -> None:
    limiter = SlidingWindowLimiter(limit=2, window=10)
    limiter.take(0.0)
    second = limiter.take(1.0)
    assert limiter.delay(2.0) == pytest.approx(8.0)
    assert limiter.delay(10.5) == 0  # the first call left the window
    limiter.take(10.5)

    second[0] = 4.0  # the second call's answer came back at t=4

    assert limiter.delay(11.0) == pytest.approx(3.0)
    assert limiter.delay(14.0) == 0


def test_rate_limited_for_too_long_gives_up(
    emulator: EzyVetEmulator, make_client: MakeClient
) -> None:
    clock = FakeClock()
    client = make_client(clock=clock, sleep=clock.sleep, max_rate_limited=3)
    emulator.inject_fault("rate_limit", 10, endpoint="sex", retry_after=7)

    with pytest.raises(EzyVetRateLimited) as raised:
        client.request("GET", "sex")

    assert raised.value.retry_after == 7
    assert clock.sleeps == [7, 7, 7]


@pytest.mark.parametrize("asked", [10**400, 10**12])
def test_a_retry_after_of_forever_is_waited_out_no_longer_than_an_hour(
    emulator: EzyVetEmulator, make_client: MakeClient, asked: int
) -> None:
    # 401 digits read as infinity: a worker asleep for ever, a writeback's next attempt
    # overflowing the calendar, "try again in inf s" failing the prescribers page.
    clock = FakeClock()
    client = make_client(clock=clock, sleep=clock.sleep, max_rate_limited=2)
    emulator.inject_fault("rate_limit", 10, endpoint="sex", retry_after=asked)

    with pytest.raises(EzyVetRateLimited) as raised:
        client.request("GET", "sex")

    assert clock.sleeps == [3600, 3600]
    assert raised.value.retry_after == 3600


def test_5xx_backs_off_exponentially_then_succeeds(
    emulator: EzyVetEmulator, make_client: MakeClient
) -> None:
    clock = FakeClock()
    client = make_client(clock=clock, sleep=clock.sleep, backoff_base=1.0)
    emulator.inject_fault("server_error", 3, endpoint="sex", status=502)

    assert client.request("GET", "sex")["items"]

    assert len(clock.sleeps) == 3
    for attempt, slept in enumerate(clock.sleeps, start=1):
        step = 2 ** (attempt - 1)
        assert step / 2 <= slept <= step
    assert emulator.state()["request_counts"]["GET sex"] == 4


def test_5xx_that_persists_is_unavailable_after_bounded_attempts(
    emulator: EzyVetEmulator, make_client: MakeClient
) -> None:
    clock = FakeClock()
    client = make_client(clock=clock, sleep=clock.sleep, max_attempts=4)
    emulator.inject_fault("server_error", 100, endpoint="sex")

    with pytest.raises(EzyVetUnavailable, match="HTTP 500"):
        client.request("GET", "sex")

    assert emulator.state()["request_counts"]["GET sex"] == 4


def test_dropped_connection_and_slow_answer_are_retried(
    emulator: EzyVetEmulator, make_client: MakeClient
) -> None:
    client = make_client(timeout=0.3)
    emulator.inject_fault("drop", 1, endpoint="sex")
    emulator.inject_fault("delay", 1, endpoint="species", seconds=1.0)

    assert client.request("GET", "sex")["items"]
    assert client.request("GET", "species")["items"]

    counts = emulator.state()["request_counts"]
    assert counts["GET sex"] == 2
    assert counts["GET species"] == 2


def test_unreachable_site_is_unavailable(credentials: EzyVetCredentials) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    clock = FakeClock()
    client = EzyVetClient(
        f"http://127.0.0.1:{port}", credentials, timeout=1, clock=clock, sleep=clock.sleep
    )

    with pytest.raises(EzyVetUnavailable, match="could not be reached"):
        client.request("GET", "contact")

    assert len(clock.sleeps) == client.max_attempts - 1


def test_bad_secret_is_an_auth_error_with_ezyvets_text(
    emulator: EzyVetEmulator, make_client: MakeClient, credentials: EzyVetCredentials
) -> None:
    wrong = EzyVetCredentials(
        partner_id=credentials.partner_id,
        client_id=credentials.client_id,
        client_secret="wrong",
        site_uid=credentials.site_uid,
    )
    client = make_client(credentials=wrong)

    with pytest.raises(EzyVetAuthError, match="Client authentication failed"):
        client.request("GET", "contact")


def test_missing_scope_is_a_scope_error(emulator: EzyVetEmulator, make_client: MakeClient) -> None:
    emulator.configure(scopes=tuple(s for s in REQUIRED_SCOPES if s != "read-breed"))
    client = make_client()

    with pytest.raises(EzyVetScopeError, match="read-breed"):
        client.request("GET", "breed")


def test_401_refreshes_the_token_once_and_retries(
    emulator: EzyVetEmulator, ezyvet: EzyVetClient
) -> None:
    ezyvet.request("GET", "sex")
    emulator.expire_tokens()

    assert ezyvet.request("GET", "sex")["items"]

    state = emulator.state()
    assert state["tokens_issued"] == 2
    assert state["status_counts"]["401"] == 1


def test_a_token_refused_twice_is_an_auth_error(
    emulator: EzyVetEmulator, ezyvet: EzyVetClient
) -> None:
    emulator.configure(token_lifetime=0)  # every token is born expired

    with pytest.raises(EzyVetAuthError, match="freshly issued"):
        ezyvet.request("GET", "sex")

    assert emulator.state()["tokens_issued"] == 2


def test_token_is_cached_and_refreshed_before_it_expires(
    emulator: EzyVetEmulator, make_client: MakeClient
) -> None:
    emulator.configure(token_lifetime=100)
    clock = FakeClock()
    client = make_client(clock=clock, sleep=clock.sleep)
    for _ in range(3):
        client.request("GET", "sex")
    assert emulator.state()["tokens_issued"] == 1

    clock.now += 91  # inside the refresh margin (10 % of 100 s)
    client.request("GET", "sex")

    state = emulator.state()
    assert state["tokens_issued"] == 2
    assert "401" not in state["status_counts"]


def test_check_connection_reports_token_and_each_scope(
    emulator: EzyVetEmulator, make_client: MakeClient, credentials: EzyVetCredentials
) -> None:
    good = make_client().check_connection()
    assert good.ok and good.token_ok
    assert {c.scope for c in good.scopes} == set(REQUIRED_SCOPES)

    emulator.configure(
        scopes=tuple(
            s for s in REQUIRED_SCOPES if s not in {"read-sex", "write-externalprescription"}
        )
    )
    partial = make_client().check_connection()
    assert not partial.ok and partial.token_ok
    assert set(partial.missing_scopes) == {"read-sex", "write-externalprescription"}

    wrong = EzyVetCredentials(
        partner_id="nobody",
        client_id=credentials.client_id,
        client_secret=credentials.client_secret,
        site_uid=credentials.site_uid,
    )
    refused = make_client(credentials=wrong).check_connection()
    assert not refused.ok and not refused.token_ok
    assert "Client authentication failed" in refused.error


def test_base_url_may_carry_v1_and_a_slash(
    emulator: EzyVetEmulator, make_client: MakeClient
) -> None:
    client = make_client(base_url=f"{emulator.base_url}/v1/")

    assert client.request("GET", "sex")["items"]


def test_vets_and_consults_for_prescribing(emulator: EzyVetEmulator, ezyvet: EzyVetClient) -> None:
    vets = ezyvet.list_vets()
    contacts = {c["id"]: c for c in emulator.records("contact")}
    expected = {
        u["id"] for u in emulator.records("user") if contacts[u["contact_id"]]["is_vet"] == "1"
    }
    assert {v.user_id for v in vets} == expected

    consult = emulator.records("consult")[0]
    consults = ezyvet.list_consults(consult["animal_id"])
    assert consult["id"] in {c.consult_id for c in consults}
    assert all(c.animal_id == consult["animal_id"] for c in consults)
    dates = [c.date for c in consults]
    assert dates == sorted(dates, reverse=True)  # type: ignore[type-var]
