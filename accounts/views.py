"""Team pages: create a team, members and invitations, workspace settings, API keys
and the webhook signing secret."""

from __future__ import annotations

import logging
import secrets
import uuid

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.contrib.auth.views import redirect_to_login
from django.core.cache import cache
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_POST

from accounts import services
from accounts.access import get_workspace_for_user
from accounts.forms import (
    ApiKeyForm,
    DeleteTeamForm,
    InviteForm,
    MonthlyCapForm,
    RoleForm,
    TeamNameForm,
)
from accounts.models import Invitation, Membership, Role, User, Workspace
from billing import wallets

logger = logging.getLogger(__name__)


def _user(request: HttpRequest) -> User:
    assert isinstance(request.user, User)
    return request.user


def _members_url(slug: str) -> str:
    return reverse("members", args=[slug])


@login_required
def team_create(request: HttpRequest) -> HttpResponse:
    form = TeamNameForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            workspace = services.create_team(user=_user(request), name=form.cleaned_data["name"])
        except services.TeamActionError as error:
            form.add_error("name", str(error))
        else:
            messages.success(request, f"{workspace.name} is ready. Invite your teammates.")
            return redirect("members", workspace.slug)
    return render(request, "accounts/team_create.html", {"form": form})


@login_required
def members(request: HttpRequest, slug: str) -> HttpResponse:
    workspace, membership = get_workspace_for_user(request, slug)
    rows = sorted(
        workspace.memberships.select_related("user"),
        key=lambda m: (-m.role_enum.rank, m.user.email),
    )
    invitations = (
        workspace.invitations.open().select_related("invited_by").order_by("-sent_at")
        if membership.can_manage
        else Invitation.objects.none()
    )
    spend = (
        wallets.spend_this_month_by_member(wallets.wallet_account_id(workspace.pk))
        if workspace.is_team
        else {}
    )
    for row in rows:
        spent = spend.get(row.user_id)
        row.spent_this_month = spent.total if spent else 0  # type: ignore[attr-defined]
    return render(
        request,
        "accounts/members.html",
        {
            "workspace": workspace,
            "membership": membership,
            "rows": rows,
            "invitations": invitations,
            "invite_form": InviteForm(),
            "role_form": RoleForm(),
        },
    )


@login_required
@require_POST
def member_invite(request: HttpRequest, slug: str) -> HttpResponse:
    _workspace, membership = get_workspace_for_user(request, slug, minimum=Role.ADMIN)
    form = InviteForm(request.POST)
    if not form.is_valid():
        for errors in form.errors.values():
            messages.error(request, " ".join(str(error) for error in errors))
        return redirect("members", slug)
    try:
        invitation = services.invite_member(
            actor=membership, email=form.cleaned_data["email"], role=form.cleaned_data["role"]
        )
    except services.TeamActionError as error:
        messages.error(request, str(error))
    else:
        messages.success(request, f"Invitation sent to {invitation.email}.")
    return redirect("members", slug)


def _invitation(membership: Membership, invitation_id: str) -> Invitation:
    return get_object_or_404(membership.workspace.invitations, pk=invitation_id)


@login_required
@require_POST
def invitation_resend(request: HttpRequest, slug: str, invitation_id: str) -> HttpResponse:
    _, membership = get_workspace_for_user(request, slug, minimum=Role.ADMIN)
    invitation = _invitation(membership, invitation_id)
    try:
        services.resend_invitation(actor=membership, invitation=invitation)
    except services.TeamActionError as error:
        messages.error(request, str(error))
    else:
        messages.success(request, f"Invitation sent again to {invitation.email}.")
    return redirect("members", slug)


@login_required
@require_POST
def invitation_revoke(request: HttpRequest, slug: str, invitation_id: str) -> HttpResponse:
    _, membership = get_workspace_for_user(request, slug, minimum=Role.ADMIN)
    invitation = _invitation(membership, invitation_id)
    services.revoke_invitation(actor=membership, invitation=invitation)
    messages.success(request, f"The invitation to {invitation.email} was withdrawn.")
    return redirect("members", slug)


@login_required
@require_POST
def member_role(request: HttpRequest, slug: str, member_id: str) -> HttpResponse:
    workspace, membership = get_workspace_for_user(request, slug, minimum=Role.ADMIN)
    target = get_object_or_404(workspace.memberships.select_related("user"), pk=member_id)
    form = RoleForm(request.POST)
    if not form.is_valid():
        messages.error(request, "Choose admin, member or viewer.")
        return redirect("members", slug)
    try:
        services.change_role(actor=membership, target=target, role=form.cleaned_data["role"])
    except services.TeamActionError as error:
        messages.error(request, str(error))
    else:
        messages.success(
            request, f"{target.user.email} is now {target.get_role_display().lower()}."
        )
    return redirect("members", slug)


