"""The clinic's WriteBack monitor, as staff use it: counts, filters and search, one row's
attempts and error, and "Retry" for a failed row. Another clinic's rows are a 404."""

from __future__ import annotations

import datetime as dt
import io
import re

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.urls import reverse
from django.utils import timezone

from clinics.models import AuditEvent, Clinic, Integration, Vet
from prescriptions import writeback
from prescriptions.demo.records import EMULATOR_CLIENTS, EMULATOR_SEED
from prescriptions.models import (
    Order,
    Prescription,
    PrescriptionItem,
    Product,
    RxRequest,
    WritebackIncident,
    WritebackItem,
)
from records.models import Client
from tests.conftest import World, login
from tests.factories import ClientFactory, PatientFactory
from tests.prescriptions.conftest import rx
from tests.prescriptions.writeback import ship
from vetsync.pims.emulator import EzyVetEmulator

Status = WritebackItem.Status
DEMO_MODELS = [Product, Prescription, Order, RxRequest, WritebackItem, Client]


def monitor_url(world_clinic, **params: str) -> str:
    url = reverse("prescriptions:writeback-monitor", args=[world_clinic.clinic.slug])
    if params:
        url += "?" + "&".join(f"{k}={v}" for k, v in params.items())
    return url


def detail_url(world_clinic, item: WritebackItem) -> str:
    return reverse("prescriptions:writeback-detail", args=[world_clinic.clinic.slug, item.pk])


def retry_url(world_clinic, item: WritebackItem) -> str:
    return reverse("prescriptions:writeback-retry", args=[world_clinic.clinic.slug, item.pk])


def feed_row(order: Order) -> WritebackItem:
    return WritebackItem.objects.get(order=order)


def shown_ids(html: str) -> list[int]:
    """The writeback numbers in the list, in the order shown."""
    return [int(n) for n in re.findall(r'data-testid="writeback-row">\s*<td><a [^>]*>#(\d+)', html)]


def count_on_page(html: str, status: str) -> int:
    match = re.search(
        rf'data-testid="count-{status}">\s*<span class="num">([\d,]+)</span>', html, re.S
    )
    assert match, f"no count for {status}"
    return int(match.group(1).replace(",", ""))


@pytest.fixture
def agent_rows(world: World, catalogue, agent_pet):
    """At the agent clinic (B): three shipments on the feed; the agent wrote the first,
    failed on the second, and has not pulled the third."""
    prescription = rx(world.b, agent_pet, catalogue.carprofen)
    orders = [ship(world.b, prescription, quantity=10) for _ in range(3)]
    delivered, failed, pending = (feed_row(o) for o in orders)
    writeback.agent_ack(clinic=world.b.clinic, item_id=delivered.pk, ok=True)
    writeback.agent_ack(
        clinic=world.b.clinic,
        item_id=failed.pk,
        ok=False,
        error="Cornerstone: patient P-3001 is inactive; line item not posted.",
    )
    return {
        "prescription": prescription,
        "orders": orders,
        "delivered": delivered,
        "failed": failed,
        "pending": pending,
    }


# --- the monitor ----------------------------------------------------------------------------


def test_counts_by_status_link_to_the_filtered_list(world: World, agent_rows) -> None:
    staff = login(world.b.staff)

    page = staff.get(monitor_url(world.b)).content.decode()

    assert count_on_page(page, "all") == 3
    assert count_on_page(page, "pending") == 1
    assert count_on_page(page, "delivered") == 1
    assert count_on_page(page, "failed") == 1
    assert count_on_page(page, "retried") == 0
    assert f'href="{monitor_url(world.b, status="failed")}"' in page
    assert 'data-testid="last-success">Last delivery: ' in page
    failed_only = staff.get(monitor_url(world.b, status="failed")).content.decode()
    assert shown_ids(failed_only) == [agent_rows["failed"].pk]
    assert "patient P-3001 is inactive" in failed_only


