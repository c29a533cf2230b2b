"""The clinic's own integration page: status for everyone, the ezyVet upload for its admins."""

from __future__ import annotations

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.views.decorators.http import require_http_methods

from clinics.access import clinic_for_user
from clinics.models import Connector, Integration
from clinics.services import CredentialsError, integration_connect_ezyvet

MAX_CREDENTIALS_FILE = 64 * 1024


class CredentialsUploadForm(forms.Form):
    credentials_file = forms.FileField(
        label="ezyVet credentials file",
        help_text="The client_credentials.txt your practice downloaded from ezyVet "
        "(Admin → Integrations → API). VetSync tries it first and keeps it only if ezyVet "
        "accepts it; it is stored encrypted and never shown again.",
    )
    keep_untried = forms.BooleanField(
        required=False,
        label="If ezyVet cannot be reached to try it, save this file anyway",
        help_text="Only if you are sure it is the latest file: it replaces the credentials "
        "in use without being tried.",
    )

    def clean_credentials_file(self) -> str:
        upload = self.cleaned_data["credentials_file"]
        if upload.size > MAX_CREDENTIALS_FILE:
            raise forms.ValidationError("That file is too big to be an ezyVet credentials file.")
        try:
            return str(upload.read().decode("utf-8-sig"))
        except UnicodeDecodeError as exc:
            raise forms.ValidationError(
                "The file is not text; upload the .txt ezyVet gave."
            ) from exc


@login_required
@require_http_methods(["GET", "POST"])
def integration_detail(request: HttpRequest, clinic_slug: str) -> HttpResponse:
    """How the clinic's PIMS is connected; a clinic admin uploads ezyVet credentials here."""
    clinic = clinic_for_user(request, clinic_slug)
    integration = Integration.objects.filter(clinic=clinic).first()
    can_upload = (
        integration is not None
        and integration.connector == Connector.EZYVET
        and request.membership.is_clinic_admin  # type: ignore[attr-defined]
    )
    form = CredentialsUploadForm()
    check = None
    if request.method == "POST":
        if not can_upload:
            raise PermissionDenied("Only a clinic admin can connect ezyVet.")
        assert integration is not None
        form = CredentialsUploadForm(request.POST, request.FILES)
        if form.is_valid():
            try:
                check = integration_connect_ezyvet(
                    integration=integration,
                    text=form.cleaned_data["credentials_file"],
                    keep_untried=form.cleaned_data["keep_untried"],
                    request=request,
                )
            except CredentialsError as exc:
                form.add_error("credentials_file", str(exc))
            else:
                if check.ok:
                    messages.success(
                        request,
                        "Connected: ezyVet issued a token and every scope VetSync needs works.",
                    )
                    return redirect("clinics:integration", clinic_slug=clinic.slug)
                if check.kept:
                    messages.warning(
                        request,
                        "ezyVet could not be reached, so the file was saved without being "
                        "tried, as you asked. The next sync will use it.",
                    )
                    return redirect("clinics:integration", clinic_slug=clinic.slug)
    return TemplateResponse(
        request,
        "clinics/integration.html",
        {
            "clinic": clinic,
            "integration": integration,
            "can_upload": can_upload,
            "form": form,
            "check": check,
        },
    )
