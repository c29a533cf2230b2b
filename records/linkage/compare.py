"""Comparison levels: how two records agree, field by field.

Every field has its levels, level 0 always meaning "one side has no value" (no evidence either
way). The model gives each other level a match weight, log2(m/u): how much more often that
level is seen between the same person's two records (m) than between two different people (u).
String similarity is rapidfuzz's (Jaro-Winkler, optimal string alignment); sounds-alike is
jellyfish's Metaphone.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache

import jellyfish
from faker.providers.person.en_GB import Provider as _GBNames
from faker.providers.person.en_US import Provider as _USNames
from rapidfuzz.distance import OSA, JaroWinkler

from records.linkage.people import Person

MISSING = 0
# Similarity bands (Jaro-Winkler, 0 to 1).
CLOSE = 0.94
SIMILAR = 0.88


@dataclass(frozen=True, slots=True)
class Field:
    """One comparison: its name as staff read it and the labels of its levels."""

    name: str
    levels: tuple[str, ...]  # level 0 is "missing"
    # Levels whose weight is adjusted for how common the value is (term frequency).
    tf_levels: tuple[int, ...] = ()
    # Levels that show both values in the evidence ("surname Smyth/Smith").
    shows_values: tuple[int, ...] = ()


FIRST_NAME = Field(
    "first name",
    (
        "missing",
        "same",
        "swapped with surname",
        "initial or short form",
        "sounds alike",
        "typo",
        "two different names",
        "differs",
    ),
    tf_levels=(1,),
    shows_values=(2, 3, 4, 5, 6, 7),
)
LAST_NAME = Field(
    "surname",
    ("missing", "same", "swapped with first name", "close", "similar", "sounds alike", "differs"),
    tf_levels=(1,),
    shows_values=(2, 3, 4, 5, 6),
)
PHONE = Field("phone", ("missing", "same", "one digit off", "differs"), shows_values=(2,))
EMAIL = Field("email", ("missing", "same", "one character off", "differs"), shows_values=(2,))
STREET_NUMBER = Field(
    "street number", ("missing", "same", "one digit off", "differs"), shows_values=(2, 3)
)
STREET = Field(
    "street",
    ("missing", "same", "close", "similar", "differs"),
    tf_levels=(1,),
    shows_values=(2, 3),
)
LINE2 = Field("address line 2", ("missing", "same", "close", "differs"), shows_values=(2,))
CITY = Field("city", ("missing", "same", "close", "differs"), shows_values=(2,))
POSTCODE = Field("postcode", ("missing", "same", "one digit off", "differs"), shows_values=(2, 3))
PETS = Field("pets", ("missing", "a pet of the same name", "no pet in common"))

FIELDS: tuple[Field, ...] = (
    FIRST_NAME,
    LAST_NAME,
    PHONE,
    EMAIL,
    STREET_NUMBER,
    STREET,
    LINE2,
    CITY,
    POSTCODE,
    PETS,
)
FIRST, LAST, PHONE_I, EMAIL_I, NUMBER_I, STREET_I, LINE2_I, CITY_I, POSTCODE_I, PETS_I = range(
    len(FIELDS)
)
# A first name's "different" levels: a household shares everything else.
FIRST_NAMES_DIFFER = (6, 7)

Levels = tuple[int, ...]


@cache
def known_given_names() -> frozenset[str]:
    """Given names people really have (Faker's lists): two of them differing is two people
    (Mark/Mary), not a typo."""
    names = {*_USNames.first_names, *_GBNames.first_names}
    return frozenset(name.lower() for name in names)


jaro_winkler = JaroWinkler.similarity  # (a, b) -> float: a compare asks up to seven times


@cache
def _metaphone(value: str) -> str:
    return str(jellyfish.metaphone(value))


_NOT_DIGITS = re.compile(r"\D+")


def _digits(value: str) -> str:
    return "" if value.isalpha() else _NOT_DIGITS.sub("", value)


def sounds_alike(a: str, b: str) -> bool:
    """Metaphone agrees (and so do the digits, which Metaphone does not hear)."""
    return bool(a) and bool(b) and _metaphone(a) == _metaphone(b) and _digits(a) == _digits(b)


def _names_match(a: str, b: str) -> bool:
    return bool(a) and bool(b) and (a == b or jaro_winkler(a, b) >= CLOSE)


def first_name_level(
    a: Person, b: Person, names: frozenset[str] | None = None, swapped: bool | None = None
) -> int:
    """``swapped``: ``_swapped(a, b)`` when the caller knows it already."""
    x, y = a.first_name, b.first_name
    if not x or not y:
        return MISSING
    if x == y:
        return 1
    if _swapped(a, b) if swapped is None else swapped:
        return 2
    short, long = sorted((x, y), key=len)
    if long.startswith(short) and (len(short) == 1 or len(short) >= 3):
        return 3  # "J" for John, "Sam" for Samuel
    if sounds_alike(x, y):
        return 4
    names = known_given_names() if names is None else names
    both_names = x in names and y in names
    if not both_names and jaro_winkler(x, y) >= SIMILAR:
        return 5
    return 6 if both_names else 7


def _swapped(a: Person, b: Person) -> bool:
    return (
        _names_match(a.first_name, b.last_name)
        and _names_match(a.last_name, b.first_name)
        and a.first_name != a.last_name
    )


def last_name_level(a: Person, b: Person, swapped: bool | None = None) -> int:
    x, y = a.last_name, b.last_name
    if not x or not y:
        return MISSING
    if x == y:
        return 1
    if _swapped(a, b) if swapped is None else swapped:
        return 2
    similarity = jaro_winkler(x, y)
    if similarity >= CLOSE:
        return 3
    if similarity >= SIMILAR:
        return 4
    return 5 if sounds_alike(x, y) else 6


def one_edit_level(x: str, y: str, *, same_digits: bool = False) -> int:
    """Same / one digit or character off (a typo, two swapped) / differs. With
    ``same_digits``, a difference in the digits is no typo ("c1@…" and "c2@…" are two
    mailboxes)."""
    if not x or not y:
        return MISSING
    if x == y:
        return 1
    if same_digits and _digits(x) != _digits(y):
        return 3
    return 2 if OSA.distance(x, y) <= 1 else 3


def phone_level(a: Person, b: Person) -> int:
    return one_edit_level(a.phone_digits, b.phone_digits)


def street_level(x: str, y: str) -> int:
    if not x or not y:
        return MISSING
    if x == y:
        return 1
    # "pridhamstreet" and "pridham street" are one street.
    similarity = jaro_winkler(x.replace(" ", ""), y.replace(" ", ""))
    if similarity >= CLOSE:
        return 2
    return 3 if similarity >= SIMILAR else 4


def text_level(x: str, y: str) -> int:
    """Same / close (Jaro-Winkler) / differs."""
    if not x or not y:
        return MISSING
    if x == y:
        return 1
    return 2 if jaro_winkler(x, y) >= CLOSE else 3


def pets_level(a: Person, b: Person) -> int:
    if not a.pet_names or not b.pet_names:
        return MISSING
    if a.pet_names & b.pet_names:
        return 1
    for x in a.pet_names:
        for y in b.pet_names:
            if jaro_winkler(x, y) >= CLOSE:
                return 1
    return 2


def compare(a: Person, b: Person, names: frozenset[str] | None = None) -> Levels:
    """The level of every field, in ``FIELDS`` order."""
    # Asked by each name's level when that name differs (most candidate pairs): answered once.
    differ = a.first_name != b.first_name or a.last_name != b.last_name
    swapped = differ and _swapped(a, b)
    return (
        first_name_level(a, b, names, swapped),
        last_name_level(a, b, swapped),
        phone_level(a, b),
        one_edit_level(a.email, b.email, same_digits=True),
        one_edit_level(a.street_number, b.street_number),
        street_level(a.street, b.street),
        text_level(a.line2, b.line2),
        text_level(a.city, b.city),
        one_edit_level(a.postcode, b.postcode),
        pets_level(a, b),
    )


def field_values(person: Person) -> tuple[str, ...]:
    """Each field's value as staff read it in the evidence, in ``FIELDS`` order."""
    return (
        person.first_name,
        person.last_name,
        person.phone,
        person.email,
        person.street_number,
        person.street,
        person.line2,
        person.city,
        person.postcode,
        ", ".join(sorted(person.pet_names)),
    )
