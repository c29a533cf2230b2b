"""Dates VetSync sends and offers are the clinic's: a shipment recorded in the clinic's late
evening keeps its date in ezyVet, west of UTC and east of it; a date-only value is noon at the
clinic; a ship date before the approval is refused; clinic pages offer and show local dates."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from zoneinfo import ZoneInfo

import pytest
from django.urls import reverse

from prescriptions.services import PrescriptionError
from prescriptions.writeback import outbox
from tests.conftest import World, login
from tests.prescriptions.conftest import rx
from tests.prescriptions.writeback import clock_at, deliver_all, ezyvet_items, ship
from vetsync.pims.emulator import EzyVetEmulator

LOS_ANGELES = "America/Los_Angeles"
AUCKLAND = "Pacific/Auckland"

# 18:26 on 5 Dec in Los Angeles is 02:26 on 6 Dec in UTC (the observed slip).
LA_EVENING = dt.datetime(2026, 12, 6, 2, 26, tzinfo=dt.UTC)
# 23:30 on 5 Dec in Auckland (NZDT, UTC+13) is 10:30 on 5 Dec in UTC.
NZ_LATE = dt.datetime(2026, 12, 5, 10, 30, tzinfo=dt.UTC)
# 08:00 on 6 Dec in Auckland is still 5 Dec in UTC: east of UTC, the morning is the slip.
NZ_MORNING = dt.datetime(2026, 12, 5, 19, 0, tzinfo=dt.UTC)


@pytest.fixture
def site(request) -> Iterator[EzyVetEmulator]:
    """The emulated ezyVet site, in the zone the test names (ezyVet shows epochs in it)."""
    zone = getattr(request, "param", "America/Chicago")
    emulator = EzyVetEmulator(
        clients=12, seed=5, rate_per_minute=0, endpoint_rate_per_minute=0, timezone=zone
    )
    emulator.start()
    yield emulator
    emulator.stop()


def _in_zone(clinic, zone: str) -> None:
    clinic.timezone = zone
    clinic.save(update_fields=["timezone"])


def _ezyvet_date(epoch: str, zone: str) -> dt.date:
    return dt.datetime.fromtimestamp(int(epoch), ZoneInfo(zone)).date()


@pytest.mark.parametrize(
    ("site", "moment", "local_day"),
    [
        (LOS_ANGELES, LA_EVENING, dt.date(2026, 12, 5)),
        (AUCKLAND, NZ_LATE, dt.date(2026, 12, 5)),
        (AUCKLAND, NZ_MORNING, dt.date(2026, 12, 6)),
    ],
    indirect=["site"],
    ids=["west-of-utc-evening", "east-of-utc-evening", "east-of-utc-morning"],
)
def test_a_late_evening_shipment_keeps_its_date_in_ezyvet(
    world: World, catalogue, site, ezy_pet, django_capture_on_commit_callbacks, moment, local_day
) -> None:
    zone = site.zone.key
    _in_zone(world.a.clinic, zone)
    with clock_at(moment):
        prescription = rx(world.a, ezy_pet, catalogue.carprofen)
        order = ship(world.a, prescription)  # the default ship date: today, at the clinic
    deliver_all(django_capture_on_commit_callbacks)

    assert order.shipped_on == local_day
    item = ezyvet_items(site, prescription)["CARP-75"]
    assert item["status"] == "CURRENT"
    assert _ezyvet_date(item["date_of_lastdispense"], zone) == local_day
    record = site.records("externalprescription")[0]
    assert _ezyvet_date(record["date_of_prescription"], zone) == local_day


@pytest.mark.parametrize("site", [LOS_ANGELES, AUCKLAND], indirect=True)
def test_a_shipment_dated_yesterday_keeps_that_date_in_ezyvet(
    world: World, catalogue, site, ezy_pet, django_capture_on_commit_callbacks
) -> None:
    zone = site.zone.key
    _in_zone(world.a.clinic, zone)
    with clock_at(NZ_LATE - dt.timedelta(days=2)):
        prescription = rx(world.a, ezy_pet, catalogue.carprofen)
    with clock_at(LA_EVENING if zone == LOS_ANGELES else NZ_LATE):
        ship(world.a, prescription, shipped_on=dt.date(2026, 12, 4))
    deliver_all(django_capture_on_commit_callbacks)

    item = ezyvet_items(site, prescription)["CARP-75"]
    assert _ezyvet_date(item["date_of_lastdispense"], zone) == dt.date(2026, 12, 4)


def test_a_date_only_value_is_sent_as_noon_at_the_clinic(world: World) -> None:
    clinic = world.a.clinic
    _in_zone(clinic, AUCKLAND)

    sent = outbox._epoch(dt.date(2026, 12, 5), clinic)

    local = dt.datetime.fromtimestamp(sent, ZoneInfo(AUCKLAND))
    assert (local.date(), local.hour) == (dt.date(2026, 12, 5), 12)


def test_the_ship_date_cannot_be_tomorrow_at_the_clinic(world: World, catalogue, ezy_pet) -> None:
    _in_zone(world.a.clinic, LOS_ANGELES)
    with clock_at(LA_EVENING):
        prescription = rx(world.a, ezy_pet, catalogue.carprofen)
        with pytest.raises(PrescriptionError, match="cannot be in the future"):
            ship(world.a, prescription, shipped_on=dt.date(2026, 12, 6))


def test_a_ship_date_before_the_approval_is_refused(world: World, catalogue, ezy_pet) -> None:
    _in_zone(world.a.clinic, LOS_ANGELES)
    with clock_at(LA_EVENING):
        prescription = rx(world.a, ezy_pet, catalogue.carprofen)
        with pytest.raises(PrescriptionError, match="approved on 05 Dec 2026"):
            ship(world.a, prescription, shipped_on=dt.date(2026, 12, 4))
    prescription.items.get().refresh_from_db()
    assert prescription.items.get().dispensed_quantity == 0


def test_the_ship_form_offers_the_clinics_today(world: World, catalogue, ezy_pet) -> None:
    from prescriptions.services import LineSpec, order_place

    _in_zone(world.a.clinic, LOS_ANGELES)
    with clock_at(LA_EVENING):
        prescription = rx(world.a, ezy_pet, catalogue.carprofen)
        item = prescription.items.get()
        order = order_place(
            clinic=world.a.clinic,
            patient=ezy_pet,
            lines=[LineSpec(product=item.product, quantity=30, prescription_item=item)],
            actor=world.a.staff,
        )
        page = login(world.a.staff).get(order.get_absolute_url()).content.decode()

    assert 'value="2026-12-05"' in page
    assert 'value="2026-12-06"' not in page


def test_clinic_pages_show_times_in_the_clinics_zone(world: World, catalogue, ezy_pet) -> None:
    _in_zone(world.a.clinic, AUCKLAND)
    with clock_at(NZ_LATE):
        prescription = rx(world.a, ezy_pet, catalogue.carprofen)
    url = reverse(
        "prescriptions:prescription-detail",
        kwargs={"clinic_slug": world.a.clinic.slug, "prescription_id": prescription.pk},
    )

    page = login(world.a.staff).get(url).content.decode()

    assert "23:30" in page  # 10:30 UTC is 23:30 in Auckland
    assert "10:30" not in page
    zone = dt.datetime.now(ZoneInfo(AUCKLAND)).strftime("%Z")  # NZDT or NZST
    assert (
        f'data-testid="clinic-zone" title="Times on the clinic\'s pages are in {AUCKLAND}">{zone}<'
        in page
    )


def test_pet_owner_care_shows_the_clients_clinic_zone_with_its_abbreviation(
    world: World, ezy_pet
) -> None:
    _in_zone(world.a.clinic, LOS_ANGELES)
    _in_zone(world.b.clinic, AUCKLAND)
    care = login(world.care)

    page = care.get(reverse("care:client", args=[ezy_pet.client.pk])).content.decode()
    found = care.get(reverse("care:search"), {"q": ezy_pet.client.last_name}).content.decode()

    abbreviation = dt.datetime.now(ZoneInfo(LOS_ANGELES)).strftime("%Z")  # PST or PDT
    assert f"{LOS_ANGELES} ({abbreviation})" in page
    assert abbreviation in found


def test_the_admin_shows_utc_and_says_so(world: World) -> None:
    _in_zone(world.a.clinic, AUCKLAND)
    integration = world.a.clinic.integration
    integration.last_successful_sync_at = NZ_LATE
    integration.save(update_fields=["last_successful_sync_at"])
    admin = login(world.onboarding)
    login(world.a.staff).get(world.a.clinic.get_absolute_url())  # a clinic page in between

    page = admin.get(reverse("admin:clinics_clinic_changelist")).content.decode()

    assert "all times in UTC" in page
    assert "5 Dec 2026, 10:30 UTC" in page
