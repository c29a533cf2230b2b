"""The writeback feed for agent-based PIMS (PIMS.md, "Writeback feed"): the agent pulls the
clinic's pending line items with its bearer token and acknowledges each one."""

from __future__ import annotations

from django.http import HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_POST

from prescriptions.writeback import FEED_PAGE, AckError, agent_ack, agent_feed
from records.api import agent_error, agent_integration
from vetsync.lib import json_input
from vetsync.lib.numbers import id_from


@require_GET
def writebacks(request: HttpRequest) -> JsonResponse:
    """``GET writebacks?after=<cursor>``: pending items after the cursor, oldest first."""
    integration = agent_integration(request)
    if integration is None:
        return agent_error(401, "Missing, wrong or revoked agent token.")
    if not integration.is_agent:
        return agent_error(400, "This clinic's PIMS is not agent-based; it has no writeback feed.")
    after = id_from(request.GET.get("after") or "0")
    if after is None:
        return agent_error(400, "after must be the id of the last item you have seen.")
    items, cursor = agent_feed(clinic=integration.clinic, after=after)
    return JsonResponse(
        {"items": items, "cursor": cursor, "more": len(items) == FEED_PAGE},
        json_dumps_params={"default": str},
    )


@csrf_exempt
@require_POST
def writeback_ack(request: HttpRequest, item_id: int) -> JsonResponse:
    """``POST writebacks/<id>/ack`` with ``{"ok": true}`` or ``{"ok": false, "error": "…"}``."""
    integration = agent_integration(request)
    if integration is None:
        return agent_error(401, "Missing, wrong or revoked agent token.")
    try:
        body = json_input.loads(request.body or b"{}")
    except json_input.JsonInputError as exc:
        return agent_error(
            400, f'The body must be JSON ({exc}): {{"ok": true}} or {{"ok": false, ...}}.'
        )
    if not isinstance(body, dict) or not isinstance(body.get("ok"), bool):
        return agent_error(400, "ok (true or false) is required.")
    error = body.get("error") or ""
    if not isinstance(error, str):
        return agent_error(400, "error must be text.")
    error = json_input.storable(error)[:2000]
    try:
        item = agent_ack(clinic=integration.clinic, item_id=item_id, ok=body["ok"], error=error)
    except AckError:
        return agent_error(404, "No such writeback item for this clinic.")
    return JsonResponse({"id": item.pk, "status": item.status})
