from __future__ import annotations

from django.urls import path

from ops import views

urlpatterns = [
    path("ops/", views.dashboard, name="ops"),
    path("metrics", views.metrics, name="metrics"),
]
