"""Matching PIMS clients to the pharmacy's home-delivery customers.

A wrong merge ships one family's medication to another, so the rules favour precision: a
merge needs two independent pieces of evidence (an identifier *and* a name, or a name, an
address *and* a pet); anything weaker but plausible is a *possible match* for staff; a customer
claimed strongly by two PIMS clients is merged with neither. Values are normalised before
they are compared; similarity comes from rapidfuzz.
"""

from __future__ import annotations

import re
import unicodedata
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import StrEnum

import phonenumbers
from rapidfuzz import fuzz

# Name similarity (rapidfuzz token_sort_ratio, 0 to 100) needed next to each kind of evidence.
NAME_WITH_EMAIL = 80
NAME_WITH_PHONE = 85
NAME_WITH_ADDRESS_AND_PET = 85
POSSIBLE_NAME_WITH_ADDRESS = 70
POSSIBLE_NAME_WITH_POSTCODE = 90
# A merge also needs each part of the name to agree on its own: a household shares an email
# or a phone, and "Mark Jones" / "Mary Jones" are close as whole names (90) but not as first
# names (75).
FIRST_NAME_AGREES = 85
LAST_NAME_AGREES = 80
# Addresses people type when they have to give one; never evidence of identity.
PLACEHOLDER_EMAIL = re.compile(
    r"^(none|noemail|no-email|nomail|no|na|n/a|unknown|test|noreply|donotreply|do-not-reply)@"
)

_STREET_WORDS = {
    "street": "st",
    "avenue": "ave",
    "av": "ave",
    "road": "rd",
    "drive": "dr",
    "lane": "ln",
    "court": "ct",
    "boulevard": "blvd",
    "place": "pl",
    "terrace": "ter",
    "highway": "hwy",
    "parkway": "pkwy",
    "circle": "cir",
    "north": "n",
    "south": "s",
    "east": "e",
    "west": "w",
    "apartment": "apt",
    "suite": "ste",
    "unit": "apt",
    "#": "apt",
}
_NON_WORD = re.compile(r"[^\w#]+")


def normalize_text(value: str) -> str:
    """Lower case, accents off, punctuation to spaces, single spaces."""
    if not value.isascii():  # the decomposition is the slow part; most names are ASCII
        decomposed = unicodedata.normalize("NFKD", value)
        value = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    return " ".join(_NON_WORD.sub(" ", value.lower()).split())


def normalize_name(first_name: str, last_name: str) -> str:
    return normalize_text(f"{first_name} {last_name}")


def normalize_email(value: str) -> str:
    """Lower case; a placeholder ("none@…") becomes empty, so it never matches anyone."""
    email = value.strip().lower()
    return "" if PLACEHOLDER_EMAIL.match(email) else email


def normalize_phone(value: str, region: str = "US") -> str:
    """E.164 when the number parses as possible; otherwise its digits (still comparable)."""
    if not value or not value.strip():
        return ""
    digits = "".join(ch for ch in value if ch.isdigit())
    international = value.lstrip().startswith("+")
    if ((region or "US") == "US" and not international) or value.lstrip().startswith("+1"):
        # North American numbers are the bulk of the traffic; parsing each with phonenumbers
        # would cost seconds on a first copy, and the result is the same.
        if len(digits) == 10 and digits[0] not in "01":
            return f"+1{digits}"
        if len(digits) == 11 and digits[0] == "1" and digits[1] not in "01":
            return f"+{digits}"
    try:
        number = phonenumbers.parse(value, region or "US")
    except phonenumbers.NumberParseException:
        return digits[-15:]
    if phonenumbers.is_possible_number(number):
        return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
    return digits[-15:]


def normalize_postcode(value: str) -> str:
    compact = normalize_text(value).replace(" ", "")
    # US ZIP+4 and ZIP compare on the first five digits.
    return compact[:5] if compact[:5].isdigit() else compact


def address_key(line1: str, postcode: str) -> str:
    """Street line and postcode, with the usual abbreviations folded together."""
    if not line1.strip() or not postcode.strip():
        return ""
    words = [_STREET_WORDS.get(word, word) for word in normalize_text(line1).split()]
    return f"{' '.join(words)}|{normalize_postcode(postcode)}"


def name_similarity(a: str, b: str) -> float:
    return float(fuzz.token_sort_ratio(a, b))


class Verdict(StrEnum):
    MERGE = "merge"
    POSSIBLE = "possible"


@dataclass(frozen=True, slots=True)
class Person:
    """The comparable form of a customer or a PIMS client."""

    key: str  # customer: its client id as text; PIMS client: its pims_id
    name: str
    email: str
    phone: str
    address: str
    postcode: str
    last_name: str
    pet_names: frozenset[str] = frozenset()
    first_name: str = ""

    @property
    def postcode_block(self) -> str:
        if not self.postcode or not self.last_name:
            return ""
        return f"{self.postcode}|{self.last_name[:2]}"

    @classmethod
    def build(
        cls,
        *,
        key: str,
        first_name: str,
        last_name: str,
        email: str,
        phone: str,
        line1: str,
        postcode: str,
        pet_names: Iterable[str] = (),
        region: str = "US",
    ) -> Person:
        return cls(
            key=key,
            name=normalize_name(first_name, last_name),
            email=normalize_email(email),
            phone=normalize_phone(phone, region),
            address=address_key(line1, postcode),
            postcode=normalize_postcode(postcode),
            last_name=normalize_text(last_name),
            pet_names=frozenset(normalize_text(n) for n in pet_names if n.strip()),
            first_name=normalize_text(first_name),
        )


