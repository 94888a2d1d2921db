from __future__ import annotations

from django.contrib import admin
from django.urls import include, path

from accounts.urls import workspace_urlpatterns as team_pages
from billing.urls import workspace_urlpatterns as billing_pages
from generations.urls import workspace_urlpatterns as generation_pages
from mochi_site import views

urlpatterns = [
    path("", views.home, name="home"),
    path("pricing/", views.pricing, name="pricing"),
    path("healthz", views.healthz, name="healthz"),
    path("accounts/", include("allauth.urls")),
    path("", include("accounts.urls")),
    path("", include("generations.urls")),
    path("", include("billing.urls")),
    path("", include("ops.urls")),  # the operator's view: /ops/ and /metrics
    path("w/<slug:slug>/", include(generation_pages)),
    path("w/<slug:slug>/", include(team_pages)),
    path("w/<slug:slug>/billing/", include(billing_pages)),
    path("admin/", admin.site.urls),
]
