"""The Fellegi-Sunter matcher: its comparison levels, EM, term frequencies, and what staff see."""

from __future__ import annotations

import csv
import io
import random
from collections import Counter

import pytest
from django.urls import reverse
from hypothesis import given
from hypothesis import strategies as st

from records.linkage import compare as c
from records.linkage.compare import FIELDS, compare
from records.linkage.model import PRIOR_M, PRIOR_U, em, prior_fit, probability, weight
from records.linkage.people import normalize_phone
from records.matching import (
    CustomerPool,
    Person,
    Verdict,
    _hopeful_patterns,
    candidate_pairs,
    field_weights,
    fit_model,
    plan_matches,
    thresholds,
    weight_table,
)
from records.models import ClientMerge, ManualUpdate, Outcome
from records.services import possible_match_reject
from records.suggestions import suggestions_rescore
from tests.conftest import World, login
from tests.factories import ClientFactory, PatientFactory
from tests.records.batches import batch, ingest, owner
from tests.records.pages import dana_in_store


def person(key: str = "x", **fields: str) -> Person:
    values = {
        "first_name": "Dana",
        "last_name": "Whitfield",
        "email": "dana@example.org",
        "phone": "503 555 0142",
        "line1": "12 Alder Street",
        "line2": "",
        "city": "Portland",
        "postcode": "97205",
        **fields,
    }
    pets = values.pop("pets", "")
    return Person.build(key=key, pet_names=[p for p in pets.split(";") if p], **values)


def levels(a: Person, b: Person) -> dict[str, str]:
    """Each field's level, by its words."""
    return {
        FIELDS[i].name: FIELDS[i].levels[level] for i, level in enumerate(compare(a, b)) if level
    }


# --- every comparison level ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("mine", "theirs", "expected"),
    [
        ("Dana", "Dana", "same"),
        ("Dana", "", None),
        ("Dana", "D", "initial or short form"),
        ("Samuel", "Sam", "initial or short form"),
        ("Jon", "John", "sounds alike"),
        ("Lachlan", "Lachlam", "typo"),
        ("Mark", "Mary", "two different names"),
        ("Dana", "Zbigniew", "differs"),
    ],
)
def test_first_name_levels(mine: str, theirs: str, expected: str | None) -> None:
    found = levels(person(first_name=mine), person(first_name=theirs))
    assert found.get("first name") == expected


@pytest.mark.parametrize(
    ("mine", "theirs", "expected"),
    [
        ("Whitfield", "Whitfield", "same"),
        ("Whitfield", "", None),
        ("Whitfield", "Whitfeld", "close"),
        ("Smith", "Smyth", "similar"),
        ("Knight", "Nite", "sounds alike"),
        ("Whitfield", "Okafor", "differs"),
    ],
)
def test_surname_levels(mine: str, theirs: str, expected: str | None) -> None:
    found = levels(person(last_name=mine), person(last_name=theirs))
    assert found.get("surname") == expected


def test_first_and_last_names_swapped_is_its_own_level() -> None:
    found = levels(person(), person(first_name="Whitfield", last_name="Dana"))
    assert (found["first name"], found["surname"]) == (
        "swapped with surname",
        "swapped with first name",
    )


@pytest.mark.parametrize(
    ("mine", "theirs", "expected"),
    [
        ("503 555 0142", "(503) 555-0142", "same"),
        ("503 555 0142", "503 555 0124", "one digit off"),  # two digits swapped
        ("503 555 0142", "503 555 0143", "one digit off"),
        ("503 555 0142", "503 555 9999", "differs"),
        ("503 555 0142", "", None),
    ],
)
def test_phone_levels(mine: str, theirs: str, expected: str | None) -> None:
    assert levels(person(phone=mine), person(phone=theirs)).get("phone") == expected


def test_street_number_and_postcode_are_compared_apart_from_the_street() -> None:
    found = levels(
        person(line1="12 Alder Street", postcode="97205"),
        person(line1="14 Alder St.", postcode="97250"),
    )
    assert found["street"] == "same"  # "Street" and "St." fold together
    assert found["street number"] == "one digit off"
    assert found["postcode"] == "one digit off"
    found = levels(person(line1="12 Alder Street"), person(line1="12 Aldre Street"))
    assert (found["street number"], found["street"]) == ("same", "close")
    found = levels(person(line1="12 Alder Street"), person(line1="980 Cedar Road"))
    assert (found["street number"], found["street"]) == ("differs", "differs")


