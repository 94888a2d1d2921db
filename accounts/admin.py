from __future__ import annotations

from django.contrib import admin
from django.contrib.auth.admin import UserAdmin as BaseUserAdmin
from django.contrib.auth.forms import AdminUserCreationForm, UserChangeForm

from accounts.models import Invitation, Membership, User, Workspace


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
