"""The demo pharmacy's stories: prescriptions in every state, Rx requests, and orders placed,
held, shipped and cancelled; for the agent clinic, the agent's answers on the writeback feed.
They go through ``prescriptions.services``, so their audit rows and WriteBack outbox rows
exist as they would in use."""

from __future__ import annotations

import datetime as dt
import random
import zoneinfo
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from django.contrib.auth import get_user_model
from django.db.models import Q
from django.utils import timezone

from clinics.models import AuditEvent, Clinic, Connector, Role, Vet
from prescriptions import writeback
from prescriptions.demo.clinics import DemoClinic
from prescriptions.models import Channel, Order, Prescription, Product, RxRequest, WritebackItem
from prescriptions.services import (
    ItemSpec,
    LineSpec,
    order_cancel,
    order_hold,
    order_place,
    order_ship,
    prescription_create,
    prescription_items_end,
    prescription_mark_paid,
    rx_request_approve,
    rx_request_decline,
    rx_request_submit,
)
from records.models import Patient


@dataclass
class DemoStaff:
    """Who does what in a clinic's scenario: the vet approves, the staff member orders."""

    clinic: Clinic
    vet: Vet
    vet_user: Any
    staff: Any


@dataclass(frozen=True)
class _Scene:
    """What a clinic's stories draw on: its team, its pets, the catalogue and the day."""

    team: DemoStaff
    dogs: list[Patient]
    cats: list[Patient]
    products: dict[str, Product]
    today: date
    rng: random.Random

    def dog(self, n: int) -> Patient:
        return self.dogs[n % len(self.dogs)]  # a small demo clinic gives one dog several stories

    def cat(self, n: int) -> Patient:
        return self.cats[n % len(self.cats)]

    def approved(
        self, pet: Patient, *items: tuple[str, int, int, str], written: int = 0, **kw: Any
    ) -> Prescription:
        """Approved ``written`` days ago: before anything of it is ordered or shipped."""
        rx = _prescribe(self.team, pet, items, products=self.products, approve=True, **kw)
        if written:
            _backdate(rx, timedelta(days=written))
        return rx


def pharmacy_seed(
    clinic: Clinic,
    spec: DemoClinic,
    products: dict[str, Product],
    *,
    rng: random.Random,
    say: Callable[[str], None],
) -> None:
    """Prescriptions in every state, Rx requests, orders placed, held, shipped and
    cancelled; for the agent clinic, the agent's answers on the writeback feed."""
    if Prescription.objects.for_clinic(clinic).exists():
        return
    team = _team(clinic, spec)
    live = Patient.objects.filter(
        clinic=clinic, is_deceased=False, is_active=True, client__merged_into__isnull=True
    ).order_by("pk")
    # Written back: pets the PIMS knows (it files a prescription under its own ids).
    linked = live.exclude(pims_id="").exclude(client__pims_id="")
    dogs = list(linked.filter(species="Canine")[:12]) or list(live.filter(species="Canine")[:12])
    cats = list(linked.filter(species="Feline")[:4]) or list(live.filter(species="Feline")[:4])
    if not dogs or not cats:
        say(f"{clinic.name}: not enough pets for the prescriptions demo")
        return
    scene = _Scene(
        team=team,
        dogs=dogs,
        cats=cats,
        products=products,
        today=clinic.localdate(),
        rng=rng,
    )
    _ongoing_treatments(scene)
    _ended_items(scene)
    _other_routes(scene)
    _unfilled_drafts_and_otc(scene)
    if spec.connector == Connector.EZYVET:
        _unlinked_prescription(team, live, products)
    requests = _rx_requests(team, scene.dog, scene.cat, products)
    if writeback.writeback_target(clinic) == WritebackItem.Target.AGENT:
        _agent_answers(team)
    queued = WritebackItem.objects.filter(clinic=clinic).count()
    say(
        f"{clinic.name}: {Prescription.objects.for_clinic(clinic).count()} prescriptions, "
        f"{requests} Rx requests, {Order.objects.for_clinic(clinic).count()} orders, "
        f"{queued} writebacks"
    )