def test_the_list_is_newest_first_and_filters_by_kind(world: World, agent_rows) -> None:
    staff = login(world.b.staff)

    page = staff.get(monitor_url(world.b)).content.decode()
    dispenses = staff.get(monitor_url(world.b, kind="dispense")).content.decode()
    ends = staff.get(monitor_url(world.b, kind="status")).content.decode()

    rows = agent_rows
    assert shown_ids(page) == [rows["pending"].pk, rows["failed"].pk, rows["delivered"].pk]
    assert len(shown_ids(dispenses)) == 3
    assert shown_ids(ends) == []
    assert 'data-testid="no-results"' in ends


def test_an_open_incident_shows_a_banner_until_delivery_resumes(world: World, agent_rows) -> None:
    staff = login(world.b.staff)
    assert 'data-testid="incident"' in staff.get(monitor_url(world.b)).content.decode()

    retry = writeback.writeback_retry(item=agent_rows["failed"], actor=world.b.staff)
    writeback.agent_ack(clinic=world.b.clinic, item_id=retry.pk, ok=True)

    assert not WritebackIncident.objects.filter(closed_at__isnull=True).exists()
    assert 'data-testid="incident"' not in staff.get(monitor_url(world.b)).content.decode()


def test_search_by_order_and_prescription_number(world: World, catalogue, agent_rows) -> None:
    other = rx(world.b, agent_rows["prescription"].patient, catalogue.apoquel)
    other_order = ship(world.b, other, quantity=10)
    staff = login(world.b.staff)

    by_order = staff.get(monitor_url(world.b, q=agent_rows["orders"][1].number)).content.decode()
    by_rx = staff.get(monitor_url(world.b, q=other.number)).content.decode()
    by_pet = staff.get(monitor_url(world.b, q="pepper")).content.decode()

    assert shown_ids(by_order) == [agent_rows["failed"].pk]
    assert shown_ids(by_rx) == [feed_row(other_order).pk]
    assert len(shown_ids(by_pet)) == 4


def test_search_as_you_type_returns_only_the_list(world: World, agent_rows) -> None:
    staff = login(world.b.staff)

    fragment = staff.get(
        monitor_url(world.b, q=agent_rows["orders"][0].number),
        headers={"HX-Request": "true", "HX-Target": "writeback-list"},
    ).content.decode()

    assert fragment.lstrip().startswith('<div id="writeback-list">')
    assert shown_ids(fragment) == [agent_rows["delivered"].pk]


def test_another_clinics_number_finds_nothing(world: World, agent_rows) -> None:
    # Clinic A's staff searching for clinic B's order see an empty list, not B's row.
    page = login(world.a.staff).get(monitor_url(world.a, q=agent_rows["orders"][0].number))
    assert shown_ids(page.content.decode()) == []


# --- one writeback --------------------------------------------------------------------------


def test_detail_shows_attempts_last_error_payload_and_links(world: World, agent_rows) -> None:
    failed = agent_rows["failed"]

    page = login(world.b.staff).get(detail_url(world.b, failed)).content.decode()

    assert 'data-testid="writeback-status">Failed<' in page
    assert "Cornerstone: patient P-3001 is inactive" in page
    attempts = page.split('data-testid="attempts"')[1].split("</table>")[0]
    assert attempts.count("<tr>") == 2  # the header and the one attempt
    assert "Failed for good" in attempts
    assert agent_rows["prescription"].number in page
    assert agent_rows["orders"][1].number in page
    assert "&quot;patient_pims_id&quot;: &quot;P-3001&quot;" in page  # pretty JSON
    assert 'data-testid="retry"' in page
    delivered = login(world.b.staff).get(detail_url(world.b, agent_rows["delivered"]))
    assert 'data-testid="retry"' not in delivered.content.decode()


