from __future__ import annotations

from django.urls import path

from generations import segmind_compat, views

# Mounted under /w/<slug>/.
workspace_urlpatterns = [
    path("", views.create, name="workspace_home"),
    path("estimate/", views.estimate, name="estimate"),
    path("generate/", views.submit, name="generation_create"),
    path("generations/", views.gallery, name="generation_list"),
    path("generations/delete/", views.bulk_delete, name="generation_bulk_delete"),
    path("generations/<uuid:generation_id>/", views.detail, name="generation_detail"),
    path("generations/<uuid:generation_id>/live/", views.live, name="generation_live"),
    path("generations/<uuid:generation_id>/card/", views.card, name="generation_card"),
    path("generations/<uuid:generation_id>/cancel/", views.cancel, name="generation_cancel"),
    path("generations/<uuid:generation_id>/delete/", views.delete, name="generation_delete"),
    path("generations/<uuid:generation_id>/favorite/", views.favorite, name="generation_favorite"),
    path("generations/<uuid:generation_id>/share/", views.share, name="generation_share"),
    path("generations/<uuid:generation_id>/download/", views.download, name="generation_download"),
    path(
        "generations/<uuid:generation_id>/webhooks/<uuid:delivery_id>/redeliver/",
        views.redeliver_webhook,
        name="generation_webhook_redeliver",
    ),
]

urlpatterns = [
    path("s/<str:token>/", views.shared, name="shared"),
    path("files/<str:token>/", views.serve_file, name="serve_file"),
]

# The Segmind-compatible drop-in, at Segmind's own paths (generations/segmind_compat.py).
segmind_urlpatterns = [
    path("v1/mochi-1", segmind_compat.v1_generate, name="segmind_v1_generate"),
    path("v2/mochi-1", segmind_compat.v2_submit, name="segmind_v2_submit"),
    path("v2/requests/<str:request_id>/status", segmind_compat.v2_status, name="segmind_v2_status"),
    path("v2/requests/<str:request_id>", segmind_compat.v2_result, name="segmind_v2_request"),
    path("v1/requests/<str:request_id>", segmind_compat.v2_result, name="segmind_v1_request"),
]
