from __future__ import annotations

from django.urls import path

from records import views

app_name = "care"

urlpatterns = [
    path("", views.care_search, name="search"),
]