def _team(clinic: Clinic, spec: DemoClinic) -> DemoStaff:
    users = get_user_model().objects
    vet_user = users.get(username=f"{spec.slug}-{Role.VET.value}")
    return DemoStaff(
        clinic=clinic,
        vet=Vet.objects.get(clinic=clinic, user=vet_user),
        vet_user=vet_user,
        staff=users.get(username=f"{spec.slug}-{Role.STAFF.value}"),
    )


def _ongoing_treatments(scene: _Scene) -> None:
    """Arthritis, allergies, kidney disease, flea and tick: shipped, held, not ordered yet."""
    team, today, rng = scene.team, scene.today, scene.rng
    approved, dog = scene.approved, scene.dog
    # Arthritis: carprofen with Dasuquin in the treatment plan; shipped twice, one to ship.
    arthritis = approved(
        dog(0),
        ("CARP-75", 60, 5, "Give 1 caplet by mouth every 12 hours with food."),
        ("DASUQ-MSM-L", 30, 5, "Give 1 chewable tablet by mouth once daily."),
        written=45,
    )
    _ship(team, _order(team, arthritis), today - timedelta(days=40), rng)
    _ship(team, _order(team, arthritis), today - timedelta(days=10), rng)
    _order(team, arthritis)
    # Allergies: Apoquel shipped once; the refill is on hold.
    allergy = approved(
        dog(1),
        ("APOQ-16", 30, 3, "Give 1 tablet by mouth twice daily for 14 days, then once daily."),
        written=25,
    )
    _ship(team, _order(team, allergy), today - timedelta(days=20), rng)
    order_hold(
        order=_order(team, allergy),
        actor=team.staff,
        reason="Card declined; waiting for the owner to update the payment details.",
    )
    # Kidney disease: a prescription diet, shipped this week.
    kidney = approved(
        dog(2),
        (
            "HILLS-KD-K9",
            1,
            6,
            "Feed as the sole diet; change over from the old food in 7 days.",
        ),
        written=8,
    )
    _ship(team, _order(team, kidney), today - timedelta(days=5), rng)
    # Flea and tick: approved, nothing ordered yet (Pending).
    approved(dog(3), ("BRAV-L", 1, 3, "Give 1 chew by mouth with food every 12 weeks."), written=2)


def _ended_items(scene: _Scene) -> None:
    """Items ended by the vet before anything was dispensed, and at the owner's request."""
    team, today, rng = scene.team, scene.today, scene.rng
    approved, dog = scene.approved, scene.dog
    # Declined by the vet before anything was dispensed.
    pain = approved(
        dog(4),
        ("GABA-100", 90, 2, "Give 1 capsule by mouth every 8 hours as needed for pain."),
        written=6,
    )
    prescription_items_end(
        prescription=pain, actor=team.vet_user, reason="Changed to a long-acting injection."
    )
    # Dispensed, then cancelled at the owner's request.
    thyroid = approved(
        dog(5), ("THYRO-0.5", 60, 5, "Give 1 tablet by mouth every 12 hours."), written=35
    )
    _ship(team, _order(team, thyroid), today - timedelta(days=30), rng)
    prescription_items_end(
        prescription=thyroid,
        actor=team.vet_user,
        reason="The owner moved to a pharmacy nearer their new home.",
        by_client=True,
    )


def _other_routes(scene: _Scene) -> None:
    """A compounded medicine, a store order and an eConnect order, all shipped."""
    team, today, rng = scene.team, scene.today, scene.rng
    approved, dog, cat = scene.approved, scene.dog, scene.cat
    # Compounded by Wedgewood: shipped, never written back.
    gel = approved(
        cat(0),
        (
            "WW-METHIM-TD",
            30,
            2,
            "Apply 0.1 mL to the inner ear flap every 12 hours; wear gloves.",
        ),
        written=15,
    )
    _ship(team, _order(team, gel), today - timedelta(days=12), rng)
    # Ordered through the clinic's online store.
    urinary = approved(
        cat(1), ("PPVD-UR-FEL", 1, 5, "Feed as the sole diet."), channel=Channel.STORE, written=5
    )
    _ship(team, _order(team, urinary), today - timedelta(days=3), rng)
    # An eConnect order: filled, never written back.
    heart = approved(
        dog(6),
        ("VETM-5", 60, 5, "Give 1 tablet by mouth every 12 hours, an hour before food."),
        channel=Channel.ECONNECT,
        written=9,
    )
    _ship(team, _order(team, heart), today - timedelta(days=7), rng)


