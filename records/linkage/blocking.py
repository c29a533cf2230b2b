"""Blocking: which pairs are worth comparing at all.

A PIMS client is compared with every customer that shares at least one blocking key with it.
There are several keys, each on different fields, so one typo in one field (a phone digit, a
misspelt surname, a wrong postcode) does not hide a pair: the other keys still bring it. A key
shared by too many customers (a surname and initial everyone has) says nothing and is skipped.
"""

from __future__ import annotations

from collections import defaultdict
from functools import lru_cache

from records.linkage.compare import _digits, _metaphone
from records.linkage.people import Person

MAX_BLOCK = 60  # customers sharing one key beyond this: the key identifies nobody
STRONG_KEYS = frozenset({"phone", "email", "surname", "names"})


@lru_cache(maxsize=1 << 16)  # names repeat: a first copy asks for each ~250,000 times
def _sound(name: str) -> tuple[str, str, str]:
    """A name's first four and first three Metaphone sounds, each with the name's digits
    (which Metaphone does not hear: "Smith2"), and the first three alone."""
    sound, digits = _metaphone(name), _digits(name)
    return sound[:4] + digits, sound[:3] + digits, sound[:3]


_NO_SOUND = ("", "", "")


def blocking_keys(person: Person) -> list[tuple[str, ...]]:
    """Every blocking key of the person (a list: a first copy asks for 120,000 people's)."""
    first, last, postcode = person.first_name, person.last_name, person.postcode
    keys: list[tuple[str, ...]] = []
    if len(person.phone_digits) >= 6:
        keys.append(("phone", person.phone_digits))
    if person.email:
        keys.append(("email", person.email))
    first_sound = _sound(first) if first else _NO_SOUND
    if last:
        last_sound = _sound(last)
        keys.append(("surname", last_sound[0], first[:1]))
        if first:
            # The two names in either order: a client whose names were swapped still meets.
            a, b = first_sound[1], last_sound[1]
            keys.append(("names", a, b) if a <= b else ("names", b, a))
    number, street = person.street_number, person.street.replace(" ", "")
    if number and postcode:
        keys.append(("house", number, postcode))
    if number and street:
        keys.append(("street", number, street[:6]))
    if postcode:
        if first:
            keys.append(("postcode-first", postcode, first_sound[2]))
        if last:
            keys.append(("postcode-surname", postcode, last[:3]))
        if street:
            keys.append(("postcode-street", postcode, street[:5]))
    return keys


class BlockIndex:
    """The customers by blocking key."""

    def __init__(self) -> None:
        self._index: dict[tuple[str, ...], list[int]] = defaultdict(list)
        self._initials: list[tuple[str, str]] = []
        self._usable: dict[tuple[str, ...], list[int]] | None = None

    def add(self, position: int, person: Person) -> None:
        """Index the customer at ``position`` (positions are added in order: 0, 1, 2…)."""
        self._initials.append((person.first_name[:1], person.last_name[:1]))
        for key in set(blocking_keys(person)):
            self._index[key].append(position)
        self._usable = None

    def _blocks(self) -> dict[tuple[str, ...], list[int]]:
        """The blocks that say something: a key more than ``MAX_BLOCK`` customers share is
        left out once, rather than measured for every person looked up."""
        if self._usable is None:
            self._usable = {k: block for k, block in self._index.items() if len(block) <= MAX_BLOCK}
        return self._usable

    def candidates(self, person: Person) -> set[int]:
        """The customers worth comparing: sharing an identifying key (phone, email, a name
        key), or two of the others, or one of them and the surname's initial (a shared
        postcode and first name alone is every neighbour called Sam).

        A first copy asks for 100,000 people: sets and lists, no counter per person."""
        block_of = self._blocks().get
        found: set[int] = set()
        weak: list[int] = []
        for key in blocking_keys(person):
            block = block_of(key)
            if block is not None:
                if key[0] in STRONG_KEYS:
                    found.update(block)
                else:
                    weak += block
        if weak:
            # A customer is in a weak block once per key it shares: seen before is two keys.
            initial, initials = person.last_name[:1], self._initials
            seen: set[int] = set()
            for position in weak:
                if position in seen or (initial and initial in initials[position]):
                    found.add(position)
                seen.add(position)
        return found
