"""Hostile input at every door (issue 17's review, case by case): a 4xx with a clear message,
JSON for agents, never a 500; a record that cannot be stored is quarantined alone."""

from __future__ import annotations

import json
from typing import Any

import pytest
from axes.models import AccessAttempt
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client as HttpClient
from django.urls import reverse

from clinics.models import Connector
from clinics.services import integration_issue_agent_token
from records.models import Client, Outcome, Patient, SyncRecordOutcome, SyncRun
from tests.conftest import World, login
from tests.records.batches import batch, owner, pet

BATCHES = "/api/agent/v1/batches"
FEED = "/api/agent/v1/writebacks"
DEEP = "[" * 100_000 + "]" * 100_000
HUGE = "9" * 5_000


def agent(token: str) -> HttpClient:
    return HttpClient(HTTP_AUTHORIZATION=f"Bearer {token}", raise_request_exception=False)


def post_batch(token: str, body: str, **extra: Any) -> Any:
    return agent(token).post(BATCHES, data=body, content_type="application/json", **extra)


@pytest.fixture
def token(world: World) -> str:
    return integration_issue_agent_token(integration=world.a.clinic.integration)


@pytest.fixture
def feed_token(world: World) -> str:
    integration = world.b.clinic.integration
    integration.connector = Connector.SYNCVET
    integration.save()
    return integration_issue_agent_token(integration=integration)


def assert_json_error(response: Any, status: int, *words: str) -> None:
    assert response.status_code == status, response.content[:300]
    assert response["Content-Type"].startswith("application/json")
    message = response.json()["error"]
    for word in words:
        assert word in message, message


# --- the agent batch body ------------------------------------------------------------------


def test_a_batch_nested_100000_deep_is_a_400(world: World, token: str) -> None:
    body = '{"source": "syncvet", "batch_id": "deep", "clients": ' + DEEP + "}"
    assert_json_error(post_batch(token, body), 400, "nested too deeply")
    assert not SyncRun.objects.exists()


def test_a_5000_digit_number_quarantines_only_its_record(world: World, token: str) -> None:
    body = batch(owner("C-1"), owner("C-2", patients=[pet("P-2")]), batch_id="huge")
    body = body.replace('"weight": 11.4', f'"weight": {HUGE}', 1)
    response = post_batch(token, body)
    assert response.status_code == 200, response.content
    counts = response.json()["counts"]
    assert counts["quarantined"] == 1
    assert Client.objects.filter(clinic=world.a.clinic).count() == 2
    assert Patient.objects.filter(pims_id="P-2").exists()


@pytest.mark.parametrize("constant", ["NaN", "Infinity", "-Infinity"])
def test_a_non_finite_weight_is_quarantined_alone_and_the_batch_id_stays_usable(
    world: World, token: str, constant: str
) -> None:
    good = [owner(f"C-{i}", patients=[pet(f"P-{i}")]) for i in range(2, 6)]
    body = batch(owner("C-1", patients=[pet("P-1")]), *good, batch_id=f"w-{constant}")
    body = body.replace('"weight": 11.4', f'"weight": {constant}', 1)

    response = post_batch(token, body)

    assert response.status_code == 200, response.content
    answer = response.json()
    assert answer["status"] == SyncRun.Status.SUCCEEDED
    assert answer["counts"]["quarantined"] == 1
    quarantined = SyncRecordOutcome.objects.get(outcome=Outcome.QUARANTINED)
    assert (quarantined.pims_id, quarantined.kind) == ("P-1", "patient")
    assert "finite" in quarantined.detail
    assert quarantined.raw["patients"][0]["weight"] == constant  # its owner's entry, storable
    assert Patient.objects.filter(clinic=world.a.clinic).count() == 4  # all but P-1
    assert Client.objects.filter(clinic=world.a.clinic, pims_id="C-1").exists()
    # The same batch id again is the same run, not a failed one blocking it.
    again = post_batch(token, body).json()
    assert again["duplicate"] is True and again["run_id"] == answer["run_id"]


def test_a_lone_surrogate_in_the_batch_id_is_a_400(world: World, token: str) -> None:
    body = batch(owner(), batch_id="bad\\ud800id")
    assert json.loads(body)  # still JSON, only not text
    response = post_batch(token, body.replace("bad\\\\ud800id", "bad\\ud800id"))
    assert_json_error(response, 400, "batch_id")


def test_a_lone_surrogate_in_a_name_quarantines_that_client_only(world: World, token: str) -> None:
    body = batch(owner("C-1", first_name="Da@@na"), owner("C-2"), batch_id="sur")
    response = post_batch(token, body.replace("Da@@na", "Da\\ud800na"))
    assert response.status_code == 200, response.content
    assert response.json()["counts"]["quarantined"] == 2  # the client and its pet
    row = SyncRecordOutcome.objects.get(outcome=Outcome.QUARANTINED, kind="client")
    assert row.pims_id == "C-1" and "surrogate" in row.detail
    assert row.raw["first_name"] == "Da\ufffdna"
    assert list(Client.objects.values_list("pims_id", flat=True)) == ["C-2"]


