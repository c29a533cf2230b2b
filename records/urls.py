from __future__ import annotations

from django.urls import path

from records import views

app_name = "records"

urlpatterns = [
    path("clients/", views.client_list, name="client-list"),
]