def test_an_ezyvet_rejection_is_shown_with_its_http_status(
    world: World, site, ezyvet_clinic, catalogue, django_capture_on_commit_callbacks
) -> None:
    # A pet linked to an animal ezyVet does not have: ezyVet answers 400, for good.
    owner = ClientFactory(clinic=world.a.clinic, pims_id="999990")
    pet = PatientFactory(client=owner, name="Ghost", pims_id="999991")
    with django_capture_on_commit_callbacks(execute=True):
        rx(world.a, pet, catalogue.carprofen)
    item = WritebackItem.objects.get()

    page = login(world.a.staff).get(detail_url(world.a, item)).content.decode()

    assert item.status == Status.FAILED
    attempts = page.split('data-testid="attempts"')[1].split("</table>")[0]
    assert "<td>400</td>" in attempts
    assert "animal_id 999991 does not exist" in page
    assert "POST v1/externalprescription" in page


def test_an_ezyvet_row_on_its_way_refreshes_until_delivered(
    world: World, site, ezy_pet, catalogue, django_capture_on_commit_callbacks
) -> None:
    rx(world.a, ezy_pet, catalogue.carprofen)  # committed, not yet sent
    item = WritebackItem.objects.get()
    staff = login(world.a.staff)
    assert 'hx-trigger="every 5s"' in staff.get(detail_url(world.a, item)).content.decode()

    with django_capture_on_commit_callbacks(execute=True):
        writeback.writeback_deliver(item_id=item.pk)
    fragment = staff.get(
        detail_url(world.a, item), headers={"HX-Request": "true", "HX-Target": "writeback-status"}
    ).content.decode()

    assert fragment.lstrip().startswith('<div id="writeback-status"')
    assert 'data-testid="writeback-status">Delivered<' in fragment
    assert "every 5s" not in fragment  # done: the page stops asking
    assert '"external_reference": "VS-' in fragment.replace("&quot;", '"')  # ezyVet's answer


def test_an_ezyvet_row_behind_an_earlier_one_says_it_waits_for_it(
    world: World, site, ezy_pet, catalogue, django_capture_on_commit_callbacks
) -> None:
    prescription = rx(world.a, ezy_pet, catalogue.carprofen)  # the prescribe row, not yet sent
    ship(world.a, prescription)
    prescribe, dispense = WritebackItem.objects.filter(prescription=prescription).order_by(
        "sequence"
    )
    staff = login(world.a.staff)
    page = staff.get(detail_url(world.a, dispense)).content.decode()
    assert (
        f"writeback #{prescribe.pk}</a> (prescription sent, sequence 1, pending): this one is "
        "sent once that one is through." in page
    )
    assert (
        'data-testid="waiting-for"'
        not in staff.get(detail_url(world.a, prescribe)).content.decode()
    )

    with django_capture_on_commit_callbacks(execute=True):
        writeback.writeback_deliver(item_id=prescribe.pk)
    assert (
        'data-testid="waiting-for"' not in staff.get(detail_url(world.a, dispense)).content.decode()
    )


# --- retry ----------------------------------------------------------------------------------


def test_retry_makes_a_linked_row_and_an_audit_event(world: World, agent_rows) -> None:
    failed = agent_rows["failed"]
    staff = login(world.b.staff)

    response = staff.post(retry_url(world.b, failed), follow=True)

    retry = WritebackItem.objects.get(retry_of=failed)
    assert response.redirect_chain[-1][0] == detail_url(world.b, retry)
    page = response.content.decode()
    assert f"is retried as writeback {retry.pk}" in page
    assert f"writeback #{failed.pk}</a>" in page.split('data-testid="retry-of"')[1]
    assert retry.status == Status.PENDING and retry.order == failed.order
    failed.refresh_from_db()
    assert failed.status == Status.RETRIED
    old_page = staff.get(detail_url(world.b, failed)).content.decode()
    assert f"writeback #{retry.pk}</a>" in old_page.split('data-testid="retried-by"')[1]
    assert 'data-testid="retry"' not in old_page
    event = AuditEvent.objects.get(action="writeback.retried")
    assert event.actor == world.b.staff and event.object_id == str(retry.pk)
    # The agent gets the retry on its feed, and the later shipment only once it is through:
    # the lines of one prescription reach the PIMS in order.
    assert [line["id"] for line in writeback.agent_feed(clinic=world.b.clinic)[0]] == [retry.pk]
    writeback.agent_ack(clinic=world.b.clinic, item_id=retry.pk, ok=True)
    assert [line["id"] for line in writeback.agent_feed(clinic=world.b.clinic)[0]] == [
        agent_rows["pending"].pk
    ]
    counts = staff.get(monitor_url(world.b)).content.decode()
    assert count_on_page(counts, "retried") == 1 and count_on_page(counts, "failed") == 0


