"""The agent API (PIMS.md, "Agent batches"): on-premise agents post batches with a bearer token.

The token names the clinic: a batch can only ever be written into the clinic whose
integration issued the token. Small batches are applied before answering; big ones answer 202
at once and a Celery task applies them while the run page shows progress.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.http import HttpRequest, JsonResponse
from django.urls import reverse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_POST

from clinics.agents import integration_agent_contact, integration_agent_data
from clinics.models import Connector, Integration
from clinics.services import integration_for_agent_token
from records.extracts import extract_header, extract_part_arrived, extract_part_check
from records.intake import BodyNotText, BodyTooBig, agent_body_text
from records.models import Outcome, SyncRun
from records.sync import SyncBusy, sync_run_create, sync_run_process
from records.tasks import sync_run_apply_enqueue
from vetsync.lib.numbers import id_from
from vetsync.lib.rates import rate_check
from vetsync.pims.agent import BatchError

# Which batch sources each agent connector may post (VetSuccess installs run SyncVet).
ACCEPTED_SOURCES: dict[str, set[str]] = {
    Connector.SYNCVET: {"syncvet"},
    Connector.VETSUCCESS: {"vetsuccess", "syncvet"},
    Connector.VETDATA: {"vetdata"},
    Connector.DATAPOINT: {"datapoint"},
}


def agent_error(status: int, message: str, **extra: Any) -> JsonResponse:
    response = JsonResponse({"error": message, **extra}, status=status)
    if status == 401:
        response["WWW-Authenticate"] = 'Bearer realm="vetsync-agent"'
    return response


def agent_integration(request: HttpRequest) -> Integration | None:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    integration = integration_for_agent_token(token.strip())
    if integration is not None:
        # Raises RateLimited: vetsync.api_errors answers 429 with Retry-After.
        rate_check(
            key=f"agent:{integration.agent_token_hash[:24]}",
            limit=settings.AGENT_REQUESTS_PER_MINUTE,
        )
        integration_agent_contact(
            integration=integration, user_agent=request.headers.get("User-Agent", "")
        )
    return integration


def run_summary(request: HttpRequest, run: SyncRun, **extra: Any) -> dict[str, Any]:
    return {
        "run_id": run.pk,
        "batch_id": run.batch_id,
        "status": run.status,
        "total": run.total,
        "applied": run.position,
        "counts": {outcome: run.counts.get(outcome, 0) for outcome in Outcome.values},
        "error": run.error,
        "run_url": request.build_absolute_uri(run.get_absolute_url()),
        "status_url": request.build_absolute_uri(
            reverse("agent-api:batch-status", kwargs={"batch_id": run.batch_id})
        ),
        **extra,
    }


@csrf_exempt
@require_POST
def batches(request: HttpRequest) -> JsonResponse:
    """Accept one batch. 200 with the outcome counts, or 202 while a worker applies it."""
    integration = agent_integration(request)
    if integration is None:
        return agent_error(401, "Missing, wrong or revoked agent token.")
    if integration.status == Integration.Status.PAUSED:
        return agent_error(409, "This clinic's integration is paused; the batch was not accepted.")
    if request.content_type != "application/json":
        return agent_error(415, "Send the batch as Content-Type: application/json.")
    length = id_from(request.headers.get("Content-Length") or "0")
    if length is None:
        return agent_error(400, "Content-Length must be the body's size in bytes.")
    if length > settings.AGENT_BATCH_MAX_BYTES:
        return agent_error(413, f"A batch may be at most {settings.AGENT_BATCH_MAX_BYTES} bytes.")
    # request.body would refuse anything over DATA_UPLOAD_MAX_MEMORY_SIZE, which is sized for
    # forms, not for a clinic's first extract; the cap above applies, in a bounded read.
    try:
        body = agent_body_text(request, max_bytes=settings.AGENT_BATCH_MAX_BYTES)
    except BodyTooBig:
        return agent_error(413, f"A batch may be at most {settings.AGENT_BATCH_MAX_BYTES} bytes.")
    except BodyNotText as exc:
        return agent_error(400, str(exc))
    accepted = ACCEPTED_SOURCES.get(integration.connector, set())
    part = extract_header(body)  # one part of a multi-part full extract, or None
    try:
        if part is not None:
            extract_part_check(clinic=integration.clinic, header=part)
        run, created = sync_run_create(
            clinic=integration.clinic,
            body=body,
            trigger=SyncRun.Trigger.AGENT,
            allowed_sources=accepted,
        )
    except BatchError as exc:
        return agent_error(
            400,
            f"{exc} (this token belongs to a {integration.get_connector_display()} integration)",
        )
    extra: dict[str, Any] = {}
    if part is not None:
        extract = extract_part_arrived(run=run, header=part)
        extra["extract"] = {
            "id": extract.extract_id,
            "arrived": extract.arrived,
            "parts": extract.parts,
            "complete": extract.is_complete,
        }
    integration_agent_data(integration=integration, data_at=run.sent_at or run.created_at)
    if not created:
        return JsonResponse(run_summary(request, run, duplicate=True, **extra), status=200)
    if run.total <= settings.AGENT_BATCH_INLINE_MAX_CLIENTS:
        try:
            run = sync_run_process(run_id=run.pk)
            return JsonResponse(run_summary(request, run, **extra), status=200)
        except SyncBusy:
            pass  # another sync of this clinic is running: queue behind it
    sync_run_apply_enqueue(run)
    return JsonResponse(run_summary(request, run, **extra), status=202)


@require_GET
def batch_status(request: HttpRequest, batch_id: str) -> JsonResponse:
    """How far a posted batch has got (the agent polls this after a 202)."""
    integration = agent_integration(request)
    if integration is None:
        return agent_error(401, "Missing, wrong or revoked agent token.")
    run = SyncRun.objects.filter(clinic=integration.clinic, batch_id=batch_id).first()
    if run is None:
        return agent_error(404, "No batch with this id for this clinic.")
    return JsonResponse(run_summary(request, run))
