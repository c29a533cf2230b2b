"""The comparable form of a customer or a PIMS client: values normalised once, so comparing
two records is comparing strings."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from functools import lru_cache
from typing import NamedTuple

import phonenumbers

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


@lru_cache(maxsize=1 << 16)  # cities, streets and names repeat: a first copy asks ~1M times
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
    lowered = value.strip().lower()
    email = value if lowered == value else lowered  # the same text is not held twice
    return "" if PLACEHOLDER_EMAIL.match(email) else email


_ASCII_NOT_DIGITS = re.compile(r"[^0-9]+")


def normalize_phone(value: str, region: str = "US") -> str:
    """E.164 when the number parses as possible; otherwise its digits (still comparable)."""
    if not value or not value.strip():
        return ""
    # For ASCII text isdigit() is [0-9]: one regex pass instead of a test per character.
    digits = (
        _ASCII_NOT_DIGITS.sub("", value)
        if value.isascii()
        else "".join(ch for ch in value if ch.isdigit())
    )
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


@lru_cache(maxsize=1 << 16)  # a clinic's clients share a few hundred postcodes
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


_NOT_DIGITS = re.compile(r"\D+")
_STREET_NUMBER = re.compile(r"^\s*(\d+[a-z]?)\b\s*(.*)$")


@lru_cache(maxsize=1 << 16)
def split_street(line1: str) -> tuple[str, str]:
    """(street number, street name): "12b Alder Street" -> ("12b", "alder st")."""
    text = normalize_text(line1)
    found = _STREET_NUMBER.match(text)
    number, rest = (found.group(1), found.group(2)) if found else ("", text)
    street = " ".join(_STREET_WORDS.get(word, word) for word in rest.split())
    return number, street


class Person(NamedTuple):
    """The comparable form of a customer or a PIMS client.

    A named tuple, not a frozen dataclass: a first copy builds one per client (100,000 and
    more), and a frozen dataclass sets each field through ``object.__setattr__`` (a quarter
    of the time building a person took)."""

    key: str  # customer: its client id as text; PIMS client: its pims_id
    first_name: str
    last_name: str
    email: str = ""
    phone: str = ""  # E.164 (or the digits when it does not parse)
    street_number: str = ""
    street: str = ""  # the street line without its number, abbreviations folded
    line2: str = ""
    city: str = ""
    postcode: str = ""
    pet_names: frozenset[str] = frozenset()
    phone_digits: str = ""  # the phone's last ten digits, for comparing and blocking

    @property
    def name(self) -> str:
        return f"{self.first_name} {self.last_name}".strip()

    @classmethod
    def build(
        cls,
        *,
        key: str,
        first_name: str,
        last_name: str,
        email: str = "",
        phone: str = "",
        line1: str = "",
        postcode: str = "",
        line2: str = "",
        city: str = "",
        pet_names: Iterable[str] = (),
        region: str = "US",
    ) -> Person:
        number, street = split_street(line1)
        phone_e164 = normalize_phone(phone, region)
        return cls(
            key=key,
            first_name=normalize_text(first_name),
            last_name=normalize_text(last_name),
            email=normalize_email(email),
            phone=phone_e164,
            phone_digits=_phone_digits(phone_e164),
            street_number=number,
            street=street,
            line2=normalize_text(line2),
            city=normalize_text(city),
            postcode=normalize_postcode(postcode),
            pet_names=_pet_set(tuple(pet_names)),
        )


def _phone_digits(phone: str) -> str:
    """The last ten digits of a normalised phone (E.164 is "+" and digits)."""
    # isdecimal() is exactly what \d matches (isdigit() would also take "²").
    digits = phone[1:] if phone[:1] == "+" and phone[1:].isdecimal() else _NOT_DIGITS.sub("", phone)
    return digits[-10:]


@lru_cache(maxsize=1 << 16)  # households name their pets alike: each set is held once
def _pet_set(names: tuple[str, ...]) -> frozenset[str]:
    return frozenset(normalize_text(name) for name in names if name.strip())
