"""Clinic staff's client pages: the searchable list, one client, undoing a merge."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.db.models import Prefetch, Q
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST

from clinics.access import clinic_for_user, get_for_clinic, member_object_or_404
from records.history import (
    TIMELINE_LIMIT,
    UNMERGE_ACTION,
    client_rows,
    field_sources,
    record_events,
    record_outcomes,
    timeline,
)
from records.merging import UnmergeError
from records.merging import client_unmerge as client_unmerge_service
from records.models import Client, ClientMerge, ClientQuerySet, ManualUpdate, Patient
from records.panels import client_panels
from records.suggestions import suggestions_rescore
from vetsync.lib.paging import page_of

PAGE_SIZE = 50


ListFilter = Callable[[ClientQuerySet], ClientQuerySet]
LIST_FILTERS: dict[str, tuple[str, ListFilter]] = {
    "pending": ("Has a pending manual update", ClientQuerySet.with_pending_update),
    "duplicate": ("Possible duplicate", ClientQuerySet.possible_duplicates),
    "customer": ("Home-delivery customers", ClientQuerySet.home_delivery),
    "merged": ("Merged (customer + PIMS)", ClientQuerySet.merged),
    "home_delivery": ("Home delivery only", ClientQuerySet.home_delivery_only),
    "pims": ("PIMS only", ClientQuerySet.pims_only),
    "inactive": ("Inactive", ClientQuerySet.inactive),
    "deceased": ("Has a deceased pet", ClientQuerySet.with_deceased_pet),
}
# Each order ends in the primary key (stable pages) and matches a (clinic, ...) index.
LIST_SORTS: dict[str, tuple[str, tuple[str, ...]]] = {
    "name": ("Name", ("last_name", "first_name", "id")),
    "postcode": ("Postcode", ("postcode", "id")),
    "added": ("Added", ("created_at", "id")),
}


def _list_sort(value: str) -> tuple[str, bool]:
    descending = value.startswith("-")
    key = value.removeprefix("-")
    return (key, descending) if key in LIST_SORTS else ("name", False)


SEARCH_LIMIT = 5000


@login_required
@require_GET
def client_list(request: HttpRequest, clinic_slug: str) -> HttpResponse:
    """The clinic's clients: search as you type, filters, sortable columns, pages.

    Pages are a deferred join: the ordered ids come from a covering index (count and offset
    never read a client row), then only the page's 50 rows are loaded. A search evaluates its
    matches once, capped at ``SEARCH_LIMIT``: beyond that, staff type more.
    """
    clinic = clinic_for_user(request, clinic_slug)
    query = request.GET.get("q", "").strip()[:200]
    chosen = request.GET.get("filter", "")
    chosen = chosen if chosen in LIST_FILTERS else ""
    sort, descending = _list_sort(request.GET.get("sort", ""))
    clients = Client.objects.for_clinic(clinic).current()
    if query:
        clients = clients.search(query, clinic=clinic)
    if chosen:
        clients = LIST_FILTERS[chosen][1](clients)
    order = [f"-{f}" if descending else f for f in LIST_SORTS[sort][1]]
    ids = clients.order_by(*order).values_list("pk", flat=True)
    truncated = False
    if query:
        found = list(ids[: SEARCH_LIMIT + 1])
        truncated = len(found) > SEARCH_LIMIT
        page = page_of(found[:SEARCH_LIMIT], PAGE_SIZE, request.GET.get("page"))
    else:
        page = page_of(ids, PAGE_SIZE, request.GET.get("page"))
    page_ids = list(page.object_list)
    rows = Client.objects.filter(pk__in=page_ids).prefetch_related(
        Prefetch(
            "patients",
            queryset=Patient.objects.only(
                "id", "client_id", "name", "species", "is_deceased"
            ).order_by("name", "id"),
        )
    )
    waiting = set(
        ManualUpdate.objects.pending()
        .filter(client_id__in=page_ids)
        .values_list("client_id", flat=True)
    )
    by_id = {client.pk: client for client in rows}
    for client in by_id.values():
        client.has_pending = client.pk in waiting  # type: ignore[attr-defined]
    clients_shown = [by_id[pk] for pk in page_ids if pk in by_id]  # in the page's order
    sort_links = {key: f"-{key}" if key == sort and not descending else key for key in LIST_SORTS}
    template = "records/client_list.html"
    if request.htmx.target == "client-results":  # type: ignore[attr-defined]
        template += "#client-results"
    return TemplateResponse(
        request,
        template,
        {
            "clinic": clinic,
            "page": page,
            "clients": clients_shown,
            "query": query,
            "truncated": truncated,
            "search_limit": SEARCH_LIMIT,
            "filter": chosen,
            "filters": [(key, label) for key, (label, _) in LIST_FILTERS.items()],
            "filter_label": LIST_FILTERS[chosen][0] if chosen else "",
            "sort": sort,
            "descending": descending,
            "sort_value": f"-{sort}" if descending else sort,
            "sort_links": sort_links,
            # Fifty rows link to their client: the URL is reversed once, not per row.
            "client_url_prefix": reverse(
                "records:client-detail", args=[clinic.slug, 0]
            ).removesuffix("0/"),
        },
    )


@login_required
@require_GET
def client_detail(request: HttpRequest, clinic_slug: str, client_id: int) -> HttpResponse:
    """One client: values and where each came from, what waits for staff, pets, merges,
    history."""
    client = member_object_or_404(
        request, clinic_slug, Client.objects.select_related("merged_into"), pk=client_id
    )
    clinic = client.clinic
    pets = list(client.patients.order_by("-is_active", "is_deceased", "name", "id"))
    pending = list(
        ManualUpdate.objects.pending()
        .filter(Q(client=client) | Q(candidate=client))
        .select_related("client", "patient", "candidate")
        .order_by("created_at", "id")
    )
    if any(_unscored(u) for u in pending):
        # Possible matches suggested before evidence was recorded get it, once.
        suggestions_rescore(clinic=clinic)
        for update in pending:
            update.refresh_from_db(fields=["proposed"])
    # Only a home-delivery customer has PIMS records merged into it: no query for the others.
    merges = (
        list(
            ClientMerge.objects.filter(customer=client)
            .select_related("merged_by", "run")
            .order_by("-created_at", "-id")
        )
        if client.customer_ref
        else []
    )
    events = record_events(client)
    outcomes = record_outcomes(client)
    sources = field_sources(client, events=events, outcomes=outcomes, merges=merges)
    unmerges = {
        e.after.get("merge"): e
        for e in events
        if e.action == UNMERGE_ACTION and isinstance(e.after, dict)
    }
    current_merge = merges[0] if merges and merges[0].pims_id == client.pims_id else None
    return TemplateResponse(
        request,
        "records/client_detail.html",
        {
            "clinic": clinic,
            "client": client,
            "rows": client_rows(client, sources=sources, pending=pending),
            "pending": [u for u in pending if u.kind != ManualUpdate.Kind.POSSIBLE_MATCH],
            "matches": [u for u in pending if u.kind == ManualUpdate.Kind.POSSIBLE_MATCH],
            "pets": pets,
            "merges": [
                _merge_story(m, client, pets, current=m == current_merge, undone=unmerges.get(m.pk))
                for m in merges
            ],
            "timeline": timeline(client, events=events, outcomes=outcomes),
            "timeline_limit": TIMELINE_LIMIT,
            "panels": client_panels(request, client),
            "here": request.get_full_path(),
        },
    )


def _unscored(update: ManualUpdate) -> bool:
    return update.kind == ManualUpdate.Kind.POSSIBLE_MATCH and "evidence" not in (
        update.proposed or {}
    )


def _merge_story(
    merge: ClientMerge, client: Client, pets: list[Patient], *, current: bool, undone: Any
) -> dict[str, Any]:
    """What a merge joined, for the client page: names, refs and pets from its snapshot."""
    snapshot = merge.snapshot or {}
    before = snapshot.get("customer") or {}
    candidate = snapshot.get("candidate") or {}
    pims = candidate or client.pims_seen or {}
    by_pims_id = {p.pims_id: p.name for p in pets if p.pims_id}
    by_pk = {p.pk: p for p in pets}
    if candidate:
        pims_pets = [p.get("name", "") for p in snapshot.get("candidate_pets", [])]
    else:
        pims_pets = [
            by_pims_id.get(pims_id, f"PIMS pet {pims_id}")
            for pims_id in snapshot.get("created_patients", [])
        ]
    linked = [
        p.get("name", "")
        for p in snapshot.get("pets", [])
        if p.get("id") in by_pk and by_pk[p["id"]].pims_id and not p.get("pims_id")
    ]
    return {
        "merge": merge,
        "customer_ref": before.get("customer_ref", client.customer_ref),
        "customer_name": f"{before.get('first_name', '')} {before.get('last_name', '')}".strip(),
        "pims_name": f"{pims.get('first_name', '')} {pims.get('last_name', '')}".strip(),
        "pims_copy_id": candidate.get("id"),
        "own_pets": [p.get("name", "") for p in snapshot.get("pets", [])],
        "pims_pets": pims_pets,
        "linked_pets": linked if current else [],
        "current": current,
        "undone": undone,
    }


@login_required
@require_POST
def client_unmerge(
    request: HttpRequest, clinic_slug: str, client_id: int, merge_id: int
) -> HttpResponse:
    """Undo a wrong merge: both records back as they were, the pair never suggested again."""
    clinic = clinic_for_user(request, clinic_slug)
    client = get_for_clinic(Client.objects.all(), clinic, pk=client_id)
    merge = get_for_clinic(ClientMerge.objects.all(), clinic, pk=merge_id, customer=client)
    try:
        pims_client = client_unmerge_service(
            merge=merge, actor=request.user, reason=request.POST.get("reason", ""), request=request
        )
    except UnmergeError as exc:
        messages.error(request, str(exc))
    else:
        messages.success(
            request,
            f"Unmerged. {client.full_name} is a home-delivery customer again; PIMS record "
            f"{merge.pims_id} is client “{pims_client.full_name}” of its own.",
        )
    return redirect("records:client-detail", clinic_slug=clinic.slug, client_id=client.pk)
