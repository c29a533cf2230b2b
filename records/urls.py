from __future__ import annotations

from django.urls import path

from records import views

app_name = "records"

urlpatterns = [
    path("clients/", views.client_list, name="client-list"),
    path("clients/<int:client_id>/", views.client_detail, name="client-detail"),
    path(
        "clients/<int:client_id>/merges/<int:merge_id>/unmerge/",
        views.client_unmerge,
        name="client-unmerge",
    ),
    path("pets/<int:patient_id>/", views.patient_detail, name="patient-detail"),
    path("pets/<int:patient_id>/rename/", views.patient_rename_view, name="patient-rename"),
    path("sync/", views.run_list, name="run-list"),
    path("sync/now/", views.sync_now, name="sync-now"),
    path("sync/runs/<int:run_id>/", views.run_detail, name="run-detail"),
    path("sync/runs/<int:run_id>/report.csv", views.run_report, name="run-report"),
    path("sync/runs/<int:run_id>/retry/", views.run_retry, name="run-retry"),
    path("sync/runs/<int:run_id>/resume/", views.run_resume, name="run-resume"),
    path("updates/", views.update_queue, name="update-queue"),
    path("updates/<int:update_id>/", views.update_action, name="update-action"),
]
