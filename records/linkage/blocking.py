"""Blocking: which pairs are worth comparing at all.

A PIMS client is compared with every customer that shares at least one blocking key with it.
There are several keys, each on different fields, so one typo in one field (a phone digit, a
misspelt surname, a wrong postcode) does not hide a pair: the other keys still bring it. A key
shared by too many customers (a surname and initial everyone has) says nothing and is skipped.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator

from records.linkage.compare import _metaphone
from records.linkage.people import Person

MAX_BLOCK = 60  # customers sharing one key beyond this: the key identifies nobody


def blocking_keys(person: Person) -> Iterator[tuple[str, ...]]:
    first, last = person.first_name, person.last_name
    digits = person.phone_digits[-10:]
    if len(digits) >= 6:
        yield ("phone", digits)
    if person.email:
        yield ("email", person.email)
    if last:
        yield ("surname", _metaphone(last)[:4], first[:1])
    if first and last:
        # The two names in either order: a client whose names were swapped still meets.
        yield ("names", *sorted((_metaphone(first)[:3], _metaphone(last)[:3])))
    if person.street_number and person.postcode:
        yield ("house", person.street_number, person.postcode)
    if person.street_number and person.street:
        yield ("street", person.street_number, person.street.replace(" ", "")[:6])
    if person.postcode and first:
        yield ("postcode-first", person.postcode, _metaphone(first)[:3])
    if person.postcode and last:
        yield ("postcode-surname", person.postcode, last[:3])
    if person.postcode and person.street:
        yield ("postcode-street", person.postcode, person.street.replace(" ", "")[:5])


class BlockIndex:
    """The customers by blocking key."""

    def __init__(self) -> None:
        self._index: dict[tuple[str, ...], list[int]] = defaultdict(list)

    def add(self, position: int, person: Person) -> None:
        for key in set(blocking_keys(person)):
            self._index[key].append(position)

    def candidates(self, person: Person) -> set[int]:
        found: set[int] = set()
        for key in blocking_keys(person):
            block = self._index.get(key)
            if block and len(block) <= MAX_BLOCK:
                found.update(block)
        return found
