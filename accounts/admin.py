from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.contrib.auth.admin import UserAdmin as BaseUserAdmin
from django.contrib.auth.forms import AdminUserCreationForm, UserChangeForm
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils import timezone

from accounts.models import ApiKey, Invitation, Membership, User, Workspace


class UserCreationForm(AdminUserCreationForm):
    class Meta:
        model = User
        fields = ("email",)


class UserEditForm(UserChangeForm):
    class Meta:
        model = User
        fields = "__all__"


@admin.register(User)
class UserAdmin(BaseUserAdmin):
    add_form = UserCreationForm
    form = UserEditForm
    ordering = ("email",)
    list_display = ("email", "name", "is_staff", "is_active", "date_joined")
    list_filter = ("is_staff", "is_superuser", "is_active")
    search_fields = ("email", "name")
    fieldsets = (
        (None, {"fields": ("email", "password")}),
        ("Profile", {"fields": ("name",)}),
        (
            "Permissions",
            {"fields": ("is_active", "is_staff", "is_superuser", "groups", "user_permissions")},
        ),
        ("Dates", {"fields": ("last_login", "date_joined")}),
    )
    add_fieldsets = (
        (
            None,
            {
                "classes": ("wide",),
                "fields": ("email", "usable_password", "password1", "password2"),
            },
        ),
    )


class MembershipInline(admin.TabularInline):
    model = Membership
    extra = 0
    autocomplete_fields = ("user",)
    fields = ("user", "role", "monthly_cap", "created_at")
    readonly_fields = ("created_at",)


@admin.register(Workspace)
class WorkspaceAdmin(admin.ModelAdmin):
    list_display = ("name", "slug", "kind", "created_at", "deleted_at")
    list_filter = ("kind", "deleted_at")
    search_fields = ("name", "slug", "memberships__user__email")
    readonly_fields = ("created_at", "personal_for", "created_by")
    # Signing secrets are shown to the workspace's owners and admins, not on this page.
    exclude = ("webhook_secret", "previous_webhook_secret", "previous_webhook_secret_expires_at")
    inlines = [MembershipInline]


@admin.register(Membership)
class MembershipAdmin(admin.ModelAdmin):
    list_display = ("user", "workspace", "role", "monthly_cap", "created_at")
    list_filter = ("role",)
    search_fields = ("user__email", "workspace__name", "workspace__slug")
    autocomplete_fields = ("user", "workspace")


@admin.register(Invitation)
class InvitationAdmin(admin.ModelAdmin):
    list_display = (
        "email",
        "workspace",
        "role",
        "sent_at",
        "expires_at",
        "accepted_at",
        "revoked_at",
    )
    list_filter = ("role",)
    search_fields = ("email", "workspace__name", "workspace__slug")
    readonly_fields = ("token_hash", "created_at", "accepted_by", "accepted_at")
    autocomplete_fields = ("workspace", "invited_by")


@admin.register(ApiKey)
class ApiKeyAdmin(admin.ModelAdmin):
    list_display = ("name", "prefix", "workspace", "created_by", "last_used_at", "revoked_at")
    list_filter = ("revoked_at",)
    search_fields = ("name", "lookup", "workspace__slug", "created_by__email")
    list_select_related = ("workspace", "created_by")
    fields = (
        "name",
        "prefix",
        "workspace",
        "created_by",
        "scopes",
        "created_at",
        "expires_at",
        "last_used_at",
        "revoked_at",
    )
    readonly_fields = fields
    actions = ["revoke"]

    @admin.action(description="Revoke the selected keys")
    def revoke(self, request: HttpRequest, queryset: QuerySet[ApiKey]) -> None:
        queryset.filter(revoked_at__isnull=True).update(revoked_at=timezone.now())

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # keys are created by the workspace's owners and admins

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
