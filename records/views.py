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
from django.db.models import Q, QuerySet
from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST

from clinics.access import clinic_for_user, get_for_clinic, is_pet_owner_care
from clinics.audit import audit_log
from clinics.models import Connector, Integration
from records.forms import EDIT_FORMS, ReasonForm
from records.models import Client, ManualUpdate, Outcome, SyncRun
from records.pulls import ezyvet_pull_start
from records.reports import REPORT_COLUMNS, report_rows
from records.services import (
    ManualUpdateError,
    manual_update_accept,
    manual_update_counts,
    manual_update_dismiss,
    possible_match_confirm,
    possible_match_reject,
)
from records.sync import sync_lock_holder, sync_run_resume, sync_run_retry_quarantined
from records.tasks import ezyvet_pull, sync_run_apply

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
        if action == "accept":
            manual_update_accept(update=update, actor=request.user, request=request)
        elif action == "edit":
            form = EDIT_FORMS[update.kind](request.POST) if update.kind in EDIT_FORMS else None
            if form is None or not form.is_valid():
                raise ManualUpdateError(_form_error(form))
            manual_update_accept(
                update=update, actor=request.user, values=form.cleaned_data, request=request
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
