"""Team workflows: creating teams, invitations, roles, ownership, deletion.

Each function enforces the rules itself (who may do what), so the HTML views
stay thin and any future entry point (API, admin action) gets the same rules.
Refusals that the user can act on raise `TeamActionError` with a message
meant for them; missing permissions raise `PermissionDenied` (403).
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from allauth.account.models import EmailAddress
from django.conf import settings
from django.core.exceptions import PermissionDenied
from django.core.mail import EmailMultiAlternatives
from django.db import IntegrityError, transaction
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone

from accounts.models import (
    ASSIGNABLE_ROLES,
    ApiKey,
    Invitation,
    Membership,
    Role,
    Scope,
    User,
    Workspace,
    new_webhook_secret,
    normalize_email,
)

logger = logging.getLogger(__name__)


class TeamActionError(Exception):
    """A team action the rules refuse; the message is shown to the user as is."""


def _require_manager(actor: Membership) -> None:
    if not actor.can_manage:
        raise PermissionDenied("Only owners and admins manage members.")


def _require_team(workspace: Workspace) -> None:
    if not workspace.is_team:
        raise TeamActionError("A personal workspace has no other members. Create a team instead.")


def _clean_name(name: str) -> str:
    name = " ".join(name.split())
    if not name:
        raise TeamActionError("Give the workspace a name.")
    if len(name) > 100:
        raise TeamActionError("Names are at most 100 characters.")
    return name


def create_team(*, user: User, name: str) -> Workspace:
    with transaction.atomic():
        return Workspace.objects.create_team(name=_clean_name(name), owner=user)


def rename_workspace(*, actor: Membership, name: str) -> Workspace:
    _require_manager(actor)
    workspace = actor.workspace
    workspace.name = _clean_name(name)
    workspace.save(update_fields=["name"])
    return workspace


def delete_team(*, actor: Membership) -> None:
    """Soft-delete a team: it disappears for every member; its ledger history stays."""
    workspace = actor.workspace
    _require_team(workspace)
    if not actor.is_owner:
        raise PermissionDenied("Only the owner can delete a team.")
    now = timezone.now()
    with transaction.atomic():
        Workspace.objects.filter(pk=workspace.pk, deleted_at__isnull=True).update(deleted_at=now)
        workspace.invitations.open().update(revoked_at=now)


# --- Invitations -------------------------------------------------------------


def invite_member(*, actor: Membership, email: str, role: str) -> Invitation:
    """Invite `email` with `role`; an open invitation to the same address is renewed."""
    _require_manager(actor)
    workspace = actor.workspace
    _require_team(workspace)
    if role not in ASSIGNABLE_ROLES:
        raise TeamActionError("Choose admin, member or viewer.")
    email = normalize_email(email)
    if workspace.memberships.filter(user__email=email).exists():
        raise TeamActionError(f"{email} is already a member of {workspace.name}.")

    try:
        with transaction.atomic():
            invitation = workspace.invitations.open().select_for_update().filter(
                email=email
            ).first() or Invitation(workspace=workspace, email=email)
            invitation.role = role
            invitation.invited_by = actor.user
            token = invitation.issue_token()
            invitation.save()
            transaction.on_commit(lambda: send_invitation_email(invitation, token))
    except IntegrityError:
        # Another admin invited the same address at the same moment.
        raise TeamActionError(f"{email} has just been invited by someone else.") from None
    return invitation


def resend_invitation(*, actor: Membership, invitation: Invitation) -> Invitation:
    _require_manager(actor)
    with transaction.atomic():
        invitation = Invitation.objects.select_for_update().get(pk=invitation.pk)
        if invitation.accepted_at or invitation.revoked_at:
            raise TeamActionError("That invitation is no longer open.")
        token = invitation.issue_token()
        invitation.save(update_fields=["token_hash", "sent_at", "expires_at"])
        transaction.on_commit(lambda: send_invitation_email(invitation, token))
    return invitation


def revoke_invitation(*, actor: Membership, invitation: Invitation) -> None:
    _require_manager(actor)
    Invitation.objects.open().filter(pk=invitation.pk).update(revoked_at=timezone.now())


def send_invitation_email(invitation: Invitation, token: str) -> None:
    context = {
        "invitation": invitation,
        "workspace": invitation.workspace,
        "inviter": invitation.invited_by,
        "accept_url": settings.SITE_URL + reverse("invitation_accept", args=[token]),
        "valid_days": settings.INVITATION_VALID_DAYS,
    }
    subject = render_to_string("emails/invitation-subject.txt", context).strip()
    message = EmailMultiAlternatives(
        subject=subject,
        body=render_to_string("emails/invitation-body.txt", context),
        to=[invitation.email],
    )
    message.attach_alternative(
        render_to_string("emails/invitation-body.html", context), "text/html"
    )
    try:
        message.send()
    except OSError:
        # The invitation is saved; the inviter can resend once mail works again.
        logger.exception("Could not send the invitation email for %s", invitation.pk)


def find_invitation(token: str) -> Invitation | None:
    return (
        Invitation.objects.select_related("workspace", "invited_by")
        .filter(token_hash=Invitation.hash_token(token))
        .first()
    )


def verified_emails(user: User) -> list[str]:
    return list(
        EmailAddress.objects.filter(user=user, verified=True).values_list("email", flat=True)
    )


def invitation_problem(invitation: Invitation | None, user: User | None) -> str | None:
    """Why `user` cannot accept `invitation` right now, in words for them; None if they can."""
    if invitation is None:
        return "This invitation link is not valid. Ask for a new invitation."
    if invitation.workspace.deleted_at:
        return "The team this invitation is for no longer exists."
    status = invitation.status
    if status == Invitation.Status.ACCEPTED:
        return "This invitation has already been used."
    if status == Invitation.Status.REVOKED:
        return "This invitation was withdrawn. Ask the team's admins for a new one."
    if status == Invitation.Status.EXPIRED:
        return "This invitation has expired. Ask the team's admins to send it again."
    if user is None:
        return None
    if not invitation.matches(verified_emails(user)):
        if invitation.matches([user.email]):
            return f"Confirm your email address {user.email} first, then open this link again."
        return (
            f"This invitation was sent to {invitation.email}, but you are signed in as "
            f"{user.email}. Sign in with the invited address to accept it."
        )
    return None


def accept_invitation(*, token: str, user: User) -> Membership:
    invitation = find_invitation(token)
    problem = invitation_problem(invitation, user)
    if problem:
        raise TeamActionError(problem)
    assert invitation is not None
    now = timezone.now()
    with transaction.atomic():
        # Single use: only the request that flips accepted_at gets the membership.
        claimed = (
            Invitation.objects.pending()
            .filter(pk=invitation.pk)
            .update(accepted_at=now, accepted_by=user)
        )
        if not claimed:
            raise TeamActionError("This invitation has already been used.")
        membership, _ = Membership.objects.get_or_create(
            workspace=invitation.workspace, user=user, defaults={"role": invitation.role}
        )
    return membership


# --- Members -----------------------------------------------------------------


def change_role(*, actor: Membership, target: Membership, role: str) -> Membership:
    _require_manager(actor)
    if role not in ASSIGNABLE_ROLES:
        raise TeamActionError("Choose admin, member or viewer.")
    if target.is_owner:
        raise TeamActionError("The owner's role changes only by transferring ownership.")
    target.role = role
    target.save(update_fields=["role"])
    return target


def set_monthly_cap(*, actor: Membership, target: Membership, cap: int | None) -> Membership:
    """Limit what `target` may spend per calendar month in this team (None: no limit)."""
    _require_manager(actor)
    _require_team(actor.workspace)
    if cap is not None and cap < 0:
        raise TeamActionError("A monthly limit is zero or more credits.")
    target.monthly_cap = cap
    target.save(update_fields=["monthly_cap"])
    return target


def remove_member(*, actor: Membership, target: Membership) -> None:
    _require_manager(actor)
    if target.is_owner:
        raise TeamActionError("The owner cannot be removed. Transfer ownership first.")
    if target.pk == actor.pk:
        raise TeamActionError("To remove yourself, leave the team.")
    target.delete()


def leave_workspace(*, membership: Membership) -> None:
    _require_team(membership.workspace)
    if membership.is_owner:
        raise TeamActionError("Transfer ownership to another member before leaving.")
    membership.delete()


def transfer_ownership(*, actor: Membership, target: Membership) -> None:
    _require_team(actor.workspace)
    if not actor.is_owner:
        raise PermissionDenied("Only the owner can transfer ownership.")
    if target.pk == actor.pk:
        raise TeamActionError("You already own this team.")
    with transaction.atomic():
        # Lock both rows so a concurrent role change cannot interleave; demote
        # first because the database allows at most one owner per workspace.
        locked = {
            m.pk: m
            for m in Membership.objects.select_for_update()
            .filter(pk__in=[actor.pk, target.pk])
            .order_by("pk")
        }
        owner, heir = locked.get(actor.pk), locked.get(target.pk)
        if owner is None or heir is None or owner.role != Role.OWNER:
            raise TeamActionError("The team changed meanwhile. Reload and try again.")
        owner.role = Role.ADMIN
        owner.save(update_fields=["role"])
        heir.role = Role.OWNER
        heir.save(update_fields=["role"])


# --- API keys and the webhook secret ----------------------------------------------

# After a rotation the previous webhook secret keeps signing this long beside the new one.
WEBHOOK_SECRET_OVERLAP = timedelta(hours=24)


def _require_key_manager(actor: Membership) -> None:
    if not actor.can_manage:
        raise PermissionDenied("Only owners and admins manage API keys and webhooks.")


def create_api_key(
    *,
    actor: Membership,
    name: str,
    scopes: list[str],
    expires_at: datetime | None = None,
) -> tuple[ApiKey, str]:
    """A new key for the actor's workspace; returns it and its text, shown only once.
    The key acts with its creator's role in the workspace, and only within `scopes`."""
    _require_key_manager(actor)
    user = actor.user
    if not user.has_verified_email():
        raise TeamActionError("Confirm your email address before creating API keys.")
    name = " ".join(name.split())
    if not name:
        raise TeamActionError("Give the key a name, such as the app that will use it.")
    if len(name) > 100:
        raise TeamActionError("Key names are at most 100 characters.")
    unknown = sorted(set(scopes) - set(Scope.values))
    if unknown:
        raise TeamActionError(f"Unknown scope: {', '.join(unknown)}.")
    if not scopes:
        raise TeamActionError("Choose at least one scope.")
    if expires_at is not None and expires_at <= timezone.now():
        raise TeamActionError("The expiry date must be in the future.")
    key, text = ApiKey.issue(
        workspace=actor.workspace,
        name=name,
        scopes=[s for s in Scope.values if s in scopes],
        created_by=user,
        expires_at=expires_at,
    )
    key.save(force_insert=True)
    logger.info("API key %s created in %s by %s", key.prefix, actor.workspace.slug, user.pk)
    return key, text


def revoke_api_key(*, actor: Membership, key: ApiKey) -> None:
    """Effective on the key's next request: authentication reads the row every time."""
    _require_key_manager(actor)
    ApiKey.objects.filter(pk=key.pk, revoked_at__isnull=True).update(revoked_at=timezone.now())
    key.refresh_from_db(fields=["revoked_at"])


def rotate_webhook_secret(*, actor: Membership) -> Workspace:
    """A new signing secret; the old one keeps signing beside it for a day."""
    _require_key_manager(actor)
    with transaction.atomic():
        # Locked so two rotations at once cannot both keep the same "previous" secret.
        workspace = Workspace.objects.select_for_update().get(pk=actor.workspace_id)
        workspace.previous_webhook_secret = workspace.webhook_secret
        workspace.previous_webhook_secret_expires_at = timezone.now() + WEBHOOK_SECRET_OVERLAP
        workspace.webhook_secret = new_webhook_secret()
        workspace.save(
            update_fields=[
                "webhook_secret",
                "previous_webhook_secret",
                "previous_webhook_secret_expires_at",
            ]
        )
    actor.workspace = workspace
    return workspace
