from __future__ import annotations

from django.urls import path

from prescriptions import api

app_name = "writeback-api"

urlpatterns = [
    path("writebacks", api.writebacks, name="writebacks"),
    path("writebacks/<int:item_id>/ack", api.writeback_ack, name="writeback-ack"),
]
