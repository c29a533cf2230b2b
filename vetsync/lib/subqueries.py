"""Correlated counts for lists across clinics: each row's figure from an index of its own rows,
instead of one aggregate over a whole table that grows forever."""

from __future__ import annotations

from django.db.models import Count, IntegerField, QuerySet, Subquery, Value
from django.db.models.functions import Coalesce


def count_of(rows: QuerySet) -> Coalesce:
    """The number of ``rows`` (filtered on an ``OuterRef``), 0 when there are none."""
    counted = rows.order_by().values("clinic").annotate(n=Count("pk")).values("n")
    return Coalesce(Subquery(counted, output_field=IntegerField()), Value(0))
