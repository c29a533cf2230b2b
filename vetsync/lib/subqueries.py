"""Correlated counts for lists across clinics: each row's figure from an index of its own rows,
instead of one aggregate over a whole table that grows forever (or a GROUP BY over a join)."""

from __future__ import annotations

from django.db.models import F, Func, IntegerField, QuerySet, Subquery, Value
from django.db.models.functions import Coalesce


def count_of(rows: QuerySet) -> Coalesce:
    """The number of ``rows`` (filtered on an ``OuterRef``): ``SELECT COUNT(id) … WHERE …``,
    one row whatever matches (a plain function, not an aggregate: no GROUP BY)."""
    counted = rows.order_by().annotate(n=Func(F("pk"), function="COUNT")).values("n")
    return Coalesce(Subquery(counted, output_field=IntegerField()), Value(0))