def test_retry_of_a_delivered_row_is_refused_with_a_message(world: World, agent_rows) -> None:
    delivered = agent_rows["delivered"]

    response = login(world.b.staff).post(retry_url(world.b, delivered), follow=True)

    assert response.redirect_chain[-1][0] == detail_url(world.b, delivered)
    assert "Only a failed writeback can be retried." in response.content.decode()
    assert not WritebackItem.objects.filter(retry_of=delivered).exists()
    assert not AuditEvent.objects.filter(action="writeback.retried").exists()


def test_retry_after_the_pet_is_linked_reaches_ezyvet(
    world: World, site, ezyvet_clinic, catalogue, django_capture_on_commit_callbacks
) -> None:
    owner = ClientFactory(clinic=world.a.clinic)
    pet = PatientFactory(client=owner, name="Biscuit")  # not linked to ezyVet yet
    with django_capture_on_commit_callbacks(execute=True):
        rx(world.a, pet, catalogue.carprofen)
    failed = WritebackItem.objects.get()
    assert failed.status == Status.FAILED and "has no PIMS id" in failed.last_error
    # The next sync links the owner and the pet to ezyVet's records.
    animal = site.record("animal", site.records("consult")[0]["animal_id"])
    owner.pims_id = str(animal["contact_id"])
    owner.save()
    pet.pims_id = str(animal["id"])
    pet.save()

    with django_capture_on_commit_callbacks(execute=True):
        response = login(world.a.staff).post(retry_url(world.a, failed))

    retry = WritebackItem.objects.get(retry_of=failed)
    assert response["Location"] == detail_url(world.a, retry)
    assert retry.status == Status.DELIVERED
    page = login(world.a.staff).get(detail_url(world.a, retry)).content.decode()
    assert 'data-testid="writeback-status">Delivered<' in page
    assert "Delivered</td>" in page.split('data-testid="attempts"')[1]


def test_retry_needs_post(world: World, agent_rows) -> None:
    response = login(world.b.staff).get(retry_url(world.b, agent_rows["failed"]))
    assert response.status_code == 405


# --- tenancy --------------------------------------------------------------------------------


def test_another_clinic_gets_404_for_monitor_detail_and_retry(world: World, agent_rows) -> None:
    outsider = login(world.a.staff)
    failed = agent_rows["failed"]

    assert outsider.get(monitor_url(world.b)).status_code == 404
    assert outsider.get(detail_url(world.b, failed)).status_code == 404
    assert outsider.post(retry_url(world.b, failed)).status_code == 404
    # Through their own clinic's URL, B's row does not exist either.
    assert outsider.get(detail_url(world.a, failed)).status_code == 404
    assert outsider.post(retry_url(world.a, failed)).status_code == 404
    failed.refresh_from_db()
    assert failed.status == Status.FAILED


def test_logged_out_users_are_sent_to_log_in(client, world: World) -> None:
    response = client.get(monitor_url(world.a))
    assert response.status_code == 302 and "/accounts/login/" in response["Location"]


# --- the demo -------------------------------------------------------------------------------