@dataclass(frozen=True, slots=True)
class Match:
    verdict: Verdict
    customer_key: str
    rule: str
    score: float


@dataclass
class CustomerPool:
    """Home-delivery customers not yet linked to a PIMS record, indexed for blocking."""

    customers: dict[str, Person] = field(default_factory=dict)
    rejected: set[tuple[str, str]] = field(default_factory=set)  # (customer key, pims_id)
    _by_email: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))
    _by_phone: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))
    _by_address: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))
    # Postcode plus the first letters of the last name: a narrow block for typo'd names.
    _by_postcode: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))

    def add(self, person: Person) -> None:
        self.customers[person.key] = person
        for index, value in (
            (self._by_email, person.email),
            (self._by_phone, person.phone),
            (self._by_address, person.address),
            (self._by_postcode, person.postcode_block),
        ):
            if value:
                index[value].append(person.key)

    def __len__(self) -> int:
        return len(self.customers)

    def _candidates(self, person: Person) -> set[str]:
        keys: set[str] = set()
        if person.email:
            keys.update(self._by_email.get(person.email, ()))
        if person.phone:
            keys.update(self._by_phone.get(person.phone, ()))
        if person.address:
            keys.update(self._by_address.get(person.address, ()))
        if person.postcode_block:
            keys.update(self._by_postcode.get(person.postcode_block, ()))
        return {key for key in keys if (key, person.key) not in self.rejected}

    def match(self, person: Person) -> Match | None:
        """The best verdict for one PIMS client, or None when nobody is plausible."""
        found: list[Match] = []
        # An email or phone several customers share (a family, a shop's number) is no
        # evidence of which one this is.
        shared = {
            "email": len(self._by_email.get(person.email, ())) > 1,
            "phone": len(self._by_phone.get(person.phone, ())) > 1,
        }
        for key in self._candidates(person):
            verdict = _judge(person, self.customers[key], shared)
            if verdict is not None:
                found.append(verdict)
        if not found:
            return None
        found.sort(key=lambda m: (m.verdict != Verdict.MERGE, -m.score, m.customer_key))
        best = found[0]
        strong = [m for m in found if m.verdict == Verdict.MERGE]
        if len(strong) > 1:
            # Two customers fit equally well: a person must choose.
            return Match(
                Verdict.POSSIBLE, best.customer_key, "more than one customer fits", best.score
            )
        return best


def _judge(pims: Person, customer: Person, shared: dict[str, bool]) -> Match | None:
    score = name_similarity(pims.name, customer.name)
    same_email = bool(pims.email) and pims.email == customer.email
    same_phone = bool(pims.phone) and pims.phone == customer.phone
    same_address = bool(pims.address) and pims.address == customer.address
    shared_pet = bool(pims.pet_names & customer.pet_names)
    parts_agree = (
        fuzz.ratio(pims.first_name, customer.first_name) >= FIRST_NAME_AGREES
        and fuzz.ratio(pims.last_name, customer.last_name) >= LAST_NAME_AGREES
    )
    key = customer.key
    if same_email and not shared["email"] and parts_agree and score >= NAME_WITH_EMAIL:
        return Match(Verdict.MERGE, key, "same email and a close name", score)
    if same_phone and not shared["phone"] and parts_agree and score >= NAME_WITH_PHONE:
        return Match(Verdict.MERGE, key, "same phone and a close name", score)
    if same_address and shared_pet and parts_agree and score >= NAME_WITH_ADDRESS_AND_PET:
        return Match(
            Verdict.MERGE, key, "close name, same address and a pet of the same name", score
        )
    if same_email:
        return Match(Verdict.POSSIBLE, key, "same email, different name", score)
    if same_phone:
        return Match(Verdict.POSSIBLE, key, "same phone, different name", score)
    if same_address and score >= POSSIBLE_NAME_WITH_ADDRESS:
        return Match(Verdict.POSSIBLE, key, "same address and a similar name", score)
    if (
        pims.postcode
        and pims.postcode == customer.postcode
        and score >= POSSIBLE_NAME_WITH_POSTCODE
    ):
        return Match(Verdict.POSSIBLE, key, "same postcode and a very similar name", score)
    return None


def plan_matches(pool: CustomerPool, people: Iterable[Person]) -> dict[str, Match]:
    """Verdicts for a whole batch; a customer two PIMS clients claim strongly goes to staff."""
    plan: dict[str, Match] = {}
    claims: dict[str, int] = defaultdict(int)
    for person in people:
        match = pool.match(person)
        if match is None:
            continue
        plan[person.key] = match
        if match.verdict == Verdict.MERGE:
            claims[match.customer_key] += 1
    for pims_id, match in plan.items():
        if match.verdict == Verdict.MERGE and claims[match.customer_key] > 1:
            plan[pims_id] = Match(
                Verdict.POSSIBLE,
                match.customer_key,
                "another PIMS client fits this customer too",
                match.score,
            )
    return plan
