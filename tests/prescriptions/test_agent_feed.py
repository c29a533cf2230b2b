"""The writeback feed an on-premise agent pulls (PIMS.md, "Writeback feed"), over HTTP with
the clinic's bearer token: what it lists, how it pages, how acks land, and who is refused."""

from __future__ import annotations

import datetime as dt
import json
import re

import pytest
from django.core import mail
from django.test import Client as HttpClient
from django.urls import reverse

from clinics.services import integration_issue_agent_token, integration_revoke_agent_token
from prescriptions import writeback
from prescriptions.models import Channel, Product, ProductKind, WritebackItem
from prescriptions.services import (
    ItemSpec,
    LineSpec,
    order_place,
    order_ship,
    prescription_create,
    prescription_items_end,
)
from tests.conftest import World, login
from tests.factories import ClientFactory, PatientFactory
from tests.prescriptions.conftest import rx
from tests.prescriptions.writeback import ship

FEED = "/api/agent/v1/writebacks"
Status = WritebackItem.Status


def agent(token: str) -> HttpClient:
    return HttpClient(HTTP_AUTHORIZATION=f"Bearer {token}")


def feed(token: str, after: int | str | None = None) -> dict:
    response = agent(token).get(FEED, {} if after is None else {"after": after})
    assert response.status_code == 200, response.content
    return response.json()


def ack(token: str, item_id: int, body: dict | str):
    return agent(token).post(
        f"{FEED}/{item_id}/ack",
        body if isinstance(body, str) else json.dumps(body),
        content_type="application/json",
    )


@pytest.fixture
def token(agent_clinic) -> str:
    return agent_clinic[1]


# --- what the agent sees ---------------------------------------------------------------------


def test_a_shipment_is_a_dispense_line_in_the_feed_format(
    world: World, token, agent_pet, catalogue
) -> None:
    prescription = rx(world.b, agent_pet, catalogue.carprofen)
    order = ship(world.b, prescription)

    body = feed(token)

    (line,) = body["items"]
    assert line["kind"] == "dispense"
    assert (line["client_pims_id"], line["patient_pims_id"]) == ("C-2001", "P-3001")
    assert (line["product_name"], line["product_reference"]) == (
        "Carprofen 75 mg chewable",
        "CARP-75",
    )
    assert (line["qty"], line["instructions"]) == (30, "One daily with food")
    assert line["prescriber"] == str(world.b.vet)
    # When it shipped, to the second (the date the staff recorded, at the time they did).
    item = prescription.items.get()
    # In the clinic's zone, with its offset: the agent's PIMS files it on the clinic's date.
    shipped_at = dt.datetime.fromisoformat(line["shipped_at"])
    assert shipped_at == item.last_dispensed_at
    assert shipped_at.utcoffset() == world.b.clinic.localtime(shipped_at).utcoffset()
    assert line["shipped_at"].startswith(order.shipped_on.isoformat())
    assert line["order_ref"] == order.number
    assert line["link"].endswith(prescription.get_absolute_url())
    assert "status" not in line
    assert body["cursor"] == line["id"]
    assert body["more"] is False


def test_a_dispensed_item_that_ends_is_a_status_line(
    world: World, token, agent_pet, catalogue
) -> None:
    prescription = rx(world.b, agent_pet, catalogue.carprofen)
    ship(world.b, prescription)
    (dispense,) = feed(token)["items"]

    prescription_items_end(prescription=prescription, actor=world.b.vet_user, reason="Stopped")

    (line,) = feed(token, after=dispense["id"])["items"]
    assert line["kind"] == "status"
    assert (line["status"], line["product_reference"]) == ("CANCELLED_DR", "CARP-75")
    ended = world.b.clinic.localdate(prescription.items.get().status_date)
    assert line["status_date"].startswith(ended.isoformat())
    assert (line["client_pims_id"], line["patient_pims_id"]) == ("C-2001", "P-3001")
    assert "shipped_at" not in line


