from __future__ import annotations

from django.urls import path

from billing import views

# Mounted under /w/<slug>/billing/.
workspace_urlpatterns = [
    path("", views.billing, name="billing"),
    path("ledger.csv", views.ledger_csv, name="billing_ledger_csv"),
    path("checkout/", views.checkout, name="billing_checkout"),
    path("success/", views.checkout_success, name="billing_success"),
    path("cancel/", views.checkout_cancel, name="billing_cancel"),
    path("portal/", views.portal, name="billing_portal"),
]

urlpatterns = [
    # The address registered with Stripe (DESIGN §5): keep it.
    path("stripe/webhook/", views.stripe_webhook, name="stripe_webhook"),
]
