"""Sync runs: the clinic's runs, one run's progress and outcomes, retry, resume, sync now."""

from __future__ import annotations

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.db.models import Q
from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest, StreamingHttpResponse
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.views.decorators.http import require_GET, require_POST

from clinics.access import clinic_for_user, get_for_clinic
from clinics.audit import audit_log
from clinics.models import Clinic, Connector, Integration
from records.models import Client, Outcome, SyncRecordOutcome, SyncRun
from records.pulls import ezyvet_pull_start
from records.reports import REPORT_COLUMNS, report_rows
from records.sync import sync_lock_holder, sync_run_resume, sync_run_retry_quarantined
from records.tasks import ezyvet_pull_enqueue, sync_run_apply_enqueue
from vetsync.lib.csv_safe import formula_safe_writer
from vetsync.lib.numbers import id_from
from vetsync.lib.paging import page_of

PAGE_SIZE = 50
# The quarantine section lists this many; the outcomes below page through every one.
QUARANTINE_SHOWN = 200
# A longer search is cut here: no PIMS id, name or phone is longer.
SEARCH_MAX = 200


@login_required
@require_GET
def run_list(request: HttpRequest, clinic_slug: str) -> HttpResponse:
    """What changed: every run of the clinic, newest first."""
    clinic = clinic_for_user(request, clinic_slug)
    runs = SyncRun.objects.for_clinic(clinic).order_by("-created_at", "-id")
    page = page_of(runs, PAGE_SIZE, request.GET.get("page"))
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
    shown = request.GET.get("outcome", "")
    query = " ".join(request.GET.get("q", "").split())[:SEARCH_MAX]
    outcomes = run.outcomes.select_related("client", "patient").order_by("id")
    if shown in Outcome.values:
        outcomes = outcomes.filter(outcome=shown)
    if query:
        outcomes = outcomes.filter(_record_matching(query, clinic))
    quarantined = run.outcomes.filter(outcome=Outcome.QUARANTINED).select_related("retried_in")
    context = {
        "clinic": clinic,
        "run": run,
        "outcome_choices": Outcome.choices,
        "shown": shown,
        "query": query,
        "page": page_of(outcomes, PAGE_SIZE, request.GET.get("page")),
        "quarantined": quarantined[:QUARANTINE_SHOWN],
        "quarantine_shown": QUARANTINE_SHOWN,
        "quarantined_label": Outcome.QUARANTINED.label,
        "quarantined_open": quarantined.filter(retried_in__isnull=True, raw__isnull=False).count(),
        "retention_days": settings.SYNC_HISTORY_RETENTION_DAYS,
    }
    template = "records/sync_run.html"
    # While the run works, every section (progress, counts, quarantine, outcomes) is one
    # fragment that polls itself; the fragment of a finished run no longer polls.
    if request.htmx.target == "run-live":  # type: ignore[attr-defined]
        template += "#run-live"
    return TemplateResponse(request, template, context)


def _record_matching(query: str, clinic: Clinic) -> Q:
    """The outcomes of a record with this PIMS id, or of a client the client list's search
    finds (name, email, phone, postcode, store ref, pet's name), the client's pets included.

    A quarantined record is found by its PIMS id, or by its owner's as the batch gave it."""
    ids = {query, query.upper()}
    return (
        Q(pims_id__in=ids)
        | Q(client_id__in=Client.objects.search_ids(query, clinic=clinic))
        | Q(outcome=Outcome.QUARANTINED, kind=SyncRecordOutcome.Kind.PATIENT, raw__pims_id__in=ids)
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
    writer = formula_safe_writer(_Echo())
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
    given = request.POST.getlist("outcome")
    chosen = [i for i in map(id_from, given) if i is not None]
    if len(chosen) != len(given):
        return HttpResponseBadRequest("The records to retry must be chosen from the run's list.")
    retry = sync_run_retry_quarantined(run=run, actor=request.user, outcome_ids=chosen or None)
    if retry is None:
        messages.info(request, "Nothing left to retry in this run.")
        return redirect(run)
    sync_run_apply_enqueue(retry)
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
    resumed = run.status in (SyncRun.Status.FETCHING, SyncRun.Status.QUEUED)
    action = "sync.run_resumed" if resumed else "sync.run_resume_refused"
    audit_log(action=action, request=request, clinic=clinic, obj=run)
    if run.status == SyncRun.Status.FETCHING:
        ezyvet_pull_enqueue(run)
        messages.success(request, f"Run {run.pk} is pulling from ezyVet again.")
    elif run.status == SyncRun.Status.QUEUED:
        sync_run_apply_enqueue(run)
        messages.success(request, f"Run {run.pk} resumes from record {run.position + 1}.")
    else:
        messages.error(request, "This run's records were not kept, so it cannot be resumed.")
    return redirect(run)


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
        ezyvet_pull_enqueue(run)
        messages.success(request, "Sync started. This page shows its progress.")
    else:
        messages.info(request, "A sync is already under way; here it is.")
    return redirect(run)
