"""Login throttling (django-axes), two-factor, session timeout and the proxy header (issue 17)."""

from __future__ import annotations

from typing import Any

import pytest
from axes.models import AccessAttempt
from django.conf import settings
from django.test import Client as HttpClient
from django.urls import reverse

from clinics.models import AuditEvent
from tests.conftest import World, login
from tests.factories import UserFactory
from tests.two_factor import code_for, enrolled_device

PASSWORD = "pw-for-tests-only"


def attempt(client: HttpClient, url: str, username: str, password: str, ip: str) -> Any:
    return client.post(url, {"username": username, "password": password}, REMOTE_ADDR=ip)


@pytest.mark.parametrize("url", ["/accounts/login/", "/admin/login/"])
def test_failed_logins_lock_that_username_on_that_address_only(world: World, url: str) -> None:
    # The admin's login takes staff only: the onboarding team there, clinic users here.
    locked_user, other_user = ("alder-staff", "alder-vet")
    if url.startswith("/admin/"):
        UserFactory(username="onboarder-2", is_staff=True)
        locked_user, other_user = ("onboarder", "onboarder-2")
    client = HttpClient()
    for _ in range(settings.AXES_FAILURE_LIMIT):
        attempt(client, url, locked_user, "wrong", "10.0.0.5")

    locked = attempt(client, url, locked_user, PASSWORD, "10.0.0.5")
    assert locked.status_code == 429
    page = locked.content.decode()
    assert "Too many failed attempts" in page and "15 minutes" in page
    assert locked["Retry-After"] == "900"
    # Someone else on that address, and the same person elsewhere, are not locked out.
    assert attempt(HttpClient(), url, other_user, PASSWORD, "10.0.0.5").status_code == 302
    assert attempt(HttpClient(), url, locked_user, PASSWORD, "10.9.9.9").status_code == 302
    assert AuditEvent.objects.filter(action="auth.login_failed").count() >= 5
    locked_out = AuditEvent.objects.filter(action="auth.locked_out").first()
    assert locked_out is not None
    assert locked_out.after["username"] == locked_user
    assert locked_out.after["ip_address"] == "10.0.0.5"


def test_deleting_the_attempt_in_the_admin_unlocks_and_is_audited(world: World) -> None:
    client = HttpClient()
    for _ in range(settings.AXES_FAILURE_LIMIT):
        attempt(client, "/accounts/login/", "alder-staff", "wrong", "10.0.0.6")
    row = AccessAttempt.objects.get(username="alder-staff")
    admin = login(world.onboarding)
    listing = admin.get(reverse("admin:axes_accessattempt_changelist")).content.decode()
    assert "alder-staff" in listing

    response = admin.post(
        reverse("admin:axes_accessattempt_delete", args=[row.pk]), {"post": "yes"}
    )

    assert response.status_code == 302
    assert (
        attempt(client, "/accounts/login/", "alder-staff", PASSWORD, "10.0.0.6").status_code == 302
    )
    unlock = AuditEvent.objects.get(action="auth.unlocked")
    assert unlock.actor == world.onboarding and unlock.before["username"] == "alder-staff"


def test_password_reset_requests_are_limited(world: World, settings: Any) -> None:
    settings.PASSWORD_RESET_LIMIT_PER_HOUR = 2
    import secrets

    # Counted in the cache (Redis on CI), which outlives the test: keys of its own.
    client = HttpClient()
    email = f"reset-limit-{secrets.token_hex(4)}@alder.example"
    address = "10.{}.{}.{}".format(*secrets.token_bytes(3))
    answers = [
        client.post(reverse("password_reset"), {"email": email}, REMOTE_ADDR=address)
        for _ in range(3)
    ]
    assert [a.status_code for a in answers] == [302, 302, 429]
    assert "Too many reset requests" in answers[-1].content.decode()
    assert answers[-1]["Retry-After"] == "3600"
    assert AuditEvent.objects.filter(action="auth.password_reset_throttled").count() == 1