def test_email_city_line2_and_pet_levels() -> None:
    found = levels(
        person(email="dana@example.org", city="Portland", line2="Apt 4", pets="Biscuit;Rex"),
        person(email="dana@exmple.org", city="Portlnd", line2="Apt 4", pets="rex"),
    )
    assert found["email"] == "one character off"
    assert found["city"] == "close"
    assert found["address line 2"] == "same"
    assert found["pets"] == "a pet of the same name"
    found = levels(person(pets="Biscuit", email="a@b.org"), person(pets="Rex", email="z@y.net"))
    assert (found["pets"], found["email"]) == ("no pet in common", "differs")
    # One side without pets: no evidence either way.
    assert "pets" not in levels(person(pets="Biscuit"), person())
    # A placeholder email is no email.
    assert "email" not in levels(person(email="none@none.com"), person(email="none@none.com"))


# --- estimation ----------------------------------------------------------------------------


def test_em_recovers_known_m_and_lambda_on_a_small_data_set() -> None:
    """Pairs drawn from a known model: EM, given u, finds m and the share of matches."""
    rng = random.Random(3)
    true_m = [list(row) for row in PRIOR_M]
    true_m[c.PHONE_I] = [0.0, 0.7, 0.2, 0.1]
    true_m[c.LAST] = [0.0, 0.6, 0.0, 0.2, 0.1, 0.0, 0.1]
    u = [list(row) for row in PRIOR_U]

    def draw(row: list[float]) -> int:
        return rng.choices(range(len(row)), weights=row)[0]

    patterns: Counter[tuple[int, ...]] = Counter()
    matches = 600
    for k in range(3000):
        table = true_m if k < matches else u
        patterns[tuple(draw(row) for row in table)] += 1

    fit = em(patterns, u=u, strength=1.0)

    assert fit.converged
    assert fit.lam == pytest.approx(matches / 3000, abs=0.02)
    assert fit.m[c.PHONE_I][1:] == pytest.approx([0.7, 0.2, 0.1], abs=0.04)
    assert fit.m[c.LAST][1] == pytest.approx(0.6, abs=0.04)
    assert fit.own_share > 0.99


def _word(rng: random.Random) -> str:
    return "".join(rng.choice("bcdfghklmnprstvz") + rng.choice("aeiou") for _ in range(3))


def test_a_clinic_too_small_for_em_keeps_the_prior_and_moves_to_its_own_as_it_grows() -> None:
    def fitted(n: int) -> float:
        """m of "phone one digit off" in a clinic where every true pair has it so."""
        rng = random.Random(n)
        customers, people = [], []
        for i in range(n):
            fields = {
                "first_name": _word(rng),
                "last_name": _word(rng),
                "line1": f"{i + 1} {_word(rng)} Street",
                "postcode": f"9{i:04d}",
                "email": "",
            }
            phone = f"503{rng.randrange(2_000_000, 9_999_999)}"
            customers.append(person(str(i), phone=phone, **fields))
            typo = phone[:-1] + str((int(phone[-1]) + 1) % 10)
            people.append(person(f"C-{i}", phone=typo, **fields))
        pool = CustomerPool()
        for customer in customers:
            pool.add(customer)
        return fit_model(customers, people, candidate_pairs(pool, people)).m[c.PHONE_I][2]

    prior = PRIOR_M[c.PHONE_I][2]
    small, medium, large = fitted(2), fitted(100), fitted(1000)
    assert abs(small - prior) < 0.05  # two pairs: the prior
    assert small < medium < large
    assert large > 0.85  # its own data: "one digit off" is what its true pairs look like


def test_a_common_surname_weighs_less_than_a_rare_one() -> None:
    people = [person(f"s{i}", last_name="Smith", first_name=f"A{i}") for i in range(200)]
    people.append(person("z", last_name="Zabriskie"))
    pool = CustomerPool()
    for p in people[:100]:
        pool.add(p)
    fit = fit_model(people[:100], people[100:], [])
    smith = weight(fit, c.LAST, 1, "smith")
    rare = weight(fit, c.LAST, 1, "zabriskie")
    assert rare > smith + 4
    assert weight(prior_fit(), c.LAST, 1, "smith") == weight(prior_fit(), c.LAST, 1, "zabriskie")


# --- verdicts ------------------------------------------------------------------------------


