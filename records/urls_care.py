from __future__ import annotations

from django.urls import path

from records import views

app_name = "care"

urlpatterns = [
    path("", views.care_search, name="search"),
    path("clients/<int:client_id>/", views.care_client, name="client"),
    path("clients/<int:client_id>/change/", views.care_client_change, name="client-change"),
    path("log/", views.care_log, name="log"),
]