def test_an_item_never_dispensed_is_not_on_the_feed_when_it_ends(
    world: World, token, agent_pet, catalogue
) -> None:
    prescription = rx(world.b, agent_pet, catalogue.carprofen)

    prescription_items_end(prescription=prescription, actor=world.b.vet_user, reason="Stopped")

    assert feed(token)["items"] == []


@pytest.mark.parametrize(
    ("products", "channel", "listed"),
    [
        (["carprofen"], Channel.PORTAL, ["CARP-75"]),
        (["carprofen"], Channel.STORE, ["CARP-75"]),
        (["renal_diet"], Channel.STORE, ["RENAL-K9"]),
        (["dasuquin"], Channel.PORTAL, ["DASUQUIN-L"]),  # OTC in a treatment plan
        (["carprofen", "renal_diet"], Channel.ECONNECT, []),
        (["compounded"], Channel.PORTAL, []),
        (["compounded", "apoquel"], Channel.PORTAL, ["APOQ-16"]),
    ],
)
def test_what_reaches_the_feed_follows_the_writeback_table(
    world: World, token, agent_pet, catalogue, products, channel, listed
) -> None:
    prescription = rx(
        world.b, agent_pet, *(getattr(catalogue, p) for p in products), channel=channel
    )

    ship(world.b, prescription)

    assert [line["product_reference"] for line in feed(token)["items"]] == listed


def test_an_otc_product_outside_a_treatment_plan_is_not_on_the_feed(
    world: World, token, agent_pet, catalogue
) -> None:
    order = order_place(
        clinic=world.b.clinic,
        patient=agent_pet,
        lines=[LineSpec(product=catalogue.dasuquin, quantity=60)],
        actor=world.b.staff,
    )
    order_ship(order=order, actor=world.b.staff)

    assert feed(token)["items"] == []
    assert not WritebackItem.objects.exists()


def test_nothing_is_on_the_feed_when_writeback_is_off(
    world: World, token, agent_pet, catalogue
) -> None:
    world.b.clinic.writeback_enabled = False
    world.b.clinic.save()
    prescription = rx(world.b, agent_pet, catalogue.carprofen)

    ship(world.b, prescription)
    prescription_items_end(prescription=prescription, actor=world.b.vet_user, reason="Stopped")

    assert feed(token)["items"] == []


# --- paging ----------------------------------------------------------------------------------


def test_the_cursor_pages_through_the_feed(world: World, token, agent_pet, catalogue) -> None:
    prescription = rx(world.b, agent_pet, catalogue.carprofen)
    for _ in range(3):
        ship(world.b, prescription)

    first = feed(token)
    ids = [line["id"] for line in first["items"]]
    assert len(ids) == 3 and ids == sorted(ids)
    assert first["cursor"] == ids[-1]

    assert [line["id"] for line in feed(token, after=ids[0])["items"]] == ids[1:]
    rest = feed(token, after=first["cursor"])
    assert rest["items"] == []
    assert rest["cursor"] == first["cursor"]  # the agent keeps its place


def test_a_long_feed_comes_in_pages(world: World, token, agent_pet) -> None:
    products = Product.objects.bulk_create(
        Product(sku=f"SKU-{n:03d}", name=f"Product {n}", kind=ProductKind.RX_MEDICATION, price=1)
        for n in range(writeback.FEED_PAGE + 1)
    )
    prescription = prescription_create(
        clinic=world.b.clinic,
        patient=agent_pet,
        vet=world.b.vet,
        items=[
            ItemSpec(product=p, quantity=1, refills=0, instructions="As directed") for p in products
        ],
        actor=world.b.vet_user,
        approve=True,
    )
    order = order_place(
        clinic=world.b.clinic,
        patient=agent_pet,
        lines=[
            LineSpec(product=item.product, quantity=1, prescription_item=item)
            for item in prescription.items.select_related("product")
        ],
        actor=world.b.staff,
    )
    order_ship(order=order, actor=world.b.staff)

    page = feed(token)
    assert len(page["items"]) == writeback.FEED_PAGE
    assert page["more"] is True
    last = feed(token, after=page["cursor"])
    assert len(last["items"]) == 1
    assert last["more"] is False
    seen = [line["product_reference"] for line in page["items"] + last["items"]]
    assert sorted(seen) == sorted(p.sku for p in products)