def test_a_vet_must_enrol_before_any_page_then_passes_the_code_at_each_login(
    world: World,
) -> None:
    client = HttpClient()
    client.post("/accounts/login/", {"username": "alder-vet", "password": PASSWORD})
    dashboard = reverse("clinic-dashboard", args=["alder"])

    to_enrol = client.get(dashboard)
    assert to_enrol.status_code == 302 and "/accounts/two-factor/enrol/" in to_enrol["Location"]
    page = client.get(to_enrol["Location"]).content.decode()
    assert 'src="data:image/svg+xml' in page and "Enter the 6-digit code" in page

    from clinics.two_factor.services import totp_device_start

    device = totp_device_start(user=world.a.vet_user)
    wrong = client.post(reverse("two-factor-enrol"), {"token": "000000"})
    assert "did not match" in wrong.content.decode()
    throttled = client.post(reverse("two-factor-enrol"), {"token": code_for(device)})
    assert "Too many wrong codes: wait" in throttled.content.decode()
    device.throttle_reset()  # as the wait would
    done = client.post(reverse("two-factor-enrol"), {"token": code_for(device), "next": dashboard})
    codes = done.content.decode()
    assert "Two-factor is on" in codes and codes.count("<code>") == 10
    assert client.get(dashboard).status_code == 200
    assert AuditEvent.objects.filter(action="auth.two_factor_enrolled").exists()

    again = HttpClient()
    again.post("/accounts/login/", {"username": "alder-vet", "password": PASSWORD})
    to_verify = again.get(dashboard)
    assert "/accounts/two-factor/verify/" in to_verify["Location"]
    assert again.post(reverse("two-factor-verify"), {"token": "123456"}).status_code == 200
    assert again.get(dashboard).status_code == 302
    device.refresh_from_db()
    device.throttle_reset()  # as the wait after a wrong code would
    ok = again.post(reverse("two-factor-verify"), {"token": code_for(device), "next": dashboard})
    assert ok.status_code == 302 and ok["Location"] == dashboard
    assert again.get(dashboard).status_code == 200


def test_a_recovery_code_works_once(world: World) -> None:
    from clinics.two_factor.services import recovery_codes_issue

    enrolled_device(world.a.vet_user)
    code = recovery_codes_issue(user=world.a.vet_user)[0]
    first, second = HttpClient(), HttpClient()
    for client in (first, second):
        client.force_login(world.a.vet_user)
    assert first.post(reverse("two-factor-verify"), {"token": code}).status_code == 302
    assert second.post(reverse("two-factor-verify"), {"token": code}).status_code == 200
    used = AuditEvent.objects.get(action="auth.recovery_code_used")
    assert used.after == {"codes_left": 9}


@pytest.mark.parametrize("who", ["vet_user", "admin", "onboarding", "care", "superuser"])
def test_who_must_use_two_factor(world: World, who: str) -> None:
    from clinics.models import Membership, Role
    from clinics.two_factor.policy import two_factor_required

    if who == "vet_user":
        user = world.a.vet_user
    elif who == "admin":
        user = UserFactory(username="alder-admin")
        Membership.objects.create(user=user, clinic=world.a.clinic, role=Role.ADMIN)
    elif who == "superuser":
        user = UserFactory(username="root", is_superuser=True)
    else:
        user = getattr(world, who)
    assert two_factor_required(user)
    assert not two_factor_required(world.a.staff)  # offered, not required


def test_staff_may_use_the_site_without_two_factor_and_may_turn_it_on(world: World) -> None:
    client = login(world.a.staff)
    assert client.get(reverse("clinic-dashboard", args=["alder"])).status_code == 200
    page = client.get(reverse("two-factor-security")).content.decode()
    assert "optional for clinic staff" in page


def test_a_user_resets_their_own_two_factor_only_with_password_and_code(world: World) -> None:
    device = enrolled_device(world.a.staff)
    client = login(world.a.staff)
    refused = client.post(reverse("two-factor-reset"), {"password": "wrong", "token": "1"})
    assert refused.status_code == 400
    assert world.a.staff.totpdevice_set.exists()
    done = client.post(
        reverse("two-factor-reset"), {"password": PASSWORD, "token": code_for(device)}
    )
    assert done.status_code == 302
    assert not world.a.staff.totpdevice_set.exists()
    assert AuditEvent.objects.get(action="auth.two_factor_reset").actor == world.a.staff


