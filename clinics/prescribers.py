"""Prescribers and consults from ezyVet: the lists a vet or a clinic admin picks from.

The prescriber sent to ezyVet is the vet's own ezyVet user, picked from the site's users (an
ezyVet check: agents have no user list). The lists are cached briefly (every page and worker
shares them), fetched with a short timeout and one attempt, and each call goes through the
ezyVet client and its shared limiter, so it counts against the site's rate limit like a pull
or a writeback.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Any

from django.core.cache import cache
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.http import HttpRequest

from clinics.access import is_onboarding
from clinics.audit import audit_log
from clinics.models import Connector, Integration, Membership, Role, Vet
from clinics.services import CredentialsError, ezyvet_client
from vetsync.pims import ezyvet
from vetsync.pims.ezyvet.shared_limits import WRITEBACK

VETS_TTL = 300  # seconds: a vet added in ezyVet shows here within five minutes
CONSULTS_TTL = 120  # a consult written a minute ago is on the list on the next page load
LIST_TIMEOUT = (3.0, 8.0)  # connect, read: a page waits seconds, not half a minute


class PimsListError(Exception):
    """ezyVet's list could not be had; the message says why. ``plain`` says it without the
    technical cause (a connection pool's traceback text), for the clinic's own pages."""

    def __init__(self, message: str, *, plain: str = "") -> None:
        super().__init__(message)
        self.plain = plain or message


def is_ezyvet(integration: Integration | None) -> bool:
    return integration is not None and integration.connector == Connector.EZYVET


def _stamp(integration: Integration) -> str:
    updated = integration.credentials_updated_at
    return f"{integration.pk}:{updated.timestamp() if updated else 0}"


# One connector per site per process (its token reused); its limiter is the site's budget,
# shared with every process's pulls and writebacks.
_list_clients: dict[str, ezyvet.EzyVetClient] = {}


def _list_client(integration: Integration) -> ezyvet.EzyVetClient:
    key = f"{_stamp(integration)}:{integration.base_url}"
    client = _list_clients.get(key)
    if client is None:
        client = ezyvet_client(
            integration,
            priority=WRITEBACK,  # a person waits on the page: ahead of the site's pulls
            max_attempts=1,
            max_rate_limited=0,
            timeout=LIST_TIMEOUT,
        )
        _list_clients[key] = client
    return client


def _fetch(integration: Integration, client: ezyvet.EzyVetClient | None, call: Any) -> Any:
    try:
        return call(client or _list_client(integration))
    except CredentialsError as exc:
        raise PimsListError(str(exc)) from exc
    except ezyvet.EzyVetRateLimited as exc:
        raise PimsListError(
            f"ezyVet asks VetSync to slow down; try again in {int(exc.retry_after) + 1} s."
        ) from exc
    except (ezyvet.EzyVetError, OSError) as exc:
        raise PimsListError(
            f"ezyVet could not be reached ({exc}); try again shortly.",
            plain="ezyVet could not be reached; try again shortly.",
        ) from exc


def ezyvet_vets(
    *, integration: Integration, client: ezyvet.EzyVetClient | None = None
) -> list[ezyvet.EzyVetVet]:
    """The site's active vet users (the only valid prescribers), cached for ``VETS_TTL``."""
    key = f"ezyvet:vets:{_stamp(integration)}"
    cached = cache.get(key)
    if cached is None:
        vets = _fetch(integration, client, lambda c: c.list_vets())
        cached = [dataclasses.asdict(v) for v in vets]
        cache.set(key, cached, VETS_TTL)
    return [ezyvet.EzyVetVet(**row) for row in cached]


def ezyvet_consults(*, integration: Integration, animal_id: str) -> list[ezyvet.EzyVetConsult]:
    """The animal's consults, newest first, cached for ``CONSULTS_TTL``."""
    key = f"ezyvet:consults:{_stamp(integration)}:{animal_id}"
    cached = cache.get(key)
    if cached is None:
        consults = _fetch(integration, None, lambda c: c.list_consults(animal_id))
        cached = [
            {**dataclasses.asdict(c), "date": c.date.timestamp() if c.date else None}
            for c in consults
        ]
        cache.set(key, cached, CONSULTS_TTL)
    return [
        ezyvet.EzyVetConsult(
            **{
                **row,
                "date": dt.datetime.fromtimestamp(row["date"], dt.UTC) if row["date"] else None,
            }
        )
        for row in cached
    ]


def pims_user_name(vet: ezyvet.EzyVetVet) -> str:
    """What ezyVet calls the user ("Dr Helen Marsh"); "(no name)" when it has none."""
    name = " ".join(part for part in (vet.title, vet.first_name, vet.last_name) if part)
    return name or "(no name)"


def vet_label(vet: ezyvet.EzyVetVet) -> str:
    return f"{pims_user_name(vet)} · ezyVet user {vet.user_id}"


def may_map_prescribers(user: Any, clinic_id: int) -> bool:
    """The onboarding team and the clinic's admins; nobody else (a vet cannot pick their own)."""
    if is_onboarding(user):
        return True
    user_id = getattr(user, "pk", None)
    if user_id is None:
        return False
    return Membership.objects.filter(user_id=user_id, clinic_id=clinic_id, role=Role.ADMIN).exists()


def vet_pims_user_set(
    *, vet: Vet, pims_user_id: str, actor: Any, request: HttpRequest | None = None
) -> Vet:
    """Record which PIMS user a vet is (the prescriber ezyVet is sent); on ezyVet the id must
    be one of the site's vet users. Audited; only the onboarding team and clinic admins."""
    if not may_map_prescribers(actor, vet.clinic_id):
        raise PermissionDenied("Only a clinic admin or the onboarding team maps prescribers.")
    pims_user_id = pims_user_id.strip()
    integration = Integration.objects.filter(clinic_id=vet.clinic_id).first()
    if pims_user_id and is_ezyvet(integration):
        assert integration is not None
        known = {v.user_id for v in ezyvet_vets(integration=integration)}
        if pims_user_id not in known:
            raise PimsListError(f"ezyVet has no active vet user {pims_user_id}.")
    with transaction.atomic():
        vet = Vet.objects.select_for_update().get(pk=vet.pk)
        before = vet.pims_user_id
        if before == pims_user_id:
            return vet
        taken = (
            Vet.objects.filter(clinic_id=vet.clinic_id, pims_user_id=pims_user_id)
            .exclude(pk=vet.pk)
            .first()
        )
        if pims_user_id and taken is not None:
            raise PimsListError(f"That PIMS user is already {taken}'s.")
        vet.pims_user_id = pims_user_id
        vet.save(update_fields=["pims_user_id"])
        audit_log(
            action="vet.pims_user_changed",
            actor=actor,
            request=request,
            clinic=vet.clinic,
            obj=vet,
            before={"pims_user_id": before},
            after={"pims_user_id": pims_user_id},
        )
    return vet


def prescriber_hold_reason(
    *, vet: Vet, integration: Integration, client: ezyvet.EzyVetClient | None = None
) -> str:
    """Why a prescription by ``vet`` cannot go to ezyVet yet ("" when it can). Raises
    ``PimsListError`` when ezyVet's users cannot be read (the caller retries later)."""
    fix = "A clinic admin (Prescribers page) or the onboarding team picks the vet's ezyVet user"
    if not vet.pims_user_id:
        return f"Held: {vet} has no ezyVet user yet. {fix}; it is sent then."
    known = {v.user_id for v in ezyvet_vets(integration=integration, client=client)}
    if vet.pims_user_id not in known:
        return (
            f"Held: ezyVet does not know {vet} as a vet (user {vet.pims_user_id} is not an "
            f"active vet user of the site). {fix}; it is sent then."
        )
    return ""