@pytest.mark.parametrize("quarantined", [5, "x", None, [1], [{"kind": "client"}]])
def test_a_quarantined_member_in_an_agent_batch_is_not_read(
    world: World, token: str, quarantined: Any
) -> None:
    # "quarantined" is what VetSync's own ezyVet pull stores beside its records; an agent's
    # batch that carries one is applied as any other, whatever the member holds.
    body = json.loads(batch(owner("C-1"), batch_id="with-quarantined"))
    body["quarantined"] = quarantined
    response = post_batch(token, json.dumps(body))
    assert response.status_code == 200, response.content
    assert response.json()["status"] == SyncRun.Status.SUCCEEDED
    assert Client.objects.filter(clinic=world.a.clinic, pims_id="C-1").exists()


def test_an_agent_cannot_forge_quarantined_records(world: World, token: str) -> None:
    body = json.loads(batch(owner("C-1"), batch_id="forged"))
    body["quarantined"] = [
        {"kind": "client", "pims_id": "C-9", "reason": "made up", "client_pims_id": ""}
    ]
    answer = post_batch(token, json.dumps(body)).json()
    assert answer["counts"]["quarantined"] == 0
    assert not SyncRecordOutcome.objects.filter(pims_id="C-9").exists()


@pytest.mark.parametrize("batch_id", ["2026/11/24-0001", "a?b#c", "a b"])
def test_a_batch_id_with_url_characters_is_applied_and_its_status_answers(
    world: World, token: str, batch_id: str
) -> None:
    response = post_batch(token, batch(owner("C-1"), batch_id=batch_id))
    assert response.status_code == 200, response.content
    answer = response.json()
    assert answer["status"] == SyncRun.Status.SUCCEEDED
    status = agent(token).get(answer["status_url"].removeprefix("http://testserver"))
    assert status.status_code == 200, status.content
    assert status.json()["run_id"] == answer["run_id"]
    # Sent again (the agent never saw the first answer): the same run, said so.
    again = post_batch(token, batch(owner("C-1"), batch_id=batch_id))
    assert again.status_code == 200 and again.json()["duplicate"] is True


def test_a_content_length_of_abc_is_a_400(world: World, token: str) -> None:
    response = post_batch(token, batch(owner()), headers={"Content-Length": "abc"})
    assert_json_error(response, 400, "Content-Length")


def test_a_body_over_the_cap_is_a_413_whatever_the_content_length_says(
    world: World, token: str, settings: Any
) -> None:
    settings.AGENT_BATCH_MAX_BYTES = 1000
    body = batch(*(owner(f"C-{i}") for i in range(10)))
    assert_json_error(post_batch(token, body), 413, "at most 1000 bytes")
    lying = post_batch(token, body, headers={"Content-Length": "10"})
    assert lying.status_code in (400, 413)  # Django reads only the 10 bytes it was promised
    assert not SyncRun.objects.exists()


# --- JSON for every error under /api/ --------------------------------------------------------


def test_unknown_paths_wrong_methods_and_crashes_answer_json(
    world: World, token: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert_json_error(agent(token).get("/api/agent/v1/nothing-here"), 404, "No such")
    wrong = agent(token).get(BATCHES)
    assert_json_error(wrong, 405, "POST")
    assert wrong["Allow"] == "POST"

    def crash(**kwargs: Any) -> None:
        raise RuntimeError("boom")

    monkeypatch.setattr("records.api.sync_run_create", crash)
    assert_json_error(post_batch(token, batch(owner())), 500, "nothing was applied")


def test_each_token_has_a_request_rate(world: World, token: str, settings: Any) -> None:
    settings.AGENT_REQUESTS_PER_MINUTE = 3
    answers = [agent(token).get(f"{BATCHES}/none") for _ in range(4)]
    assert [a.status_code for a in answers] == [404, 404, 404, 429]
    assert 1 <= int(answers[-1]["Retry-After"]) <= 61
    assert_json_error(answers[-1], 429, "At most 3 requests a minute")
    other = integration_issue_agent_token(integration=world.b.clinic.integration)
    assert agent(other).get(f"{BATCHES}/none").status_code == 404  # its own budget


# --- the writeback feed --------------------------------------------------------------------


@pytest.mark.parametrize("after", ["²", HUGE, "-1", "1e3"])
def test_a_bad_feed_cursor_is_a_400(world: World, feed_token: str, after: str) -> None:
    assert_json_error(agent(feed_token).get(FEED, {"after": after}), 400, "after must be")


@pytest.mark.parametrize(
    ("body", "words"),
    [(DEEP, "nested too deeply"), ('{"ok": tru', "must be JSON"), (HUGE, "ok (true or false)")],
)
def test_a_hostile_ack_body_is_a_400(world: World, feed_token: str, body: str, words: str) -> None:
    response = agent(feed_token).post(f"{FEED}/1/ack", body, content_type="application/json")
    assert_json_error(response, 400, words)


def test_an_ack_error_with_a_lone_surrogate_is_stored_readably(
    world: World, feed_token: str
) -> None:
    body = '{"ok": false, "error": "locked \\ud800 record"}'
    response = agent(feed_token).post(f"{FEED}/999999/ack", body, content_type="application/json")
    assert_json_error(response, 404, "No such writeback item")


# --- staff pages ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "query"),
    [
        ("prescriptions:prescription-list", {"patient": "²"}),
        ("prescriptions:prescription-list", {"client": "²"}),
        ("prescriptions:prescription-list", {"q": "²"}),
        ("prescriptions:order-list", {"client": "²"}),
        ("prescriptions:order-list", {"patient": HUGE}),
        ("prescriptions:order-list", {"q": "²"}),
        ("prescriptions:prescription-new", {"patient": "²"}),
        ("prescriptions:order-new", {"patient": "²"}),
        ("records:client-list", {"q": "²", "page": "²"}),
    ],
)
def test_staff_pages_take_odd_numbers_in_their_stride(
    world: World, name: str, query: dict[str, str]
) -> None:
    response = login(world.a.staff).get(reverse(name, args=["alder"]), query)
    assert response.status_code == 200


