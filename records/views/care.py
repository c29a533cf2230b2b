"""Pet Owner Care's pages (/care/): lookup across clinics, a client, owner changes, the log."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect
from django.template.response import TemplateResponse
from django.utils import timezone
from django.views.decorators.http import require_GET, require_http_methods

from clinics.access import is_pet_owner_care
from records import care
from records.history import TIMELINE_LIMIT, record_events, record_outcomes, timeline
from records.models import CARE_LOG_PERMISSION, Client
from records.panels import client_panels
from vetsync.lib.paging import page_of


def care_required(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """Pet Owner Care only; clinic staff are refused."""

    @wraps(view)
    @login_required
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if not is_pet_owner_care(request.user):
            raise PermissionDenied("Pet Owner Care only.")
        return view(request, *args, **kwargs)

    return wrapper


CARE_LOG_PAGE_SIZE = 50


def _is_care_lead(user: Any) -> bool:
    return bool(user.has_perm(f"records.{CARE_LOG_PERMISSION}"))


@care_required
@require_GET
def care_search(request: HttpRequest) -> HttpResponse:
    """Look clients up across every clinic; every search is audit-logged."""
    query = " ".join(request.GET.get("q", "").split())[:200]
    search = care.clients_find_logged(text=query, request=request) if query else None
    return TemplateResponse(
        request,
        "records/care_search.html",
        {
            "query": query,
            "search": search,
            "lookups": care.care_lookups(),
            "result_limit": care.RESULT_LIMIT,
            "is_lead": _is_care_lead(request.user),
        },
    )


@care_required
@require_GET
def care_client(request: HttpRequest, client_id: int) -> HttpResponse:
    """One client as Pet Owner Care sees it; opening it is audit-logged."""
    client = get_object_or_404(Client.objects.select_related("clinic", "merged_into"), pk=client_id)
    care.care_client_opened(client=client, request=request)
    # Times as the owner's clinic lives them (the page names the zone; the middleware ends it).
    timezone.activate(client.clinic.zone)
    events = record_events(client)
    outcomes = record_outcomes(client)
    return TemplateResponse(
        request,
        "records/care_client.html",
        {
            "client": client,
            "clinic": client.clinic,
            "pets": list(client.patients.order_by("-is_active", "is_deceased", "name", "id")),
            "pending": care.client_pending_updates(client),
            "panels": client_panels(request, client),
            "timeline": timeline(client, events=events, outcomes=outcomes),
            "timeline_limit": TIMELINE_LIMIT,
            "is_lead": _is_care_lead(request.user),
        },
    )


@care_required
@require_http_methods(["GET", "POST"])
def care_client_change(request: HttpRequest, client_id: int) -> HttpResponse:
    """Record a change the pet owner asks for (shipping name or address, email, phone)."""
    client = get_object_or_404(
        Client.objects.select_related("clinic"), pk=client_id, merged_into__isnull=True
    )
    if request.method == "POST":
        form = care.OwnerChangeForm(request.POST)
        if form.is_valid():
            data = form.cleaned_data
            try:
                changed = care.client_owner_change(
                    client=client,
                    actor=request.user,
                    values={name: data[name] for name in care.OWNER_FIELDS},
                    verification=data["verification"],
                    request=request,
                )
            except care.OwnerChangeError as exc:
                form.add_error(None, str(exc))
            else:
                labels = ", ".join(str(form.fields[name].label or name) for name in changed)
                messages.success(
                    request,
                    f"Saved at the owner's request: {labels}. The clinic sees it on the "
                    "client's history.",
                )
                return redirect("care:client", client_id=client.pk)
    else:
        form = care.OwnerChangeForm(initial=care.owner_change_initial(client))
    # The page shows whose record it is: opening it is logged, whether by the link or by a
    # change refused (a POST straight here must not show a client unlogged).
    care.care_client_opened(client=client, request=request)
    return TemplateResponse(
        request,
        "records/care_client_change.html",
        {"client": client, "clinic": client.clinic, "form": form},
    )


@care_required
@require_GET
def care_log(request: HttpRequest) -> HttpResponse:
    """Pet Owner Care leads: every search, client opened and change, with filters."""
    if not _is_care_lead(request.user):
        raise PermissionDenied("Pet Owner Care leads only.")
    form = care.CareLogFilterForm(request.GET or None)
    filters = form.filters() if request.GET else care.CareLogFilters()
    page = page_of(care.care_log(filters), CARE_LOG_PAGE_SIZE, request.GET.get("page"))
    return TemplateResponse(
        request,
        "records/care_log.html",
        {"form": form, "page": page, "actions": care.CARE_ACTIONS, "is_lead": True},
    )
