"""Clinic staff's record pages and Pet Owner Care's lookup. Thin doors onto queries and services."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.db.models import Q, QuerySet
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.views.decorators.http import require_GET

from clinics.access import clinic_for_user, is_pet_owner_care
from clinics.audit import audit_log
from records.models import Client

PAGE_SIZE = 50


def _text_search(queryset: QuerySet[Client], query: str) -> QuerySet[Client]:
    for term in query.split():
        queryset = queryset.filter(
            Q(first_name__icontains=term)
            | Q(last_name__icontains=term)
            | Q(email__icontains=term)
            | Q(phone__icontains=term)
            | Q(postcode__iexact=term)
        )
    return queryset


@login_required
@require_GET
def client_list(request: HttpRequest, clinic_slug: str) -> HttpResponse:
    clinic = clinic_for_user(request, clinic_slug)
    query = request.GET.get("q", "").strip()
    clients = _text_search(Client.objects.for_clinic(clinic), query)
    page = Paginator(clients.order_by("last_name", "first_name", "id"), PAGE_SIZE).get_page(
        request.GET.get("page")
    )
    template = "records/client_list.html"
    if request.htmx.target == "client-results":  # type: ignore[attr-defined]
        template += "#client-results"
    return TemplateResponse(request, template, {"clinic": clinic, "page": page, "query": query})


def care_required(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """Pet Owner Care only; clinic staff are refused."""

    @wraps(view)
    @login_required
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if not is_pet_owner_care(request.user):
            raise PermissionDenied("Pet Owner Care only.")
        return view(request, *args, **kwargs)

    return wrapper


@care_required
@require_GET
def care_search(request: HttpRequest) -> HttpResponse:
    """Look clients up across every clinic; every search is audit-logged."""
    query = request.GET.get("q", "").strip()
    page = None
    if query:
        clients = _text_search(Client.objects.select_related("clinic"), query).order_by(
            "last_name", "first_name", "id"
        )
        page = Paginator(clients, PAGE_SIZE).get_page(request.GET.get("page"))
        audit_log(
            action="care.search",
            request=request,
            after={"query": query, "results": page.paginator.count},
        )
    return TemplateResponse(request, "records/care_search.html", {"page": page, "query": query})