def test_a_bad_cursor_is_refused(token) -> None:
    response = agent(token).get(FEED, {"after": "yesterday"})

    assert response.status_code == 400
    assert "after must be" in response.json()["error"]


# --- acknowledgements ------------------------------------------------------------------------


def test_an_ok_ack_takes_the_line_off_the_feed_and_a_repeat_changes_nothing(
    world: World, token, agent_pet, catalogue
) -> None:
    ship(world.b, rx(world.b, agent_pet, catalogue.carprofen))
    (line,) = feed(token)["items"]

    first = ack(token, line["id"], {"ok": True})
    again = ack(token, line["id"], {"ok": True})

    assert first.status_code == again.status_code == 200
    assert first.json() == again.json() == {"id": line["id"], "status": "delivered"}
    item = WritebackItem.objects.get(pk=line["id"])
    assert (item.status, item.attempts) == (Status.DELIVERED, 1)
    assert item.delivered_at is not None
    assert feed(token)["items"] == []


def test_a_failed_ack_is_kept_for_staff_and_a_repeat_changes_nothing(
    world: World, token, agent_pet, catalogue, django_capture_on_commit_callbacks
) -> None:
    world.b.clinic.email = "frontdesk@birch.example"
    world.b.clinic.save()
    ship(world.b, rx(world.b, agent_pet, catalogue.carprofen))
    (line,) = feed(token)["items"]

    with django_capture_on_commit_callbacks(execute=True):
        first = ack(token, line["id"], {"ok": False, "error": "Patient P-3001 is locked"})
        again = ack(token, line["id"], {"ok": False, "error": "Another error"})
        late_ok = ack(token, line["id"], {"ok": True})

    assert first.json() == again.json() == late_ok.json() == {"id": line["id"], "status": "failed"}
    item = WritebackItem.objects.get(pk=line["id"])
    assert (item.status, item.attempts) == (Status.FAILED, 1)
    assert item.last_error == "Patient P-3001 is locked"
    assert feed(token)["items"] == []
    assert len(mail.outbox) == 1  # the clinic is told once


def test_a_line_for_a_pet_not_yet_linked_can_be_retried_once_linked(
    world: World, token, catalogue
) -> None:
    pet = PatientFactory(client=ClientFactory(clinic=world.b.clinic, pims_id=""), pims_id="")
    ship(world.b, rx(world.b, pet, catalogue.carprofen))
    (line,) = feed(token)["items"]
    assert line["patient_pims_id"] == ""
    ack(token, line["id"], {"ok": False, "error": "No such patient"})

    pet.pims_id = "P-3900"
    pet.save()
    pet.client.pims_id = "C-2900"
    pet.client.save()
    retry = writeback.writeback_retry(
        item=WritebackItem.objects.get(pk=line["id"]), actor=world.b.staff
    )

    (again,) = feed(token, after=line["id"])["items"]
    assert again["id"] == retry.pk
    assert (again["client_pims_id"], again["patient_pims_id"]) == ("C-2900", "P-3900")
    assert again["kind"] == "dispense" and again["product_reference"] == "CARP-75"
    assert WritebackItem.objects.get(pk=line["id"]).status == Status.RETRIED


