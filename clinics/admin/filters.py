""" "Needs attention" in the onboarding team's lists: failing integrations and live ones with
no data within their expected interval come first, and a filter shows only them."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.contrib.admin.utils import get_fields_from_path
from django.core.exceptions import FieldDoesNotExist
from django.db.models import OrderBy, QuerySet
from django.http import HttpRequest
from django.utils import timezone

from clinics.models import Clinic, integration_attention
from vetsync.lib.numbers import id_from


def with_attention(queryset: QuerySet[Any], via: str = "") -> QuerySet[Any]:
    """Annotate ``needs_attention`` (``via`` leads to the integration: "integration__")."""
    return queryset.annotate(needs_attention=integration_attention(now=timezone.now(), via=via))


def attention_first(via: str = "") -> OrderBy:
    """The ordering that lists what needs attention first (an expression: the admin applies
    ordering before any annotation of ``get_queryset`` exists)."""
    return integration_attention(now=timezone.now(), via=via).desc()


class AttentionFilter(admin.SimpleListFilter):
    title = "needs attention"
    parameter_name = "attention"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [("yes", "Needs attention"), ("no", "All well")]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        if self.value() in ("yes", "no"):
            return queryset.filter(needs_attention=self.value() == "yes")
        return queryset


class ClinicFilter(admin.SimpleListFilter):
    """Rows of one clinic (``?clinic__id__exact=<id>``, the address Django's own filter uses)."""

    title = "clinic"
    parameter_name = "clinic__id__exact"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        chosen = id_from(self.value())
        if chosen is None:
            return []
        return [(str(c.pk), c.name) for c in Clinic.objects.filter(pk=chosen)]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        # Not an id ("²" is a digit to str.isdigit, 5,000 digits are no number): unfiltered.
        chosen = id_from(self.value())
        return queryset if chosen is None else queryset.filter(clinic_id=chosen)


class RelationLookupsByKey:
    """A ModelAdmin mixin: a list's related-object filter (``?path__id__exact=3``, the address
    Django's own filter writes) is allowed, a lookup on the relation itself (``?path=…``,
    ``?groups__in=…``) is not. Those compare without the key field's range check, so a number
    too big for the database reached it as a 500; refused, they are a 400."""

    model: Any

    def lookup_allowed(self, lookup: str, value: Any, request: HttpRequest) -> bool:
        parts = lookup.split("__")
        for end in range(len(parts), 0, -1):
            try:
                fields = get_fields_from_path(self.model, "__".join(parts[:end]))
            except (FieldDoesNotExist, admin.utils.NotRelationField):
                continue
            if fields[-1].is_relation and parts[end:] != ["isnull"]:
                return False
            break
        return super().lookup_allowed(lookup, value, request)  # type: ignore[misc]
