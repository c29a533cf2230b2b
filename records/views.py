"""Clinic staff's record pages and Pet Owner Care's lookup. Thin doors onto queries and services."""

from __future__ import annotations

import csv
from collections.abc import Callable
from functools import wraps
from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.db.models import Prefetch, Q
from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from django.shortcuts import get_object_or_404, redirect
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from clinics.access import clinic_for_user, get_for_clinic, is_pet_owner_care
from clinics.audit import audit_log
from clinics.models import Connector, Integration
from records import care
from records.forms import EDIT_FORMS, PetRenameForm, ReasonForm, RenameForm
from records.history import (
    TIMELINE_LIMIT,
    UNMERGE_ACTION,
    client_rows,
    field_sources,
    name_history,
    patient_rows,
    record_events,
    record_outcomes,
    timeline,
    weight_chart,
)
from records.models import (
    CARE_LOG_PERMISSION,
    Client,
    ClientMerge,
    ClientQuerySet,
    ManualUpdate,
    Outcome,
    Patient,
    SyncRun,
)
from records.panels import client_panels, patient_panels
from records.pulls import ezyvet_pull_start
from records.reports import REPORT_COLUMNS, report_rows
from records.services import (
    ManualUpdateError,
    UnmergeError,
    manual_update_accept,
    manual_update_counts,
    manual_update_dismiss,
    patient_rename,
    possible_match_confirm,
    possible_match_reject,
)
from records.services import client_unmerge as client_unmerge_service
from records.sync import sync_lock_holder, sync_run_resume, sync_run_retry_quarantined
from records.tasks import ezyvet_pull, sync_run_apply

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
        page = Paginator(found[:SEARCH_LIMIT], PAGE_SIZE).get_page(request.GET.get("page"))
    else:
        page = Paginator(ids, PAGE_SIZE).get_page(request.GET.get("page"))
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
        },
    )


