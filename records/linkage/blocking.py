"""Blocking: which pairs are worth comparing at all.

A PIMS client is compared with every customer that shares at least one blocking key with it.
There are several keys, each on different fields, so one typo in one field (a phone digit, a
misspelt surname, a wrong postcode) does not hide a pair: the other keys still bring it. A key
shared by too many customers (a surname and initial everyone has) says nothing and is skipped.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from functools import lru_cache

from records.linkage.compare import _digits, _metaphone
from records.linkage.people import Person

MAX_BLOCK = 60  # customers sharing one key beyond this: the key identifies nobody
STRONG_KEYS = frozenset({"phone", "email", "surname", "names"})


@lru_cache(maxsize=1 << 16)  # names repeat: a first copy asks for each ~250,000 times
def _sound(name: str) -> tuple[str, str]:
    """A name's Metaphone and its digits (which Metaphone does not hear: "Smith2")."""
    return _metaphone(name), _digits(name)


def blocking_keys(person: Person) -> Iterator[tuple[str, ...]]:
    first, last = person.first_name, person.last_name
    first_sound, first_digits = _sound(first) if first else ("", "")
    last_sound, last_digits = _sound(last) if last else ("", "")
    digits = person.phone_digits
    if len(digits) >= 6:
        yield ("phone", digits)
    if person.email:
        yield ("email", person.email)
    if last:
        # Metaphone does not hear digits ("Smith2"): they are part of the key.
        yield ("surname", last_sound[:4] + last_digits, first[:1])
    if first and last:
        # The two names in either order: a client whose names were swapped still meets.
        yield ("names", *sorted((first_sound[:3] + first_digits, last_sound[:3] + last_digits)))
    if person.street_number and person.postcode:
        yield ("house", person.street_number, person.postcode)
    if person.street_number and person.street:
        yield ("street", person.street_number, person.street.replace(" ", "")[:6])
    if person.postcode and first:
        yield ("postcode-first", person.postcode, first_sound[:3])
    if person.postcode and last:
        yield ("postcode-surname", person.postcode, last[:3])
    if person.postcode and person.street:
        yield ("postcode-street", person.postcode, person.street.replace(" ", "")[:5])


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
