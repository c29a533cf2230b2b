"""Showing the matcher's evidence: ``{% load match_evidence %}``, then ``{{ w|match_weight }}``
("+9.1", "-2.0", with a minus sign) and ``{{ p|match_percent }}`` ("99.95 %")."""

from __future__ import annotations

from typing import Any

from django import template

from records.matching import format_percent, format_weight

register = template.Library()


@register.filter
def match_weight(value: Any) -> str:
    try:
        return format_weight(float(value))
    except (TypeError, ValueError):
        return ""


@register.filter
def match_percent(value: Any) -> str:
    try:
        return format_percent(float(value))
    except (TypeError, ValueError):
        return ""