@login_required
@require_POST
def member_cap(request: HttpRequest, slug: str, member_id: str) -> HttpResponse:
    workspace, membership = get_workspace_for_user(request, slug, minimum=Role.ADMIN)
    target = get_object_or_404(workspace.memberships.select_related("user"), pk=member_id)
    form = MonthlyCapForm(request.POST)
    if not form.is_valid():
        messages.error(request, "A monthly limit is a whole number of credits, or empty for none.")
        return redirect("members", slug)
    try:
        services.set_monthly_cap(
            actor=membership, target=target, cap=form.cleaned_data["monthly_cap"]
        )
    except services.TeamActionError as error:
        messages.error(request, str(error))
    else:
        cap = target.monthly_cap
        limit = "no monthly limit" if cap is None else f"a limit of {cap} credits a month"
        messages.success(request, f"{target.user.email} now has {limit}.")
    return redirect("members", slug)


@login_required
@require_POST
def member_remove(request: HttpRequest, slug: str, member_id: str) -> HttpResponse:
    workspace, membership = get_workspace_for_user(request, slug, minimum=Role.ADMIN)
    target = get_object_or_404(workspace.memberships.select_related("user"), pk=member_id)
    try:
        services.remove_member(actor=membership, target=target)
    except services.TeamActionError as error:
        messages.error(request, str(error))
    else:
        messages.success(request, f"{target.user.email} was removed from {workspace.name}.")
    return redirect("members", slug)


@login_required
@require_POST
def member_transfer(request: HttpRequest, slug: str, member_id: str) -> HttpResponse:
    workspace, membership = get_workspace_for_user(request, slug, minimum=Role.OWNER)
    target = get_object_or_404(workspace.memberships.select_related("user"), pk=member_id)
    try:
        services.transfer_ownership(actor=membership, target=target)
    except services.TeamActionError as error:
        messages.error(request, str(error))
    else:
        messages.success(
            request, f"{target.user.email} now owns {workspace.name}; you are an admin."
        )
    return redirect("members", slug)


@login_required
@require_POST
def leave(request: HttpRequest, slug: str) -> HttpResponse:
    workspace, membership = get_workspace_for_user(request, slug)
    try:
        services.leave_workspace(membership=membership)
    except services.TeamActionError as error:
        messages.error(request, str(error))
        return redirect("members", slug)
    messages.success(request, f"You left {workspace.name}.")
    return redirect("home")


def _settings_page(
    request: HttpRequest, workspace: Workspace, membership: Membership, *, secret: str = ""
) -> HttpResponse:
    return render(
        request,
        "accounts/settings.html",
        {
            "workspace": workspace,
            "membership": membership,
            "rename_form": TeamNameForm(initial={"name": workspace.name}),
            "delete_form": DeleteTeamForm(team_name=workspace.name),
            "webhook_secret": secret,
        },
    )


@login_required
def workspace_settings(request: HttpRequest, slug: str) -> HttpResponse:
    workspace, membership = get_workspace_for_user(request, slug)
    return _settings_page(request, workspace, membership)


@login_required
@require_POST
def workspace_rename(request: HttpRequest, slug: str) -> HttpResponse:
    _, membership = get_workspace_for_user(request, slug, minimum=Role.ADMIN)
    form = TeamNameForm(request.POST)
    if form.is_valid():
        try:
            services.rename_workspace(actor=membership, name=form.cleaned_data["name"])
        except services.TeamActionError as error:
            messages.error(request, str(error))
        else:
            messages.success(request, "Name saved.")
    else:
        messages.error(request, "Give the workspace a name of at most 100 characters.")
    return redirect("workspace_settings", slug)


@login_required
@require_POST
def workspace_delete(request: HttpRequest, slug: str) -> HttpResponse:
    workspace, membership = get_workspace_for_user(request, slug, minimum=Role.OWNER)
    form = DeleteTeamForm(request.POST, team_name=workspace.name)
    if not form.is_valid():
        messages.error(request, "Type the team's name exactly to confirm deleting it.")
        return redirect("workspace_settings", slug)
    try:
        services.delete_team(actor=membership)
    except services.TeamActionError as error:
        messages.error(request, str(error))
        return redirect("workspace_settings", slug)
    messages.success(request, f"{workspace.name} was deleted.")
    return redirect("home")


# --- The webhook signing secret -----------------------------------------------------


@login_required
@require_POST
@never_cache
def webhook_secret_reveal(request: HttpRequest, slug: str) -> HttpResponse:
    """The secret only on request (a POST, so no link, prefetch or cache shows it): to
    htmx the revealed fragment, without JavaScript the settings page with it shown."""
    workspace, membership = get_workspace_for_user(request, slug, minimum=Role.ADMIN)
    logger.info("Webhook secret of %s revealed to %s", workspace.slug, membership.user_id)
    if request.htmx:  # type: ignore[attr-defined]
        return render(
            request,
            "accounts/_webhook_secret.html",
            {"workspace": workspace, "webhook_secret": workspace.webhook_secret},
        )
    return _settings_page(request, workspace, membership, secret=workspace.webhook_secret)


