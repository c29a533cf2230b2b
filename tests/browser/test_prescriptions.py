"""A vet works the prescription pages in a browser: approves a draft staff wrote, declines an
owner's Rx request with a reason. And every page of the section renders without a CSP or
script error."""

from __future__ import annotations

from typing import Any

import pytest
from django.core import mail
from playwright.sync_api import expect

from prescriptions.models import Prescription, RxRequest
from prescriptions.services import LineSpec, order_place, rx_request_submit
from records.models import Patient
from tests.browser.conftest import log_in, shot
from tests.conftest import World
from tests.factories import ClientFactory, PatientFactory
from tests.prescriptions.conftest import Catalogue, rx
from tests.prescriptions.conftest import catalogue as catalogue  # the fixture

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def pet(world: World) -> Patient:
    owner = ClientFactory(
        clinic=world.a.clinic, first_name="Dana", last_name="Whitfield", email="dana@example.org"
    )
    return PatientFactory(client=owner, name="Biscuit")


def test_a_vet_approves_a_draft_staff_wrote(
    world: World, page: Any, pet: Patient, catalogue: Catalogue
) -> None:
    draft = rx(world.a, pet, catalogue.carprofen, catalogue.apoquel, approve=False)

    log_in(page, world.a.vet_user.username)
    page.goto("/c/alder/prescriptions/?state=draft")
    page.get_by_role("link", name=draft.number).click()
    expect(page.get_by_test_id("rx-state")).to_have_text("Draft (awaiting a vet)")
    shot(page, "prescription-draft")

    page.get_by_role("button", name=f"Approve {draft.number}").click()
    expect(page.get_by_role("status")).to_contain_text(f"{draft.number} is approved.")
    expect(page.get_by_test_id("rx-state")).to_have_text("Approved")
    expect(page.get_by_test_id("draft-panel")).to_have_count(0)
    items = page.get_by_test_id("rx-items")
    expect(items.get_by_text("Pending")).to_have_count(2)
    expect(page.get_by_test_id("history")).to_contain_text("Approved by a vet")
    shot(page, "prescription-approved")
    draft.refresh_from_db()
    assert draft.state == Prescription.State.APPROVED
    assert page.console_errors == []


def test_a_vet_declines_an_rx_request_with_a_reason(
    world: World, page: Any, pet: Patient, catalogue: Catalogue
) -> None:
    rx_request = rx_request_submit(
        clinic=world.a.clinic,
        patient=pet,
        product=catalogue.apoquel,
        quantity=30,
        owner_note="He scratches all night",
    )

    log_in(page, world.a.vet_user.username)
    page.goto("/c/alder/rx-requests/")
    page.get_by_test_id("request-row").get_by_role("link").first.click()
    expect(page.get_by_test_id("owner-note")).to_have_text("He scratches all night")
    shot(page, "rx-request")

    page.get_by_text("Decline…").click()
    form = page.get_by_test_id("decline-form")
    form.get_by_label("Reason for declining").fill("Needs an exam first")
    form.get_by_label("Note to the owner").fill("Please book a check-up for Biscuit.")
    form.get_by_role("button", name="Decline the request").click()

    expect(page.get_by_role("status")).to_contain_text("Declined. The owner was emailed at")
    expect(page.get_by_test_id("request-status")).to_have_text("Declined")
    expect(page.get_by_test_id("decline-reason")).to_have_text("Needs an exam first")
    expect(page.get_by_test_id("owner-message")).to_have_text("Please book a check-up for Biscuit.")
    expect(page.get_by_test_id("decide")).to_have_count(0)
    shot(page, "rx-request-declined")
    rx_request.refresh_from_db()
    assert rx_request.status == RxRequest.Status.DECLINED
    assert [m.to for m in mail.outbox] == [["dana@example.org"]]
    assert page.console_errors == []


def test_every_page_of_the_section_renders_cleanly(
    world: World, page: Any, pet: Patient, catalogue: Catalogue
) -> None:
    approved = rx(world.a, pet, catalogue.carprofen)
    draft = rx(world.a, pet, catalogue.apoquel, approve=False)
    order = order_place(
        clinic=world.a.clinic,
        patient=pet,
        lines=[
            LineSpec(catalogue.carprofen, 30, approved.items.get()),
            LineSpec(catalogue.dasuquin, 10),
        ],
        actor=world.a.staff,
    )
    rx_request = rx_request_submit(
        clinic=world.a.clinic, patient=pet, product=catalogue.apoquel, quantity=30
    )

    log_in(page, world.a.staff.username)
    pages = {
        "dashboard": ("/c/alder/", "Rx request waiting"),
        "prescription-list": ("/c/alder/prescriptions/", approved.number),
        "prescription-pick": ("/c/alder/prescriptions/new/?q=biscuit", "Prescribe for Biscuit"),
        "prescription-new": (f"/c/alder/prescriptions/new/?patient={pet.pk}", "Save draft"),
        "prescription-detail": (approved.get_absolute_url(), "Manage"),
        "prescription-draft-staff": (draft.get_absolute_url(), "Only a vet of the clinic"),
        "rx-request-list": ("/c/alder/rx-requests/", "1 waiting for a vet"),
        "rx-request-staff": (f"/c/alder/rx-requests/{rx_request.pk}/", "Only a vet"),
        "order-list": ("/c/alder/orders/", order.number),
        "order-new": (f"/c/alder/orders/new/?patient={pet.pk}", "Place order"),
        "order-detail": (order.get_absolute_url(), "Mark shipped"),
        "pet-page": (f"/c/alder/pets/{pet.pk}/", "Prescriptions and orders"),
    }
    for name, (address, expected) in pages.items():
        page.goto(address)
        expect(page.locator("main")).to_contain_text(expected)
        shot(page, name)
    # The end-items form offers each item only the ends the rules allow (Pending: declined).
    page.goto(approved.get_absolute_url())
    page.get_by_text("End items…").click()
    page.get_by_text("Start autoship…").click()
    item = approved.items.get()
    options = page.locator(f"#end-{item.pk} option").all_inner_texts()
    assert options == ["Keep open", "Declined by the vet", "Declined by the owner"]
    shot(page, "prescription-manage-open")
    # Searching the list as one types swaps the results in place (htmx).
    page.goto("/c/alder/orders/")
    page.fill("#q", "zzz")
    expect(page.get_by_test_id("no-results")).to_be_visible()
    assert page.console_errors == []