def _unfilled_drafts_and_otc(scene: _Scene) -> None:
    """An order cancelled before it shipped, a draft waiting for a vet, and an OTC sale."""
    team, today, rng, p = scene.team, scene.today, scene.rng, scene.products
    approved, dog = scene.approved, scene.dog
    # Cancelled before it shipped.
    nausea = approved(
        dog(7), ("CEREN-24", 4, 0, "Give 1 tablet by mouth once daily for up to 4 days.")
    )
    order_cancel(
        order=_order(team, nausea),
        actor=team.staff,
        reason="The owner collected it at the clinic instead.",
    )
    # Written by staff, waiting for a vet's approval.
    _prescribe(
        team,
        dog(8),
        [("PRED-5", 20, 0, "Give 2 tablets daily for 5 days, then 1 daily for 5 days.")],
        products=p,
        approve=False,
    )
    # An OTC product sold on its own: no prescription, never written back.
    _ship(
        team,
        order_place(
            clinic=team.clinic,
            patient=dog(9),
            lines=[LineSpec(product=p["WELACTIN-8"], quantity=1)],
            actor=team.staff,
        ),
        today - timedelta(days=2),
        rng,
    )


def _prescribe(
    team: DemoStaff,
    pet: Patient,
    items: Any,
    *,
    products: dict[str, Product],
    approve: bool,
    channel: str = Channel.PORTAL,
) -> Prescription:
    return prescription_create(
        clinic=team.clinic,
        patient=pet,
        vet=team.vet,
        items=[
            ItemSpec(product=products[sku], quantity=qty, refills=refills, instructions=text)
            for sku, qty, refills, text in items
        ],
        actor=team.vet_user if approve else team.staff,
        approve=approve,
        channel=channel,
    )


def _order(team: DemoStaff, prescription: Prescription) -> Order:
    """One fill of every item of the prescription, through the prescription's channel."""
    return order_place(
        clinic=team.clinic,
        patient=prescription.patient,
        lines=[
            LineSpec(product=item.product, quantity=item.quantity, prescription_item=item)
            for item in prescription.items.select_related("product")
        ],
        actor=team.staff,
        channel=prescription.channel,
    )


def _ship(team: DemoStaff, order: Order, on: date, rng: random.Random) -> Order:
    # The service stamps "now" on the order; a demo shipment of last month was placed the
    # day before it shipped.
    placed = dt.datetime.combine(on - timedelta(days=1), dt.time(10, 0), tzinfo=_zone(team))
    Order.objects.filter(pk=order.pk).update(placed_at=placed)
    AuditEvent.objects.filter(object_type="prescriptions.order", object_id=str(order.pk)).update(
        created_at=placed
    )
    carrier = rng.choice(["UPS", "USPS", "FedEx"])
    tracking = {
        "UPS": f"1Z{rng.randint(10**15, 10**16 - 1)}",
        "USPS": f"9400{rng.randint(10**17, 10**18 - 1)}",
        "FedEx": f"{rng.randint(10**11, 10**12 - 1)}",
    }[carrier]
    return order_ship(
        order=order, actor=team.staff, shipped_on=on, carrier=carrier, tracking_number=tracking
    )


def _zone(team: DemoStaff) -> dt.tzinfo:
    return zoneinfo.ZoneInfo(team.clinic.timezone)


def _backdate(rx: Prescription, ago: timedelta) -> None:
    """Move a just-approved prescription (its items, audit rows and outbox rows) back in
    time, so its story reads in order: written, then ordered, then shipped."""
    moment = timezone.now() - ago
    Prescription.objects.filter(pk=rx.pk).update(created_at=moment, approved_at=moment)
    rx.items.update(status_date=moment)
    item_ids = [str(pk) for pk in rx.items.values_list("pk", flat=True)]
    AuditEvent.objects.filter(
        Q(object_type="prescriptions.prescription", object_id=str(rx.pk))
        | Q(object_type="prescriptions.prescriptionitem", object_id__in=item_ids)
    ).update(created_at=moment)
    WritebackItem.objects.filter(prescription=rx).update(created_at=moment)
    rx.refresh_from_db()


