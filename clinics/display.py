"""How people, phones and times are written on every page: one way each.

- a person is their full name, or their login when they have none;
- a phone is shown in the clinic's national format (``(503) 555-0142`` in the US), the stored
  value untouched; a number for another country keeps its international form;
- a date and time uses the project's formats (``vetsync/formats``).
"""

from __future__ import annotations

import datetime as dt
import functools
from typing import Any

import phonenumbers
from django.utils import formats, timezone


def person_name(user: Any, default: str = "") -> str:
    """ "Dana Whitfield" (or "dwhitfield" when no name is set); ``default`` for nobody."""
    if user is None or not getattr(user, "pk", None):
        return default
    full = (user.get_full_name() or "").strip()
    return full or str(user.get_username())


def event_actor(event: Any) -> str:
    """Who did what an audit event records: the user's name, else the label it kept
    ("sync", "pet owner", a removed user's login)."""
    if event.actor_id is not None and event.actor is not None:
        return person_name(event.actor, event.actor_label)
    return str(event.actor_label)


@functools.lru_cache(maxsize=65536)
def phone_display(value: str, region: str = "US") -> str:
    """The number in the clinic's national format; other countries' numbers internationally;
    anything that is not a valid number exactly as stored.

    Remembered per process (a pure function of its two strings; parsing costs a quarter of a
    millisecond and a client list shows fifty numbers, most of them again and again)."""
    if not value:
        return ""
    try:
        number = phonenumbers.parse(value, region or "US")
    except phonenumbers.NumberParseException:
        return value
    if not phonenumbers.is_valid_number(number):
        return value
    home = phonenumbers.region_code_for_number(number) == (region or "US").upper()
    style = (
        phonenumbers.PhoneNumberFormat.NATIONAL
        if home
        else phonenumbers.PhoneNumberFormat.INTERNATIONAL
    )
    text = phonenumbers.format_number(number, style)
    if number.extension and "ext" not in text:
        text += f" ext. {number.extension}"
    return text


def when(value: dt.datetime | None) -> str:
    """A moment in the one datetime format, in the current time zone."""
    if value is None:
        return ""
    if timezone.is_aware(value):
        value = timezone.localtime(value)
    return str(formats.date_format(value, "DATETIME_FORMAT"))