def _plan(customers: list[Person], people: list[Person]) -> dict[str, object]:
    pool = CustomerPool()
    for customer in customers:
        pool.add(customer)
    return plan_matches(pool, people)


def test_swapped_first_and_last_names_merge() -> None:
    strangers = [
        person(
            f"s{i}",
            first_name=f"Ann{i}",
            last_name=f"Other{i}",
            phone=f"20255501{i:02d}",
            email=f"ann{i}@example.net",
            line1=f"{i + 100} Cedar Road",
        )
        for i in range(30)
    ]
    plan = _plan(
        [person("hd"), *strangers], [person("C-1", first_name="Whitfield", last_name="Dana")]
    )
    assert plan["C-1"].verdict == Verdict.MERGE
    assert plan["C-1"].customer_key == "hd"
    assert "first name whitfield/dana (swapped with surname) +" in plan["C-1"].rule


@pytest.mark.parametrize("phones", ["own mobiles", "the household's landline"])
def test_a_family_at_the_same_address_is_not_merged(phones: str) -> None:
    """Mary Jones is a customer; the PIMS sends Mark Jones: same address, email and dog."""
    mary = person("hd", first_name="Mary", last_name="Jones", pets="Rex", phone="503 555 0142")
    mark = person("C-1", first_name="Mark", last_name="Jones", pets="Rex", phone="503 555 0199")
    customers = [mary]
    if phones != "own mobiles":
        mark = person("C-1", first_name="Mark", last_name="Jones", pets="Rex")
        # Their daughter is a customer too, on the same number: it is the household's.
        customers.append(person("hd2", first_name="Lucy", last_name="Jones"))
    plan = _plan(customers, [mark])
    assert plan["C-1"].verdict == Verdict.POSSIBLE
    assert "first names differ" in plan["C-1"].rule


def test_a_first_name_that_differs_outright_merges_on_the_persons_own_phone() -> None:
    """A record whose first name was replaced (FEBRL's kind of error), everything else the
    same, the phone no other customer's: the same person."""
    plan = _plan([person("hd", first_name="Oakleigh")], [person("C-1", first_name="Bordin")])
    assert plan["C-1"].verdict == Verdict.MERGE


def test_a_pair_passed_over_unweighed_could_never_have_been_suggested() -> None:
    """The plan weighs value by value only the patterns of levels that can reach the
    suggestion threshold at the rarest values; every pair it passes over falls short when
    weighed in full (common and rare surnames, typos, neighbours on the same streets)."""
    rng = random.Random(11)
    surnames = ["Smith"] * 40 + ["Jones"] * 20 + [f"Rare{i}x" for i in range(40)]
    firsts = ["Dana", "Sam", "Alex", "Jordan", "Robin"]
    customers = [
        person(
            f"hd{i}",
            first_name=rng.choice(firsts),
            last_name=surname,
            email=f"c{i}@example.org" if i % 3 else "",
            phone=f"503555{i:04d}" if i % 2 else "",
            line1=f"{i % 25 + 1} {rng.choice(['Cedar Road', 'Alder Street'])}",
            postcode=f"972{i % 4:02d}",
        )
        for i, surname in enumerate(surnames)
    ]
    people = [
        person(
            f"C-{i}",
            first_name=c.first_name.title() if i % 4 else rng.choice(firsts),
            last_name=(c.last_name[:-1] if i % 5 == 0 else c.last_name).title(),
            email=c.email if i % 2 else "",
            phone=c.phone if i % 3 else "",
            line1=f"{c.street_number} {c.street}",
            postcode=c.postcode,
        )
        for i, c in enumerate(customers)
    ]
    pool = CustomerPool()
    for customer in customers:
        pool.add(customer)
    pairs = candidate_pairs(pool, people)
    fit = fit_model(customers, people, pairs)
    table, limit = weight_table(fit), thresholds()["suggest"]
    hopeful = _hopeful_patterns(fit, table, limit)

    passed_over = [pair for pair in pairs if not hopeful(pair.levels)]
    assert len(passed_over) > len(pairs) / 2  # most candidates are neighbours
    for pair in passed_over:
        weights = field_weights(fit, table, pair)
        assert probability(fit, sum(w for _, _, w in weights)) < limit
    assert any(
        probability(fit, sum(w for _, _, w in field_weights(fit, table, pair))) >= limit
        for pair in pairs
        if hopeful(pair.levels)
    )