def test_a_run_retry_with_an_odd_record_id_is_a_400(world: World, token: str) -> None:
    run_id = post_batch(token, batch(owner(patients=[pet(weight=-1)]))).json()["run_id"]
    url = reverse("records:run-retry", args=["alder", run_id])
    response = login(world.a.staff).post(url, {"outcome": "²"})
    assert response.status_code == 400
    assert b"chosen from the run" in response.content
    assert SyncRun.objects.count() == 1  # nothing retried


# --- the ezyVet credentials upload ---------------------------------------------------------


def test_a_deeply_nested_credentials_file_is_refused_in_the_admin(world: World) -> None:
    integration = world.a.clinic.integration
    integration.connector = Connector.EZYVET
    integration.base_url = "http://127.0.0.1:9"
    integration.save()
    text = '{"a": ' + "[" * 30_000 + "]" * 30_000 + "}"  # under the 64 KB a file may be
    response = login(world.onboarding).post(
        reverse("admin:clinics_integration_change", args=[integration.pk]),
        {
            "clinic": integration.clinic_id,
            "connector": "ezyvet",
            "status": "live",
            "base_url": integration.base_url,
            "sync_interval": "01:00:00",
            "expected_interval": "03:00:00",
            "watermark_0": "",
            "watermark_1": "",
            "credentials_file": SimpleUploadedFile("client_credentials.txt", text.encode()),
            "new_credentials": "",
        },
        follow=True,
    )
    assert response.status_code == 200
    assert (
        "Credentials file not stored: The credentials file is not valid JSON (nested too deeply)"
        in (response.content.decode())
    )


def test_a_nul_character_anywhere_in_the_request_is_a_400(world: World, token: str) -> None:
    assert_json_error(agent(token).get(f"{BATCHES}/a%00b"), 400, "NUL character")
    feed = agent(token).get(FEED, QUERY_STRING="after=%00")
    assert_json_error(feed, 400, "NUL character")
    page = login(world.a.staff).get(reverse("records:client-list", args=["alder"]), {"q": "a\x00"})
    assert page.status_code == 400 and b"NUL character" in page.content


@pytest.mark.parametrize("vet", ["²", "9" * 30, "", "-1"])
def test_a_prescriber_mapping_for_an_odd_vet_id_is_a_404(world: World, vet: str) -> None:
    from clinics.models import Membership, Role

    Membership.objects.filter(user=world.a.staff).update(role=Role.ADMIN)  # may map prescribers
    url = reverse("clinics:prescribers", args=["alder"])
    response = login(world.a.staff).post(url, {"vet": vet, "pims_user_id": "U-1"})
    assert response.status_code == 404
    other_clinics_vet = {"vet": str(world.b.vet.pk), "pims_user_id": "U-1"}
    assert login(world.a.staff).post(url, other_clinics_vet).status_code == 404
    world.b.vet.refresh_from_db()
    assert world.b.vet.pims_user_id != "U-1"


@pytest.mark.parametrize(
    ("login_url", "refusal"),
    [
        ("/accounts/login/", "Your username and password didn't match"),
        ("/admin/login/", "Please enter the correct username and password"),
    ],
)
def test_a_5000_character_username_is_a_failed_login_not_a_500(
    world: World, login_url: str, refusal: str
) -> None:
    # django-axes records a failed attempt's username in 255 characters: PostgreSQL refused it.
    browser = HttpClient(raise_request_exception=False)
    response = browser.post(login_url, {"username": HUGE, "password": "0"})
    assert response.status_code == 200
    assert refusal in response.content.decode()
    attempt = AccessAttempt.objects.get()
    assert (attempt.username, attempt.failures_since_start) == (HUGE[:255], 1)
