"""The second step of logging in, enrolment with a QR code, recovery codes and the user's own
reset. Thin doors onto clinics.two_factor.services."""

from __future__ import annotations

import segno
from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_http_methods, require_POST

from clinics.two_factor.policy import two_factor_required
from clinics.two_factor.services import (
    TwoFactorError,
    has_two_factor,
    recovery_codes_issue,
    totp_device_confirm,
    totp_device_start,
    totp_key_base32,
    two_factor_reset,
    two_factor_throttle_message,
    two_factor_verify,
)
from clinics.users import user_email_change


class TokenForm(forms.Form):
    token = forms.CharField(
        label="Code",
        max_length=20,
        help_text="The 6-digit code your authenticator app shows, or one of your recovery codes.",
        widget=forms.TextInput(attrs={"autocomplete": "one-time-code", "autofocus": True}),
    )


class ResetForm(TokenForm):
    password = forms.CharField(label="Your password", widget=forms.PasswordInput)


class EmailForm(forms.Form):
    email = forms.EmailField(label="New email", help_text="Password resets go here.")
    password = forms.CharField(label="Your password", widget=forms.PasswordInput)
    token = forms.CharField(
        label="Two-factor code",
        max_length=20,
        required=False,
        help_text="If two-factor is on: a code from your app, or a recovery code.",
    )


def _next_url(request: HttpRequest) -> str:
    target = request.POST.get("next") or request.GET.get("next") or ""
    if url_has_allowed_host_and_scheme(
        target, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return target
    return reverse("home")


@login_required
@require_http_methods(["GET", "POST"])
def verify(request: HttpRequest) -> HttpResponse:
    """The second step: a code from the app or a recovery code."""
    if not has_two_factor(request.user):
        return redirect(f"{reverse('two-factor-enrol')}?next={_next_url(request)}")
    form = TokenForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        if two_factor_verify(request=request, token=form.cleaned_data["token"]):
            return HttpResponseRedirect(_next_url(request))
        form.add_error(
            "token",
            two_factor_throttle_message(request.user)
            or "That code did not work. Codes change every 30 seconds; try the new one.",
        )
    return TemplateResponse(
        request, "registration/two_factor_verify.html", {"form": form, "next": _next_url(request)}
    )


@login_required
@require_http_methods(["GET", "POST"])
def enrol(request: HttpRequest) -> HttpResponse:
    """Set up an authenticator app: scan the QR code, confirm with one code."""
    if has_two_factor(request.user):
        return redirect("two-factor-security")
    device = totp_device_start(user=request.user)
    form = TokenForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            codes = totp_device_confirm(
                device=device, token=form.cleaned_data["token"], request=request
            )
        except TwoFactorError as exc:
            form.add_error("token", str(exc))
        else:
            return TemplateResponse(
                request,
                "registration/two_factor_codes.html",
                {"codes": codes, "next": _next_url(request), "first_time": True},
            )
    qr = segno.make(device.config_url, error="m").svg_data_uri(scale=5, border=2)
    return TemplateResponse(
        request,
        "registration/two_factor_enrol.html",
        {
            "form": form,
            "qr": qr,
            "key": totp_key_base32(device),
            "required": two_factor_required(request.user),
            "next": _next_url(request),
        },
    )


@login_required
def security(request: HttpRequest) -> HttpResponse:
    return _security_page(request, form=ResetForm(), email_form=EmailForm())


def _security_page(
    request: HttpRequest, *, form: forms.Form, email_form: forms.Form, status: int = 200
) -> HttpResponse:
    return TemplateResponse(
        request,
        "registration/two_factor_security.html",
        {
            "enrolled": has_two_factor(request.user),
            "required": two_factor_required(request.user),
            "form": form,
            "email_form": email_form,
        },
        status=status,
    )


@login_required
@require_POST
def email_own(request: HttpRequest) -> HttpResponse:
    """The user changes their own email, confirmed with their password (and a code when
    two-factor is on): an email is where password resets go."""
    form = EmailForm(request.POST)
    user = request.user
    confirmed = (
        form.is_valid()
        and user.check_password(form.cleaned_data["password"])  # type: ignore[union-attr]
        and (
            not has_two_factor(user)
            or (
                bool(form.cleaned_data["token"])
                and two_factor_verify(request=request, token=form.cleaned_data["token"])
            )
        )
    )
    if not confirmed:
        form.add_error(None, "Your password or the code did not match; nothing was changed.")
        return _security_page(request, form=ResetForm(), email_form=form, status=400)
    user_email_change(user=user, email=form.cleaned_data["email"], actor=user, request=request)
    messages.success(request, "Your email is changed.")
    return redirect("two-factor-security")


@login_required
@require_POST
def recovery_codes(request: HttpRequest) -> HttpResponse:
    """A new set of recovery codes (only from a verified session: the middleware sees to it
    for enrolled users, and this page refuses the others)."""
    if not request.user.is_verified():  # type: ignore[union-attr]
        return redirect("two-factor-security")
    codes = recovery_codes_issue(user=request.user, request=request)
    return TemplateResponse(
        request,
        "registration/two_factor_codes.html",
        {"codes": codes, "next": reverse("two-factor-security"), "first_time": False},
    )


@login_required
@require_POST
def reset_own(request: HttpRequest) -> HttpResponse:
    """The user removes their own authenticator, confirmed with their password and a code."""
    form = ResetForm(request.POST)
    user = request.user
    confirmed = (
        form.is_valid()
        and user.check_password(form.cleaned_data["password"])  # type: ignore[union-attr]
        and two_factor_verify(request=request, token=form.cleaned_data["token"])
    )
    if confirmed:
        two_factor_reset(user=user, actor=user, request=request)
        messages.success(request, "Two-factor is removed from your account.")
        return redirect("two-factor-enrol" if two_factor_required(user) else "home")
    form.add_error(None, "Your password or the code did not match; nothing was changed.")
    return _security_page(request, form=form, email_form=EmailForm(), status=400)
