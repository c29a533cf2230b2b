from __future__ import annotations

from django.urls import path

from records import api

app_name = "agent-api"

urlpatterns = [
    path("batches", api.batches, name="batches"),
    path("batches/<str:batch_id>", api.batch_status, name="batch-status"),
]