def test_the_demo_seeds_once_and_its_monitors_show_every_state(db) -> None:
    call_command("seed_demo", clients=20, stdout=io.StringIO())
    counts = {model: model.objects.count() for model in DEMO_MODELS}
    call_command("seed_demo", clients=20, stdout=io.StringIO())

    assert {model: model.objects.count() for model in DEMO_MODELS} == counts
    assert counts[Product] >= 25 and Product.objects.filter(is_compounded=True).count() == 3
    riverside = Clinic.objects.get(slug="riverside")
    maple = Clinic.objects.get(slug="maple-grove")
    # Riverside's prescriptions are for pets ezyVet knows, by a vet ezyVet knows.
    sent = WritebackItem.objects.filter(clinic=riverside, kind="prescribe")
    assert sent.count() >= 8 and sent.filter(prescription__patient__pims_id="").count() == 1
    assert {i.status for i in PrescriptionItem.objects.filter(prescription__clinic=riverside)} >= {
        "PENDING",
        "CURRENT",
        "DECLINED_DR",
        "CANCELLED_CLIENT",
    }
    assert {o.status for o in Order.objects.filter(clinic=maple)} == {
        "placed",
        "on_hold",
        "shipped",
        "cancelled",
    }
    near = RxRequest.objects.filter(clinic=maple, status="pending").order_by("expires_at").first()
    assert near.expires_at - timezone.now() < dt.timedelta(days=5)
    # Its history says it was asked for when its page says it was, not on the day of the seed.
    asked = AuditEvent.objects.filter(object_type="prescriptions.rxrequest", object_id=str(near.pk))
    assert [event.created_at for event in asked] == [near.created_at]
    page = (
        login(get_user_model().objects.get(username="maple-grove-staff"))
        .get(reverse("prescriptions:writeback-monitor", args=["maple-grove"]))
        .content.decode()
    )
    for status in ("pending", "delivered", "failed", "retried"):
        assert count_on_page(page, status) >= 1, status
    assert 'data-testid="incident"' in page
    _riverside_vet_is_their_own_ezyvet_user(riverside)


def _riverside_vet_is_their_own_ezyvet_user(riverside: Clinic) -> None:
    """The demo's ezyVet vet is mapped to the emulator's vet user with their own name: their
    prescriptions name them, and the Prescribers page has nothing to warn about."""
    vet = Vet.objects.get(clinic=riverside, user__username="riverside-vet")
    with EzyVetEmulator(
        clients=EMULATOR_CLIENTS, seed=EMULATOR_SEED, rate_per_minute=0, endpoint_rate_per_minute=0
    ) as site:  # what the demo pulled from and `make run` serves
        user = site.record("user", vet.pims_user_id)
        assert (user["first_name"], user["last_name"]) == (vet.first_name, vet.last_name)
        Integration.objects.filter(clinic=riverside).update(base_url=site.base_url)
        admin = get_user_model().objects.get(username="riverside-admin")
        page = login(admin).get(reverse("clinics:prescribers", args=["riverside"]))
    text = page.content.decode()
    assert f"{vet} · ezyVet user {vet.pims_user_id}" in text
    assert 'data-testid="prescriber-warnings"' not in text
    assert "Name differs" not in text


def test_staff_dismiss_a_failed_row_with_a_reason(world: World, agent_rows) -> None:
    failed = agent_rows["failed"]
    staff = login(world.b.staff)
    url = reverse("prescriptions:writeback-dismiss", args=["birch", failed.pk])

    refused = staff.post(url, {"reason": ""}, follow=True).content.decode()
    assert "Say why this writeback is resolved without sending it." in refused
    page = staff.post(url, {"reason": "Posted in Cornerstone by hand"}, follow=True)

    assert "is dismissed; it will not be sent" in page.content.decode()
    failed.refresh_from_db()
    assert failed.status == Status.DISMISSED
    event = AuditEvent.objects.get(action="writeback.dismissed")
    assert event.actor == world.b.staff and event.after == {
        "reason": "Posted in Cornerstone by hand"
    }
    assert login(world.a.staff).post(url, {"reason": "x"}).status_code == 404