def test_a_rejected_pair_is_never_compared() -> None:
    pool = CustomerPool(rejected={("hd", "C-1")})
    pool.add(person("hd"))
    assert plan_matches(pool, [person("C-1")]) == {}


# --- through the doors: the sync, the queue, the report, the client page --------------------


def test_a_merge_records_its_evidence_model_and_thresholds(world: World) -> None:
    hd = dana_in_store(
        world.a.clinic, address_line1="12 Alder Street", city="Portland", postcode="97205"
    )
    run = ingest(world.a.clinic, batch(owner()))

    merge = ClientMerge.objects.get(customer=hd)
    assert merge.evidence["model"]["version"] == "fs-1"
    assert merge.evidence["thresholds"] == {"merge": 0.999, "suggest": 0.5}
    assert merge.evidence["probability"] >= 0.999
    assert ["email", "email same"] in [w[:2] for w in merge.evidence["weights"]]
    outcome = run.outcomes.get(kind="client")
    assert outcome.outcome == Outcome.MERGED
    assert outcome.score >= 0.999
    assert "surname whitfield/whitfeld +" in outcome.evidence

    page = login(world.a.staff).get(
        reverse("records:client-detail", args=[world.a.clinic.slug, hd.pk])
    )
    story = page.content.decode()
    assert "Match probability" in story
    assert "email same <strong>+" in story


def test_a_merge_from_before_evidence_says_so(world: World) -> None:
    hd = ClientFactory(clinic=world.a.clinic, customer_ref="HD-1", pims_id="C-9")
    ClientMerge.objects.create(
        clinic=world.a.clinic, customer=hd, pims_id="C-9", method="rule", rule="same email"
    )
    page = login(world.a.staff).get(
        reverse("records:client-detail", args=[world.a.clinic.slug, hd.pk])
    )
    assert "Merged before evidence was recorded." in page.content.decode()


def _household(world: World) -> ManualUpdate:
    """Mary Jones is a customer; the PIMS sends Mark Jones, same address and dog."""
    hd = ClientFactory(
        clinic=world.a.clinic,
        customer_ref="HD-7",
        first_name="Mary",
        last_name="Jones",
        email="",
        phone="(503) 555-0188",
        address_line1="12 Alder St",
        city="Portland",
        postcode="97205",
    )
    PatientFactory(clinic=world.a.clinic, client=hd, name="Biscuit")
    ingest(world.a.clinic, batch(owner(first_name="Mark", last_name="Jones", email="")))
    return ManualUpdate.objects.get(kind="possible_match")


def test_evidence_in_the_review_queue_and_the_report(world: World) -> None:
    update = _household(world)
    assert not ClientMerge.objects.exists()

    page = login(world.a.staff).get(reverse("records:update-queue", args=[world.a.clinic.slug]))
    html = page.content.decode()
    assert "first name mark/mary (two different names) <strong>\u2212" in html
    assert "street same <strong>+" in html
    assert "phone differs <strong>\u2212" in html
    assert "for staff because the first names differ" in html

    response = login(world.a.staff).get(
        reverse("records:run-report", args=[world.a.clinic.slug, update.run_id])
    )
    rows = list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode())))
    row = next(r for r in rows if r["pims_id"] == "C-1")
    assert row["outcome"] == "possible_match"
    assert float(row["score"]) >= 0.5
    assert row["evidence"].startswith("the first names differ (a household?): first name mark/mary")


def test_a_staff_rejection_is_never_suggested_again(world: World) -> None:
    update = _household(world)
    possible_match_reject(update=update, actor=world.a.staff, reason="Mark is Mary's husband")

    # VetSync loses its link to the PIMS record (a re-install) and meets it again as new.
    from records.models import Client, Patient

    Patient.objects.filter(pims_id="P-1").update(pims_id="")
    Client.objects.filter(pims_id="C-1").update(pims_id="")
    run = ingest(world.a.clinic, batch(owner(first_name="Mark", last_name="Jones", email="")))

    assert not ManualUpdate.objects.filter(status="pending", kind="possible_match").exists()
    assert run.outcomes.get(kind="client").outcome == Outcome.CREATED