def test_sessions_end_when_idle_and_the_proxy_header_is_not_trusted_by_default() -> None:
    assert settings.SESSION_COOKIE_AGE == 30 * 60
    assert not hasattr(settings, "SECURE_PROXY_SSL_HEADER") or (
        settings.SECURE_PROXY_SSL_HEADER is None
    )


def test_the_demo_prints_how_to_log_in_as_each_user_with_their_two_factor_key(db: None) -> None:
    import io
    import re
    import time
    from base64 import b32decode

    from django.core.management import call_command
    from django_otp.oath import TOTP

    out = io.StringIO()
    call_command("seed_demo", clients=5, stdout=out)
    lines = {line.split()[0]: line for line in out.getvalue().splitlines() if "  " in line[:3]}
    assert "two-factor key" not in lines["multi-clinic-staff"]  # staff: offered only
    for username in ("riverside-vet", "riverside-admin", "onboarding", "care"):
        assert "two-factor key" in lines[username], lines.get(username)
    key = re.search(r"two-factor key (\w+)", lines["riverside-vet"]).group(1)
    client = HttpClient()
    client.post("/accounts/login/", {"username": "riverside-vet", "password": "vetsync-demo-2026"})
    totp = TOTP(b32decode(key), drift=1)  # the enrolment used the current step's code
    totp.time = time.time()
    verified = client.post(reverse("two-factor-verify"), {"token": str(totp.token()).zfill(6)})
    assert verified.status_code == 302


def test_a_user_changes_their_own_email_only_with_password_and_code(world: World) -> None:
    device = enrolled_device(world.a.vet_user)
    client = login(world.a.vet_user)
    url = reverse("account-email")
    refused = client.post(url, {"email": "new@alder.example", "password": PASSWORD, "token": ""})
    assert refused.status_code == 400 and "nothing was changed" in refused.content.decode()
    world.a.vet_user.refresh_from_db()
    assert world.a.vet_user.email != "new@alder.example"

    done = client.post(
        url, {"email": "New@Alder.example", "password": PASSWORD, "token": code_for(device)}
    )
    assert done.status_code == 302
    world.a.vet_user.refresh_from_db()
    assert world.a.vet_user.email == "new@alder.example"
    event = AuditEvent.objects.get(action="user.email_changed")
    assert event.after == {"email": "new@alder.example"} and event.actor == world.a.vet_user


def test_two_factor_code_is_for_the_demo_only(world: World, settings: Any) -> None:
    import io

    from django.core.management import CommandError, call_command

    device = enrolled_device(world.a.vet_user)
    with pytest.raises(CommandError, match="Only for the demo"):
        call_command("two_factor_code", "alder-vet", stdout=io.StringIO())
    settings.DEBUG = True
    out = io.StringIO()
    call_command("two_factor_code", "alder-vet", stdout=out)
    from django_otp.oath import TOTP

    device.refresh_from_db()
    now = TOTP(device.bin_key, drift=device.drift)
    assert out.getvalue().strip() == str(now.token()).zfill(6)  # what the app shows now


def test_use_moves_the_session_expiry_on_at_most_once_a_minute(world: World, monkeypatch) -> None:
    from django.contrib.sessions.models import Session

    import vetsync.session_idle as idle

    client = login(world.a.staff)
    key = client.session.session_key
    page = reverse("clinic-dashboard", args=["alder"])
    assert client.get(page).status_code == 200  # the first use marks the session
    first = Session.objects.get(session_key=key).expire_date
    assert client.get(page).status_code == 200
    assert Session.objects.get(session_key=key).expire_date == first  # within the minute
    later = idle.time.time() + 120
    monkeypatch.setattr(idle.time, "time", lambda: later)
    assert client.get(page).status_code == 200
    assert Session.objects.get(session_key=key).expire_date > first  # moved on
