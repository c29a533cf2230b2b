from __future__ import annotations

from django.urls import path

from prescriptions import views

app_name = "prescriptions"

urlpatterns = [
    path("prescriptions/", views.prescription_list, name="prescription-list"),
    path("prescriptions/new/", views.prescription_new, name="prescription-new"),
    path(
        "prescriptions/<int:prescription_id>/",
        views.prescription_detail,
        name="prescription-detail",
    ),
    path(
        "prescriptions/<int:prescription_id>/action/",
        views.prescription_action,
        name="prescription-action",
    ),
    path("rx-requests/", views.rx_request_list, name="rx-request-list"),
    path("rx-requests/<int:request_id>/", views.rx_request_detail, name="rx-request-detail"),
    path("orders/", views.order_list, name="order-list"),
    path("orders/new/", views.order_new, name="order-new"),
    path("orders/<int:order_id>/", views.order_detail, name="order-detail"),
    path("orders/<int:order_id>/action/", views.order_action, name="order-action"),
    path("writeback/", views.writeback_monitor, name="writeback-monitor"),
    path("writeback/<int:item_id>/", views.writeback_detail, name="writeback-detail"),
    path("writeback/<int:item_id>/retry/", views.writeback_retry, name="writeback-retry"),
    path(
        "writeback/<int:item_id>/dismiss/",
        views.writeback_dismiss,
        name="writeback-dismiss",
    ),
]
