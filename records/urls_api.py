from __future__ import annotations

from django.urls import path

from records import api

app_name = "agent-api"

urlpatterns = [
    path("batches", api.batches, name="batches"),
    # Any batch id an agent may send (PIMS.md: free text, up to 100 characters), "/" included:
    # the answer to a batch links here, and a link that cannot be made would fail the answer.
    path("batches/<path:batch_id>", api.batch_status, name="batch-status"),
]