def test_suggestions_from_before_evidence_are_rescored_once(world: World) -> None:
    hd = ClientFactory(
        clinic=world.a.clinic, customer_ref="HD-1", first_name="Dana", last_name="Whitfield"
    )
    pims = ClientFactory(
        clinic=world.a.clinic, pims_id="C-1", first_name="Dana", last_name="Whitfeld"
    )
    old = ManualUpdate.objects.create(
        clinic=world.a.clinic,
        kind="possible_match",
        client=hd,
        candidate=pims,
        detail="same postcode and a very similar name",
        proposed={"rule": "same postcode and a very similar name", "score": 93},
    )

    assert suggestions_rescore(clinic=world.a.clinic) == 1
    assert suggestions_rescore(clinic=world.a.clinic) == 0

    old.refresh_from_db()
    assert old.proposed["evidence"]["rescored"] is True
    assert 0 < old.proposed["score"] <= 1
    assert ["surname", "surname whitfeld/whitfield"] in [
        w[:2] for w in old.proposed["evidence"]["weights"]
    ]


def test_a_staff_confirmed_merge_keeps_the_suggestions_evidence(world: World) -> None:
    from records.services import possible_match_confirm

    update = _household(world)
    possible_match_confirm(update=update, actor=world.a.staff)
    merge = ClientMerge.objects.get()
    assert merge.method == "staff"
    assert merge.evidence["probability"] == update.proposed["evidence"]["probability"]


def test_a_small_clinic_starts_from_what_other_clinics_learnt(world: World) -> None:
    """Clinic B's syncs found that its true pairs' phones are often one digit off; clinic A,
    too small to learn it itself, starts from that, not from the built-in prior alone."""
    from records.linkage.model import MODEL_VERSION
    from records.match_models import pooled_prior
    from records.models import MatchModelFit

    built_in = pooled_prior(clinic=world.a.clinic)
    assert built_in[c.PHONE_I] == pytest.approx(PRIOR_M[c.PHONE_I])
    learnt = [list(row) for row in PRIOR_M]
    learnt[c.PHONE_I] = [0.0, 0.3, 0.65, 0.05]
    MatchModelFit.objects.create(
        clinic=world.b.clinic, version=MODEL_VERSION, m=learnt, pairs=900, own_share=1.0
    )
    MatchModelFit.objects.create(  # another model version says nothing
        clinic=world.b.clinic, version="fs-0", m=PRIOR_M, pairs=900, own_share=1.0
    )

    pooled = pooled_prior(clinic=world.a.clinic)
    assert pooled[c.PHONE_I][2] == pytest.approx((100 * 0.08 + 900 * 0.65) / 1000)
    assert pooled_prior(clinic=world.b.clinic)[c.PHONE_I] == pytest.approx(PRIOR_M[c.PHONE_I])

    # A's first sync learns from it, and keeps its own fit for the others.
    ClientFactory(
        clinic=world.a.clinic, customer_ref="HD-1", first_name="Dana", last_name="Whitfield"
    )
    run = ingest(world.a.clinic, batch(owner()))
    assert run.outcomes.get(kind="client").outcome == Outcome.MERGED
    kept = MatchModelFit.objects.get(clinic=world.a.clinic)
    assert kept.version == MODEL_VERSION
    assert kept.m[c.PHONE_I][2] > 0.5  # it started from the pooled prior


@given(st.text(alphabet=st.sampled_from("+0123456789 ()-x²٣"), max_size=20))
def test_a_phones_digits_for_comparing_are_its_last_ten_decimal_digits(phone: str) -> None:
    """Whatever the number, "²" and other digits that are not decimal are no part of it."""
    person = Person.build(key="1", first_name="Dana", last_name="Okafor", phone=phone)

    e164 = normalize_phone(phone, "US")
    assert person.phone_digits == "".join(ch for ch in e164 if ch.isdecimal())[-10:]


_NAMES = st.sampled_from(["", "Lee", "Leeh", "Lea", "Dana", "Dan", "D", "Whitfield", "Witfield"])


@given(_NAMES, _NAMES, _NAMES, _NAMES)
def test_a_pairs_name_levels_are_each_names_own(
    first: str, last: str, other: str, theirs: str
) -> None:
    """``compare`` asks whether the names are swapped once for both; each level is still what
    its own function says (names alike, equal, swapped, empty)."""
    a = person("a", first_name=first, last_name=last)
    b = person("b", first_name=other, last_name=theirs)
    found = compare(a, b)
    assert found[c.FIRST] == c.first_name_level(a, b)
    assert found[c.LAST] == c.last_name_level(a, b)
