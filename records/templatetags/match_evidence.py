"""Showing the matcher's evidence: ``{% load match_evidence %}``, then ``{{ w|match_weight }}``
("+9.1", "-2.0", with a minus sign) and ``{{ p|match_percent }}`` ("99.95 %")."""

from __future__ import annotations

from typing import Any

from django import template

from records.matching import format_weight

register = template.Library()


@register.filter
def match_weight(value: Any) -> str:
    try:
        return format_weight(float(value))
    except (TypeError, ValueError):
        return ""


@register.filter
def match_percent(value: Any) -> str:
    """A probability as a percentage, with the digits that tell 99.9 % from 99.99 %."""
    try:
        p = float(value)
    except (TypeError, ValueError):
        return ""
    if p >= 0.99999:
        return "> 99.999 %"
    digits = 0 if p < 0.99 else 2 if p < 0.9999 else 3
    return f"{100 * p:.{digits}f} %"
