"""Every page, as each kind of user sees it in the demo, passes axe-core's WCAG 2.1 A and AA
rules with no serious or critical violation; htmx regions that change are announced."""

from __future__ import annotations

import re
from typing import Any

import pytest
from axe_playwright_python.sync_playwright import Axe
from django.core.management import call_command

from clinics.models import Clinic
from prescriptions.demo.clinics import DEMO_PASSWORD
from prescriptions.models import Order, Prescription, RxRequest, WritebackItem
from records.models import Client, Patient, SyncRun
from tests.browser.conftest import log_in

pytestmark = pytest.mark.django_db(transaction=True)

AXE = Axe()
WCAG = {"runOnly": {"type": "tag", "values": ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]}}


def serious_violations(page: Any) -> list[str]:
    results = AXE.run(page, options=WCAG)
    return [
        f"{v['id']} ({v['impact']}): {v['help']} — "
        + "; ".join(node["target"][0] for node in v["nodes"][:3])
        for v in results.response["violations"]
        if v["impact"] in {"serious", "critical"}
    ]


def clinic_pages(slug: str) -> list[str]:
    clinic = Clinic.objects.get(slug=slug)
    client = Client.objects.filter(clinic=clinic, merged_into__isnull=True).first()
    pet = Patient.objects.filter(client__clinic=clinic).first()
    urls = [
        f"/c/{slug}/",
        f"/c/{slug}/clients/",
        f"/c/{slug}/clients/?q=a",
        f"/c/{slug}/updates/",
        f"/c/{slug}/prescriptions/",
        f"/c/{slug}/rx-requests/",
        f"/c/{slug}/orders/",
        f"/c/{slug}/writeback/",
        f"/c/{slug}/sync/",
        f"/c/{slug}/integration/",
    ]
    if client is not None:
        urls.append(f"/c/{slug}/clients/{client.pk}/")
    if pet is not None:
        urls += [f"/c/{slug}/pets/{pet.pk}/", f"/c/{slug}/pets/{pet.pk}/rename/"]
        urls.append(f"/c/{slug}/prescriptions/new/?patient={pet.pk}")
        urls.append(f"/c/{slug}/orders/new/?patient={pet.pk}")
    for model in (Prescription, RxRequest, Order, WritebackItem, SyncRun):
        found = model.objects.filter(clinic=clinic).order_by("-pk").first()
        if found is not None:
            urls.append(_detail(model, slug, found.pk))
    return urls


def _detail(model: Any, slug: str, pk: int) -> str:
    return {
        Prescription: f"/c/{slug}/prescriptions/{pk}/",
        RxRequest: f"/c/{slug}/rx-requests/{pk}/",
        Order: f"/c/{slug}/orders/{pk}/",
        WritebackItem: f"/c/{slug}/writeback/{pk}/",
        SyncRun: f"/c/{slug}/sync/runs/{pk}/",
    }[model]


def test_every_page_has_no_serious_wcag_violation(page: Any, settings: Any) -> None:
    settings.PIMS_EMULATOR_URL = "http://127.0.0.1:9"  # never a running demo's emulator
    call_command("seed_demo", clients=25, verbosity=0)
    found: dict[str, list[str]] = {}

    page.goto("/accounts/login/")
    found["/accounts/login/"] = serious_violations(page)
    for username, urls in [
        ("riverside-vet", clinic_pages("riverside")),
        ("maple-grove-admin", clinic_pages("maple-grove")),
    ]:
        log_in(page, username, DEMO_PASSWORD)
        page.wait_for_url(re.compile(r".*/(c/[\w-]+/)?$"))
        for url in urls:
            page.goto(url)
            found[url] = serious_violations(page)
        page.context.clear_cookies()

    log_in(page, "care", DEMO_PASSWORD)
    page.wait_for_url("**/care/**")
    client = Client.objects.filter(merged_into__isnull=True).first()
    assert client is not None
    for url in ["/care/", "/care/?q=smith", f"/care/clients/{client.pk}/", "/care/log/"]:
        page.goto(url)
        found[url] = serious_violations(page)

    failing = {url: v for url, v in found.items() if v}
    assert failing == {}, "\n".join(f"{url}: {v}" for url, v in failing.items())
    assert len(found) > 30


def test_htmx_regions_that_change_are_announced(page: Any, settings: Any) -> None:
    settings.PIMS_EMULATOR_URL = "http://127.0.0.1:9"  # never a running demo's emulator
    call_command("seed_demo", clients=25, verbosity=0)
    log_in(page, "riverside-staff", DEMO_PASSWORD)
    page.wait_for_url("**/c/riverside/")
    page.goto("/c/riverside/clients/")
    # Search as you type: a polite live region that stays in the page says what was found.
    status = page.locator("#client-results-status[aria-live=polite]")
    assert status.count() == 1
    page.fill("#q", "zzzz-nobody")
    page.wait_for_function(
        "() => document.querySelector('#client-results-status').innerText.includes('No clients')"
    )
    assert "zzzz-nobody" in status.inner_text()
    run = SyncRun.objects.filter(clinic__slug="riverside").first()
    assert run is not None
    page.goto(f"/c/riverside/sync/runs/{run.pk}/")
    assert page.locator("#run-announce[aria-live=polite]").count() == 1
    # Search as you type broke no Content-Security-Policy rule on the way.
    assert [e for e in page.console_errors if "Content Security Policy" in e] == []
