from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib import admin
from django.urls import include, path
from django.utils.csp import CSP
from django.views.decorators.csp import csp_override
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView

from accounts import api as accounts_api
from accounts.urls import workspace_urlpatterns as team_pages
from billing import api as billing_api
from billing.urls import workspace_urlpatterns as billing_pages
from generations import api as generations_api
from generations import webhooks_api
from generations.urls import segmind_urlpatterns as segmind_compat
from generations.urls import workspace_urlpatterns as generation_pages
from mochi_site import views

# The split view serves its start-up script as a file, so scripts stay ours only; Swagger
# UI sets a few inline styles, which this page alone allows (styles cannot run code).
docs_policy: dict[str, Any] = {**settings.SECURE_CSP, "style-src": [CSP.SELF, CSP.UNSAFE_INLINE]}
api_docs = csp_override(docs_policy)(SpectacularSwaggerSplitView.as_view(url_name="api_schema"))

handler404 = "mochi_site.views.page_not_found"
handler500 = "mochi_site.views.server_error"

# The REST API (DESIGN §5): paths without a trailing slash, as documented.
api_v1 = [
    path("workspace", accounts_api.WorkspaceApi.as_view(), name="api_workspace"),
    path("webhook-secret", accounts_api.WebhookSecretApi.as_view(), name="api_webhook_secret"),
    path("estimate", generations_api.EstimateApi.as_view(), name="api_estimate"),
    path("generations", generations_api.GenerationsApi.as_view(), name="api_generations"),
    path(
        "generations/<uuid:generation_id>",
        generations_api.GenerationApi.as_view(),
        name="api_generation",
    ),
    path(
        "generations/<uuid:generation_id>/cancel",
        generations_api.GenerationCancelApi.as_view(),
        name="api_generation_cancel",
    ),
    path(
        "generations/<uuid:generation_id>/video",
        generations_api.GenerationVideoApi.as_view(),
        name="api_generation_video",
    ),
    path(
        "generations/<uuid:generation_id>/webhooks",
        webhooks_api.GenerationWebhooksApi.as_view(),
        name="api_generation_webhooks",
    ),
    path(
        "generations/<uuid:generation_id>/webhooks/<uuid:delivery_id>/redeliver",
        webhooks_api.WebhookRedeliverApi.as_view(),
        name="api_webhook_redeliver",
    ),
    path("ledger", billing_api.LedgerApi.as_view(), name="api_ledger"),
]

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
    path("api/v1/", include(api_v1)),
    path("api/schema/", SpectacularAPIView.as_view(), name="api_schema"),
    path("api/docs/", api_docs, name="api_docs"),
    path("", include(segmind_compat)),  # Segmind's paths: /v1/mochi-1, /v2/…
    path("admin/", admin.site.urls),
]
