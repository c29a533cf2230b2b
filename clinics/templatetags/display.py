"""Template filters for the one way people, phones and epoch dates are shown
(``clinics.display``): ``{% load display %}`` then ``user|person``, ``event|actor``,
``client.phone|phone:clinic.region``."""

from __future__ import annotations

from typing import Any

from django import template

from clinics import display

register = template.Library()


@register.filter
def person(user: Any) -> str:
    return display.person_name(user)


@register.filter
def actor(event: Any) -> str:
    return display.event_actor(event)


@register.filter
def phone(value: str, region: str = "US") -> str:
    return display.phone_display(value or "", region or "US")