@login_required
@require_POST
def webhook_secret_rotate(request: HttpRequest, slug: str) -> HttpResponse:
    _, membership = get_workspace_for_user(request, slug, minimum=Role.ADMIN)
    services.rotate_webhook_secret(actor=membership)
    logger.info("Webhook secret of %s rotated by %s", slug, membership.user_id)
    messages.success(
        request,
        "A new signing secret is in place. The previous one keeps signing beside it for "
        "24 hours: give your receiver the new secret before then.",
    )
    return redirect("workspace_settings", slug)


# --- API keys ----------------------------------------------------------------------

# How long a rendered create form's token is remembered once used.
_FORM_TOKEN_SECONDS = 24 * 3600


def _keys_page(
    request: HttpRequest, workspace: Workspace, membership: Membership, form: ApiKeyForm
) -> HttpResponse:
    # One query for every key with its creator, however many there are.
    keys = list(workspace.api_keys.select_related("created_by").order_by("-created_at"))
    return render(
        request,
        "accounts/api_keys.html",
        {
            "workspace": workspace,
            "membership": membership,
            "keys": keys,
            "form": form,
            # Every rendering of the form, also after an error, gets a token of its own.
            "form_token": secrets.token_urlsafe(16),
            "can_create": _user(request).has_verified_email(),
            "api_url": request.build_absolute_uri(reverse("api_workspace")),
        },
    )


@login_required
def api_keys(request: HttpRequest, slug: str) -> HttpResponse:
    workspace, membership = get_workspace_for_user(request, slug, minimum=Role.ADMIN)
    return _keys_page(request, workspace, membership, ApiKeyForm())


@login_required
@require_POST
@never_cache
def api_key_create(request: HttpRequest, slug: str) -> HttpResponse:
    """Create a key and answer the page that shows its text, the only time it is shown.
    The text is not kept anywhere (no session, no redirect target), so reloading that
    page cannot show it again: it re-submits the form, which its used token refuses."""
    workspace, membership = get_workspace_for_user(request, slug, minimum=Role.ADMIN)
    form = ApiKeyForm(request.POST)
    if not form.is_valid():
        return _keys_page(request, workspace, membership, form)
    token = form.cleaned_data["form_token"]
    if token and not cache.add(f"api-key-form:{workspace.pk}:{token}", 1, _FORM_TOKEN_SECONDS):
        messages.info(
            request,
            "That key was already created, and its text is shown only once. If you did not "
            "copy it, revoke it and create another.",
        )
        return redirect("api_keys", slug)
    try:
        key, text = services.create_api_key(
            actor=membership,
            name=form.cleaned_data["name"],
            scopes=form.cleaned_data["scopes"],
            expires_at=form.expires_at,
        )
    except services.TeamActionError as error:
        form.add_error(None, str(error))
        return _keys_page(request, workspace, membership, form)
    return render(
        request,
        "accounts/api_key_created.html",
        {
            "workspace": workspace,
            "membership": membership,
            "key": key,
            "key_text": text,
            "api_url": request.build_absolute_uri(reverse("api_workspace")),
        },
    )


@login_required
@require_POST
def api_key_revoke(request: HttpRequest, slug: str, key_id: uuid.UUID) -> HttpResponse:
    workspace, membership = get_workspace_for_user(request, slug, minimum=Role.ADMIN)
    key = get_object_or_404(workspace.api_keys, pk=key_id)
    if key.revoked_at is not None:
        messages.info(request, f"{key.name} was already revoked.")
    else:
        services.revoke_api_key(actor=membership, key=key)
        messages.success(
            request, f"{key.name} ({key.prefix}…) is revoked: the API refuses it from now on."
        )
    return redirect("api_keys", slug)


def invitation_accept(request: HttpRequest, token: str) -> HttpResponse:
    """The page an emailed invitation link opens; works signed out so newcomers can sign up."""
    invitation = services.find_invitation(token)
    user = _user(request) if request.user.is_authenticated else None
    if request.method == "POST":
        if user is None:
            return redirect_to_login(request.get_full_path())
        try:
            membership = services.accept_invitation(token=token, user=user)
        except services.TeamActionError as error:
            messages.error(request, str(error))
        else:
            messages.success(request, f"Welcome to {membership.workspace.name}.")
            return redirect("workspace_home", membership.workspace.slug)
    problem = services.invitation_problem(invitation, user)
    return render(
        request,
        "accounts/invitation.html",
        {"invitation": invitation, "problem": problem, "next": request.get_full_path()},
        status=404 if invitation is None else 200,
    )