@login_required
@require_GET
def client_detail(request: HttpRequest, clinic_slug: str, client_id: int) -> HttpResponse:
    """One client: values and where each came from, what waits for staff, pets, merges,
    history."""
    clinic = clinic_for_user(request, clinic_slug)
    client = get_for_clinic(Client.objects.select_related("merged_into"), clinic, pk=client_id)
    pets = list(client.patients.order_by("-is_active", "is_deceased", "name", "id"))
    pending = list(
        ManualUpdate.objects.pending()
        .filter(Q(client=client) | Q(candidate=client))
        .select_related("client", "patient", "candidate")
        .order_by("created_at", "id")
    )
    merges = list(
        ClientMerge.objects.filter(customer=client)
        .select_related("merged_by", "run")
        .order_by("-created_at", "-id")
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


WEIGHT_LIMIT = 200


@login_required
@require_GET
def patient_detail(request: HttpRequest, clinic_slug: str, patient_id: int) -> HttpResponse:
    """One pet: identity and provenance, owner, weight chart, name history, timeline."""
    clinic = clinic_for_user(request, clinic_slug)
    pet = get_for_clinic(Patient.objects.select_related("client"), clinic, pk=patient_id)
    weights = list(pet.weights.order_by("-recorded_at", "-id")[:WEIGHT_LIMIT])
    weights.reverse()
    pending = list(
        ManualUpdate.objects.pending()
        .filter(patient=pet)
        .select_related("client", "patient")
        .order_by("created_at", "id")
    )
    merges = list(ClientMerge.objects.filter(customer_id=pet.client_id).order_by("created_at"))
    events = record_events(pet)
    outcomes = record_outcomes(pet)
    sources = field_sources(pet, events=events, outcomes=outcomes, merges=merges)
    return TemplateResponse(
        request,
        "records/patient_detail.html",
        {
            "clinic": clinic,
            "pet": pet,
            "owner": pet.client,
            "rows": patient_rows(
                pet,
                sources=sources,
                pending=pending,
                latest_weight=weights[-1] if weights else None,
            ),
            "pending": pending,
            "chart": weight_chart(weights, pet.weight_unit),
            "weights": list(reversed(weights)),
            "renames": name_history(pet, events),
            "timeline": timeline(pet, events=events, outcomes=outcomes),
            "timeline_limit": TIMELINE_LIMIT,
            "panels": patient_panels(request, pet),
            "here": request.get_full_path(),
        },
    )


@login_required
@require_http_methods(["GET", "POST"])
def patient_rename_view(request: HttpRequest, clinic_slug: str, patient_id: int) -> HttpResponse:
    """Rename a pet by hand: the same animal, a reason, and its prescriptions re-drafted."""
    clinic = clinic_for_user(request, clinic_slug)
    pet = get_for_clinic(Patient.objects.select_related("client"), clinic, pk=patient_id)
    form = PetRenameForm(request.POST or None, initial={"name": pet.name})
    if request.method == "POST" and form.is_valid():
        try:
            patient_rename(
                patient=pet,
                name=form.cleaned_data["name"],
                reason=form.cleaned_data["reason"],
                same_pet=form.cleaned_data["same_pet"],
                actor=request.user,
                request=request,
            )
        except ManualUpdateError as exc:
            form.add_error(None, str(exc))
        else:
            messages.success(
                request,
                f"Renamed to {form.cleaned_data['name']}. Any open prescriptions were ended "
                "and re-drafted under the new name for a vet to approve.",
            )
            return redirect("records:patient-detail", clinic_slug=clinic.slug, patient_id=pet.pk)
    return TemplateResponse(
        request,
        "records/patient_rename.html",
        {"clinic": clinic, "pet": pet, "form": form, "panels": patient_panels(request, pet)},
    )


def care_required(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """Pet Owner Care only; clinic staff are refused."""

    @wraps(view)
    @login_required
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if not is_pet_owner_care(request.user):
            raise PermissionDenied("Pet Owner Care only.")
        return view(request, *args, **kwargs)

    return wrapper


# --- sync runs -----------------------------------------------------------------------------


@login_required
@require_GET
def run_list(request: HttpRequest, clinic_slug: str) -> HttpResponse:
    """What changed: every run of the clinic, newest first."""
    clinic = clinic_for_user(request, clinic_slug)
    runs = SyncRun.objects.for_clinic(clinic).order_by("-created_at", "-id")
    page = Paginator(runs, PAGE_SIZE).get_page(request.GET.get("page"))
    return TemplateResponse(
        request,
        "records/sync_runs.html",
        {
            "clinic": clinic,
            "page": page,
            "integration": Integration.objects.filter(clinic=clinic).first(),
            "running": sync_lock_holder(clinic),
        },
    )


@login_required
@require_GET
def run_detail(request: HttpRequest, clinic_slug: str, run_id: int) -> HttpResponse:
    """One run: live progress while it works, then its counts and per-record outcomes."""
    clinic = clinic_for_user(request, clinic_slug)
    run = get_for_clinic(SyncRun.objects.all(), clinic, pk=run_id)
    template = "records/sync_run.html"
    if request.htmx.target == "run-progress":  # type: ignore[attr-defined]
        return TemplateResponse(request, template + "#run-progress", {"clinic": clinic, "run": run})
    shown = request.GET.get("outcome", "")
    outcomes = run.outcomes.select_related("client", "patient").order_by("id")
    if shown in Outcome.values:
        outcomes = outcomes.filter(outcome=shown)
    quarantined = run.outcomes.filter(outcome=Outcome.QUARANTINED).select_related("retried_in")
    return TemplateResponse(
        request,
        template,
        {
            "clinic": clinic,
            "run": run,
            "outcome_choices": Outcome.choices,
            "shown": shown,
            "page": Paginator(outcomes, PAGE_SIZE).get_page(request.GET.get("page")),
            "quarantined": quarantined[:200],
            "quarantined_open": quarantined.filter(
                retried_in__isnull=True, raw__isnull=False
            ).count(),
        },
    )


class _Echo:
    def write(self, value: str) -> str:
        return value


@login_required
@require_GET
def run_report(request: HttpRequest, clinic_slug: str, run_id: int) -> StreamingHttpResponse:
    """The run's per-record outcomes as CSV (the same rows as ``manage.py sync_report``)."""
    clinic = clinic_for_user(request, clinic_slug)
    run = get_for_clinic(SyncRun.objects.all(), clinic, pk=run_id)
    writer = csv.writer(_Echo())
    lines = (writer.writerow(row) for row in [REPORT_COLUMNS, *report_rows(run, as_lists=True)])
    response = StreamingHttpResponse(lines, content_type="text/csv")
    response["Content-Disposition"] = f'attachment; filename="sync-run-{run.pk}.csv"'
    return response


@login_required
@require_POST
def run_retry(request: HttpRequest, clinic_slug: str, run_id: int) -> HttpResponse:
    """Send the run's quarantined records (all, or those ticked) through the engine again."""
    clinic = clinic_for_user(request, clinic_slug)
    run = get_for_clinic(SyncRun.objects.all(), clinic, pk=run_id)
    chosen = [int(v) for v in request.POST.getlist("outcome") if v.isdigit()]
    retry = sync_run_retry_quarantined(run=run, actor=request.user, outcome_ids=chosen or None)
    if retry is None:
        messages.info(request, "Nothing left to retry in this run.")
        return redirect(run)
    sync_run_apply.delay_on_commit(retry.pk)
    messages.success(request, f"Retrying {retry.total} record(s) as run {retry.pk}.")
    return redirect(retry)


@login_required
@require_POST
def run_resume(request: HttpRequest, clinic_slug: str, run_id: int) -> HttpResponse:
    """Resume a failed run from where it stopped."""
    clinic = clinic_for_user(request, clinic_slug)
    run = get_for_clinic(SyncRun.objects.all(), clinic, pk=run_id)
    if run.status != SyncRun.Status.FAILED:
        messages.info(request, "Only a failed run can be resumed.")
        return redirect(run)
    sync_run_resume(run=run)
    audit_log(action="sync.run_resumed", request=request, clinic=clinic, obj=run)
    sync_run_apply.delay_on_commit(run.pk)
    messages.success(request, f"Run {run.pk} resumes from record {run.position + 1}.")
    return redirect(run)


# --- the manual-update queue ---------------------------------------------------------------


def _queue_context(request: HttpRequest, clinic: Any, kind: str) -> dict[str, Any]:
    updates = (
        ManualUpdate.objects.for_clinic(clinic)
        .pending()
        .select_related("client", "patient", "candidate")
        .order_by("created_at", "id")
    )
    if kind in ManualUpdate.Kind.values:
        updates = updates.filter(kind=kind)
    return {
        "clinic": clinic,
        "kind": kind,
        "kinds": ManualUpdate.Kind.choices,
        "counts": manual_update_counts(clinic=clinic),
        "page": Paginator(updates, PAGE_SIZE).get_page(request.GET.get("page")),
    }


@login_required
@require_GET
def update_queue(request: HttpRequest, clinic_slug: str) -> HttpResponse:
    """Changes from the PIMS held for staff, and possible matches, side by side."""
    clinic = clinic_for_user(request, clinic_slug)
    context = _queue_context(request, clinic, request.GET.get("kind", ""))
    template = "records/update_queue.html"
    if request.htmx.target == "update-list":  # type: ignore[attr-defined]
        template += "#update-list"
    return TemplateResponse(request, template, context)


@login_required
@require_POST
def update_action(request: HttpRequest, clinic_slug: str, update_id: int) -> HttpResponse:
    """Accept, edit then accept, dismiss, confirm a match or reject it: one door for all."""
    clinic = clinic_for_user(request, clinic_slug)
    update = get_for_clinic(
        ManualUpdate.objects.select_related("client", "patient", "candidate"), clinic, pk=update_id
    )
    action = request.POST.get("action", "")
    error = ""
    try:
        if action in ("accept", "edit"):
            values = None
            if action == "edit":
                form = EDIT_FORMS[update.kind](request.POST) if update.kind in EDIT_FORMS else None
                if form is None or not form.is_valid():
                    raise ManualUpdateError(_form_error(form))
                values = form.cleaned_data
            rename: dict[str, Any] = {}
            if update.kind == ManualUpdate.Kind.PET_NAME:
                rename_form = RenameForm(request.POST)
                if not rename_form.is_valid():
                    raise ManualUpdateError(_form_error(rename_form))
                rename = rename_form.cleaned_data
            manual_update_accept(
                update=update, actor=request.user, values=values, request=request, **rename
            )
        elif action == "dismiss":
            reason = ReasonForm(request.POST)
            if not reason.is_valid():
                raise ManualUpdateError(_form_error(reason))
            manual_update_dismiss(
                update=update,
                actor=request.user,
                reason=reason.cleaned_data["reason"],
                request=request,
            )
        elif action == "confirm":
            possible_match_confirm(update=update, actor=request.user, request=request)
        elif action == "reject":
            possible_match_reject(
                update=update,
                actor=request.user,
                reason=request.POST.get("reason", ""),
                request=request,
            )
        else:
            raise ManualUpdateError("Choose an action.")
    except ManualUpdateError as exc:
        error = str(exc)
    update.refresh_from_db()
    done = update.status != ManualUpdate.Status.PENDING
    if request.htmx:  # type: ignore[attr-defined]
        context = _queue_context(request, clinic, request.POST.get("kind", ""))
        context.update({"update": update, "error": error, "done": done})
        response = TemplateResponse(request, "records/update_queue.html#update-row", context)
        response["HX-Trigger"] = "manual-updates-changed"
        return response
    if error:
        messages.error(request, error)
    else:
        messages.success(request, _done_message(update))
    back = request.POST.get("next", "")
    if back and url_has_allowed_host_and_scheme(
        back, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return redirect(back)  # acted on from a client's or pet's page: back there
    return redirect(_queue_url(clinic))


def _queue_url(clinic: Any) -> str:
    return reverse("records:update-queue", kwargs={"clinic_slug": clinic.slug})


def _form_error(form: Any) -> str:
    if form is None:
        return "This kind of update cannot be edited."
    parts = []
    for name, errors in form.errors.items():
        field = form.fields.get(name)
        label = (field.label if field and field.label else name.replace("_", " ")).capitalize()
        parts.append(f"{label}: {' '.join(errors)}")
    return " ".join(parts)


def _done_message(update: ManualUpdate) -> str:
    target = update.patient or update.client
    return f"{update.get_kind_display()} for {target}: {update.get_status_display().lower()}."


@login_required
@require_POST
def sync_now(request: HttpRequest, clinic_slug: str) -> HttpResponse:
    """Pull from ezyVet now; if a sync is already under way, show that one instead."""
    clinic = clinic_for_user(request, clinic_slug)
    integration = Integration.objects.filter(clinic=clinic).first()
    if integration is None or integration.connector != Connector.EZYVET:
        messages.info(
            request,
            "Your practice system's agent sends data on its own schedule; VetSync cannot "
            "ask it for a batch.",
        )
        return redirect("records:run-list", clinic_slug=clinic.slug)
    if not integration.has_credentials or integration.status == Integration.Status.PAUSED:
        messages.error(
            request,
            "The ezyVet connection is not ready (no credentials, or paused). The onboarding "
            "team or your clinic admin can connect it.",
        )
        return redirect("records:run-list", clinic_slug=clinic.slug)
    run, created = ezyvet_pull_start(integration=integration, requested_by=request.user)
    if created:
        audit_log(action="sync.pull_requested", request=request, clinic=clinic, obj=run)
        ezyvet_pull.delay_on_commit(run.pk)
        messages.success(request, "Sync started. This page shows its progress.")
    else:
        messages.info(request, "A sync is already under way; here it is.")
    return redirect(run)


# --- Pet Owner Care (/care/) ---------------------------------------------------------------

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
        care.care_client_opened(client=client, request=request)
        form = care.OwnerChangeForm(initial=care.owner_change_initial(client))
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
    page = Paginator(care.care_log(filters), CARE_LOG_PAGE_SIZE).get_page(request.GET.get("page"))
    return TemplateResponse(
        request,
        "records/care_log.html",
        {"form": form, "page": page, "actions": care.CARE_ACTIONS, "is_lead": True},
    )
