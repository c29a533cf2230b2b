"""The manual-update queue: changes from the PIMS held for staff, and possible matches."""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_GET, require_POST

from clinics.access import clinic_for_user, get_for_clinic
from records.forms import EDIT_FORMS, ReasonForm, RenameForm
from records.models import ManualUpdate
from records.services import (
    ManualUpdateError,
    manual_update_accept,
    manual_update_counts,
    manual_update_dismiss,
    possible_match_confirm,
    possible_match_reject,
)
from records.suggestions import suggestions_rescore
from vetsync.lib.paging import page_of

PAGE_SIZE = 50


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
        "page": page_of(updates, PAGE_SIZE, request.GET.get("page")),
    }


@login_required
@require_GET
def update_queue(request: HttpRequest, clinic_slug: str) -> HttpResponse:
    """Changes from the PIMS held for staff, and possible matches, side by side."""
    clinic = clinic_for_user(request, clinic_slug)
    # Possible matches suggested before the matcher recorded evidence get it, once.
    suggestions_rescore(clinic=clinic)
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
        if not done:
            return TemplateResponse(request, "records/update_queue.html#update-row", context)
        # Done: the whole list again (counts, "in all", the empty state), with what happened
        # said where the card was, for eyes and screen readers alike.
        context.update({"notice": _done_message(update), "oob": True, "done": False, "error": ""})
        response = TemplateResponse(request, "records/update_queue.html#update-list", context)
        response["HX-Retarget"] = "#update-list"
        response["HX-Reswap"] = "outerHTML"
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
