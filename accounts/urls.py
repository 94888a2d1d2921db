from __future__ import annotations

from django.urls import path

from accounts import views

# Mounted under /w/<slug>/.
workspace_urlpatterns = [
    path("members/", views.members, name="members"),
    path("members/invite/", views.member_invite, name="member_invite"),
    path("members/leave/", views.leave, name="leave_workspace"),
    path("members/<uuid:member_id>/role/", views.member_role, name="member_role"),
    path("members/<uuid:member_id>/cap/", views.member_cap, name="member_cap"),
    path("members/<uuid:member_id>/remove/", views.member_remove, name="member_remove"),
    path("members/<uuid:member_id>/transfer/", views.member_transfer, name="member_transfer"),
    path(
        "invitations/<uuid:invitation_id>/resend/",
        views.invitation_resend,
        name="invitation_resend",
    ),
    path(
        "invitations/<uuid:invitation_id>/revoke/",
        views.invitation_revoke,
        name="invitation_revoke",
    ),
    path("settings/", views.workspace_settings, name="workspace_settings"),
    path("settings/rename/", views.workspace_rename, name="workspace_rename"),
    path("settings/delete/", views.workspace_delete, name="workspace_delete"),
    path("settings/webhook-secret/", views.webhook_secret_reveal, name="webhook_secret_reveal"),
    path(
        "settings/webhook-secret/rotate/",
        views.webhook_secret_rotate,
        name="webhook_secret_rotate",
    ),
    path("api-keys/", views.api_keys, name="api_keys"),
    path("api-keys/new/", views.api_key_create, name="api_key_create"),
    path("api-keys/<uuid:key_id>/revoke/", views.api_key_revoke, name="api_key_revoke"),
]

urlpatterns = [
    path("teams/new/", views.team_create, name="team_create"),
    path("invitations/<str:token>/", views.invitation_accept, name="invitation_accept"),
]