def test_a_line_held_back_by_an_earlier_one_says_which_on_its_page(
    world: World, token, agent_pet, catalogue
) -> None:
    prescription = rx(world.b, agent_pet, catalogue.carprofen)
    ship(world.b, prescription)
    (dispense,) = feed(token)["items"]
    ack(token, dispense["id"], {"ok": False, "error": "Patient P-3001 is locked"})
    prescription_items_end(prescription=prescription, actor=world.b.vet_user, reason="Stopped")
    ended = WritebackItem.objects.get(prescription=prescription, kind="status")
    staff = login(world.b.staff)
    url = reverse("prescriptions:writeback-detail", args=["birch", ended.pk])

    def waits() -> str:
        html = staff.get(url).content.decode()
        found = re.search(r'data-testid="waiting-for">(.*?)</dd>', html, re.S)
        return re.sub(r"<[^>]+>", "", found.group(1)) if found else ""

    assert feed(token, after=dispense["id"])["items"] == []  # held back ...
    assert waits() == (  # ... and its page says by which line
        f"writeback #{dispense['id']} (dispense (shipment), sequence 1, failed): this one is sent "
        "once that one is through: fix or retry it first."
    )
    retry = writeback.writeback_retry(
        item=WritebackItem.objects.get(pk=dispense["id"]), actor=world.b.staff
    )
    assert waits().startswith(f"writeback #{retry.pk} (dispense (shipment), sequence 1, pending)")
    ack(token, retry.pk, {"ok": True})
    assert waits() == ""
    assert "when the agent next pulls the feed" in staff.get(url).content.decode()
    assert [line["id"] for line in feed(token, after=dispense["id"])["items"]] == [ended.pk]


@pytest.mark.parametrize("body", ["not json", '{"error": "no ok"}', '{"ok": "yes"}'])
def test_an_ack_without_a_proper_ok_is_refused(world: World, token, agent_pet, catalogue, body):
    ship(world.b, rx(world.b, agent_pet, catalogue.carprofen))
    (line,) = feed(token)["items"]

    response = ack(token, line["id"], body)

    assert response.status_code == 400
    assert WritebackItem.objects.get(pk=line["id"]).status == Status.PENDING


# --- who is refused --------------------------------------------------------------------------


def test_a_missing_wrong_revoked_or_replaced_token_gets_401(
    world: World, agent_clinic, agent_pet, catalogue
) -> None:
    integration, token = agent_clinic
    ship(world.b, rx(world.b, agent_pet, catalogue.carprofen))
    item_id = WritebackItem.objects.get().pk

    assert HttpClient().get(FEED).status_code == 401
    assert agent(token + "x").get(FEED).status_code == 401
    assert ack(token + "x", item_id, {"ok": True}).status_code == 401

    new_token = integration_issue_agent_token(integration=integration, actor=None)
    assert agent(token).get(FEED).status_code == 401
    assert feed(new_token)["items"][0]["id"] == item_id

    integration_revoke_agent_token(integration=integration, actor=None)
    assert agent(new_token).get(FEED).status_code == 401
    assert ack(new_token, item_id, {"ok": True}).status_code == 401
    assert WritebackItem.objects.get().status == Status.PENDING


def test_another_clinics_item_is_404_and_not_listed(
    world: World, token, agent_pet, catalogue
) -> None:
    ship(world.b, rx(world.b, agent_pet, catalogue.carprofen))
    item_id = WritebackItem.objects.get().pk
    world.a.clinic.writeback_enabled = True
    world.a.clinic.save()
    alder_token = integration_issue_agent_token(integration=world.a.clinic.integration)

    assert feed(alder_token)["items"] == []
    response = ack(alder_token, item_id, {"ok": True})

    assert response.status_code == 404
    assert WritebackItem.objects.get().status == Status.PENDING
    assert [line["id"] for line in feed(token)["items"]] == [item_id]


def test_an_ezyvet_clinic_has_no_feed(
    world: World, site, ezyvet_clinic, ezy_pet, catalogue, django_capture_on_commit_callbacks
) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        ship(world.a, rx(world.a, ezy_pet, catalogue.carprofen))
    token = integration_issue_agent_token(integration=ezyvet_clinic)

    response = agent(token).get(FEED)

    assert response.status_code in (400, 401)
    assert "items" not in response.json()
    assert response.json()["error"]
    item = WritebackItem.objects.filter(kind=WritebackItem.Kind.DISPENSE).get()
    assert ack(token, item.pk, {"ok": False, "error": "x"}).status_code in (401, 404)
    item.refresh_from_db()
    assert item.status == Status.DELIVERED