def _unlinked_prescription(team: DemoStaff, live: Any, products: dict[str, Product]) -> None:
    """A store customer's pet ezyVet does not know yet: its writeback fails with the reason
    and waits on the monitor for a retry once the records are linked."""
    pet = live.filter(pims_id="", client__pims_id="").exclude(client__customer_ref="").first()
    if pet is None:
        return
    _prescribe(
        team,
        pet,
        [("DENAM-225", 30, 2, "Give 1 tablet by mouth daily on an empty stomach.")],
        products=products,
        approve=True,
    )


def _rx_requests(
    team: DemoStaff,
    dog: Callable[[int], Patient],
    cat: Callable[[int], Patient],
    p: dict[str, Product],
) -> int:
    """Owners' requests: one waiting, one near expiry, one approved and waiting for payment,
    one approved and paid, one declined; how many."""
    clinic = team.clinic
    pet = dog(10)
    weighs = f"; {pet.name} weighs {pet.weight:g} {pet.weight_unit} now" if pet.weight else ""
    rx_request_submit(
        clinic=clinic,
        patient=pet,
        product=p["SIMP-TRIO-M"],
        quantity=2,
        owner_note=f"Same as last year please{weighs}.",
    )
    # Near expiry: waiting 41 of its 45 days. The service stamps "now"; a demo needs an
    # old one, so only its dates are moved back.
    old = rx_request_submit(
        clinic=clinic,
        patient=cat(2),
        product=p["HILLS-CD-FEL"],
        quantity=1,
        owner_note="Running low on his urinary food.",
    )
    asked = timezone.now() - timedelta(days=41)
    RxRequest.objects.filter(pk=old.pk).update(
        created_at=asked, expires_at=asked + (old.expires_at - old.created_at)
    )
    # Its history too, or the page says "Requested 26 Oct" above "Requested by the owner 6 Dec".
    AuditEvent.objects.filter(
        object_type=RxRequest._meta.label_lower, object_id=str(old.pk)
    ).update(created_at=asked)
    # Approved, waiting for the owner to pay (then it goes to the PIMS).
    unpaid = rx_request_submit(clinic=clinic, patient=dog(11), product=p["APOQ-5.4"], quantity=30)
    rx_request_approve(
        rx_request=unpaid,
        actor=team.vet_user,
        refills=2,
        instructions="Give 1 tablet by mouth once daily.",
        owner_message="Approved for three months; we will recheck her skin in the spring.",
    )
    # Approved and paid: sent.
    paid = rx_request_submit(clinic=clinic, patient=dog(1), product=p["RC-GI-LF-K9"], quantity=1)
    prescription = rx_request_approve(
        rx_request=paid,
        actor=team.vet_user,
        refills=3,
        instructions="Feed as the sole diet while the gut settles.",
    )
    prescription_mark_paid(prescription=prescription, actor=team.staff)
    declined = rx_request_submit(
        clinic=clinic,
        patient=cat(3),
        product=p["GABA-100"],
        quantity=10,
        owner_note="For her vet visits, she gets very stressed.",
    )
    rx_request_decline(
        rx_request=declined,
        actor=team.vet_user,
        reason="Not seen in over a year.",
        owner_message="Please book a check-up; we can prescribe it at the visit.",
    )
    return 5


def _agent_answers(team: DemoStaff) -> None:
    """The clinic's agent has pulled the feed: it wrote most lines, Cornerstone refused
    one, another failed and staff retried it, and the newest waits for the next pull."""
    clinic = team.clinic
    rows = list(
        WritebackItem.objects.filter(
            clinic=clinic,
            target=WritebackItem.Target.AGENT,
            status=WritebackItem.Status.PENDING,
        ).order_by("pk")
    )
    if len(rows) < 4:
        return
    *written, refused, busy, _waiting = rows
    for row in written:
        writeback.agent_ack(clinic=clinic, item_id=row.pk, ok=True)
    patient = refused.payload.get("patient_pims_id") or "(no id)"
    writeback.agent_ack(
        clinic=clinic,
        item_id=refused.pk,
        ok=False,
        error=f"Cornerstone refused the line item: patient {patient} is marked inactive.",
    )
    writeback.agent_ack(
        clinic=clinic,
        item_id=busy.pk,
        ok=False,
        error="Cornerstone was locked by another workstation; the line item was not posted.",
    )
    writeback.writeback_retry(item=busy, actor=team.staff)
