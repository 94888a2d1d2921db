from __future__ import annotations

from django.contrib import admin
from django.urls import include, path

from accounts.urls import workspace_urlpatterns
from billing.urls import workspace_urlpatterns as billing_urlpatterns
from mochi_site import views

urlpatterns = [
    path("", views.home, name="home"),
    path("pricing/", views.pricing, name="pricing"),
    path("healthz", views.healthz, name="healthz"),
    path("accounts/", include("allauth.urls")),
    path("", include("accounts.urls")),
    path("w/<slug:slug>/", include(workspace_urlpatterns)),
    path("w/<slug:slug>/billing/", include(billing_urlpatterns)),
    path("", include("billing.urls")),
    path("admin/", admin.site.urls),
]
