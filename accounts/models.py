"""Users, workspaces, memberships and invitations.

A workspace owns credits, generations, API keys and the webhook secret. Every
user has a personal workspace from the moment the user row exists, whatever
created it (signup, the admin, `create_user`), and may create team
workspaces and be invited into others with a role.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import uuid
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, ClassVar

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser, BaseUserManager, PermissionsMixin
from django.db import IntegrityError, models, transaction
from django.db.models.functions import Lower
from django.utils import timezone
from django.utils.crypto import get_random_string
from django.utils.text import slugify

if TYPE_CHECKING:
    from collections.abc import Iterable


def normalize_email(email: str) -> str:
    """Emails are compared case-insensitively everywhere, so they are stored lowercased."""
    return email.strip().lower()


class Role(models.TextChoices):
    OWNER = "owner", "Owner"
    ADMIN = "admin", "Admin"
    MEMBER = "member", "Member"
    VIEWER = "viewer", "Viewer"

    @property
    def rank(self) -> int:
        return _ROLE_RANK[self]

    def at_least(self, other: Role) -> bool:
        return self.rank >= other.rank

    @property
    def description(self) -> str:
        return _ROLE_DESCRIPTION[self]


_ROLE_RANK = {Role.VIEWER: 0, Role.MEMBER: 1, Role.ADMIN: 2, Role.OWNER: 3}
_ROLE_DESCRIPTION = {
    Role.OWNER: "Everything, including deleting the team and transferring ownership.",
    Role.ADMIN: "Manages members, billing, API keys and caps; generates videos.",
    Role.MEMBER: "Generates videos with the team's credits.",
    Role.VIEWER: "Sees the team's videos and usage; cannot spend credits.",
}

# Roles an invitation or a role change may grant; ownership only moves by transfer.
ASSIGNABLE_ROLES = (Role.ADMIN, Role.MEMBER, Role.VIEWER)


class UserManager(BaseUserManager["User"]):
    use_in_migrations = True

    def create_user(self, email: str, password: str | None = None, **extra: Any) -> User:
        if not email:
            raise ValueError("A user needs an email address.")
        user = self.model(email=normalize_email(email), **extra)
        user.set_password(password)
        user.save(using=self._db)
        return user

    def create_superuser(self, email: str, password: str | None = None, **extra: Any) -> User:
        extra.setdefault("is_staff", True)
        extra.setdefault("is_superuser", True)
        return self.create_user(email, password, **extra)


class User(AbstractBaseUser, PermissionsMixin):
    email = models.EmailField("email address", unique=True)
    name = models.CharField(max_length=150, blank=True)
    is_staff = models.BooleanField(
        default=False, help_text="Can sign in to the operator's admin site."
    )
    is_active = models.BooleanField(default=True)
    date_joined = models.DateTimeField(default=timezone.now)

    objects: ClassVar[UserManager] = UserManager()

    USERNAME_FIELD = "email"
    EMAIL_FIELD = "email"
    REQUIRED_FIELDS: ClassVar[list[str]] = []

    class Meta:
        constraints = [
            models.UniqueConstraint(Lower("email"), name="accounts_user_email_ci_unique"),
        ]

    def __str__(self) -> str:
        return self.email

    def save(self, *args: Any, **kwargs: Any) -> None:
        # Creating the personal workspace here rather than in one view or signal
        # keeps "every user has one" true for every path that creates users:
        # signup, the admin, `create_user`, `createsuperuser`, tests. It touches
        # only the database, in the same transaction as the user row.
        self.email = normalize_email(self.email)
        creating = self._state.adding
        with transaction.atomic():
            super().save(*args, **kwargs)
            if creating:
                Workspace.objects.create_personal(self)

    @property
    def display_name(self) -> str:
        return self.name or self.email.split("@", 1)[0]

    def has_verified_email(self) -> bool:
        """True once the user's current address has been confirmed (allauth keeps the record)."""
        from allauth.account.models import EmailAddress

        return EmailAddress.objects.filter(
            user=self, email__iexact=self.email, verified=True
        ).exists()


def new_webhook_secret() -> str:
    """A Standard Webhooks signing secret: `whsec_` + 32 random bytes in base64."""
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


class WorkspaceQuerySet(models.QuerySet["Workspace"]):
    def live(self) -> WorkspaceQuerySet:
        return self.filter(deleted_at__isnull=True)

    def for_user(self, user: User) -> WorkspaceQuerySet:
        return self.live().filter(memberships__user=user)


class WorkspaceManager(models.Manager["Workspace"]):
    def get_queryset(self) -> WorkspaceQuerySet:
        return WorkspaceQuerySet(self.model, using=self._db)

    def live(self) -> WorkspaceQuerySet:
        return self.get_queryset().live()

    def for_user(self, user: User) -> WorkspaceQuerySet:
        return self.get_queryset().for_user(user)

    def create_personal(self, user: User) -> Workspace:
        workspace = self._create_with_unique_slug(
            base=user.email.split("@", 1)[0],
            name=f"{user.display_name}'s workspace",
            kind=Workspace.Kind.PERSONAL,
            personal_for=user,
            created_by=user,
        )
        Membership.objects.create(workspace=workspace, user=user, role=Role.OWNER)
        from billing import wallets

        wallets.open_accounts(workspace)
        wallets.grant_signup_credits(workspace)
        return workspace

    def create_team(self, *, name: str, owner: User) -> Workspace:
        workspace = self._create_with_unique_slug(
            base=name, name=name, kind=Workspace.Kind.TEAM, created_by=owner
        )
        Membership.objects.create(workspace=workspace, user=owner, role=Role.OWNER)
        from billing import wallets

        wallets.open_accounts(workspace)
        return workspace

    def _create_with_unique_slug(self, *, base: str, **fields: Any) -> Workspace:
        stem = slugify(base)[:40].strip("-") or "workspace"
        candidates = [stem] + [
            f"{stem}-{get_random_string(5, 'abcdefghijkmnpqrstuvwxyz23456789')}" for _ in range(8)
        ]
        for slug in candidates:
            if self.filter(slug=slug).exists():
                continue
            try:
                # A savepoint, so losing a race for the slug does not poison the
                # surrounding transaction; the next candidate is tried instead.
                with transaction.atomic():
                    return self.create(slug=slug, **fields)
            except IntegrityError:
                if not self.filter(slug=slug).exists():
                    raise
        raise IntegrityError(f"Could not find a free workspace slug for {base!r}")


class Workspace(models.Model):
    class Kind(models.TextChoices):
        PERSONAL = "personal", "Personal"
        TEAM = "team", "Team"

    name = models.CharField(max_length=100)
    slug = models.SlugField(max_length=60, unique=True)
    kind = models.CharField(max_length=10, choices=Kind.choices)
    personal_for = models.OneToOneField(
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="personal_workspace",
        help_text="Set on personal workspaces only.",
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)
    deleted_at = models.DateTimeField(null=True, blank=True)

    # Signs the outgoing webhooks of this workspace's generations. After a rotation the
    # previous secret keeps signing beside the new one until `…_expires_at`, so receivers
    # can switch without missing a delivery.
    webhook_secret = models.CharField(max_length=80, default=new_webhook_secret)
    previous_webhook_secret = models.CharField(max_length=80, blank=True, default="")
    previous_webhook_secret_expires_at = models.DateTimeField(null=True, blank=True)

    objects = WorkspaceManager()

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=(
                    models.Q(kind="personal", personal_for__isnull=False)
                    | models.Q(kind="team", personal_for__isnull=True)
                ),
                name="accounts_workspace_personal_has_user",
            ),
        ]

    def __str__(self) -> str:
        return self.name

    @property
    def is_personal(self) -> bool:
        return self.kind == self.Kind.PERSONAL

    @property
    def is_team(self) -> bool:
        return self.kind == self.Kind.TEAM

    @property
    def webhook_overlap_ends_at(self) -> datetime | None:
        """When the previous secret stops signing beside the current one; None when it
        no longer does (or there never was a rotation)."""
        expires = self.previous_webhook_secret_expires_at
        if self.previous_webhook_secret and expires and expires > timezone.now():
            return expires
        return None

    def webhook_signing_secrets(self) -> list[str]:
        """The secrets that sign a delivery now: the current one, and the previous one
        during its overlap after a rotation."""
        secrets_now = [self.webhook_secret]
        if self.webhook_overlap_ends_at is not None:
            secrets_now.append(self.previous_webhook_secret)
        return secrets_now


class MembershipQuerySet(models.QuerySet["Membership"]):
    def live(self) -> MembershipQuerySet:
        return self.filter(workspace__deleted_at__isnull=True)


class Membership(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="memberships")
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships"
    )
    role = models.CharField(max_length=10, choices=Role.choices)
    monthly_cap = models.PositiveIntegerField(
        null=True,
        blank=True,
        help_text="Most credits this member may spend per calendar month (UTC); empty = no cap.",
    )
    created_at = models.DateTimeField(default=timezone.now)

    objects = MembershipQuerySet.as_manager()

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["workspace", "user"], name="accounts_membership_one_per_user"
            ),
            # Ownership moves by demoting the old owner before promoting the new one.
            models.UniqueConstraint(
                fields=["workspace"],
                condition=models.Q(role="owner"),
                name="accounts_membership_one_owner",
            ),
            models.CheckConstraint(
                condition=models.Q(role__in=["owner", "admin", "member", "viewer"]),
                name="accounts_membership_role_valid",
            ),
        ]
        indexes = [
            # The workspace switcher and the access check: a user's memberships.
            models.Index(fields=["user", "workspace"], name="accounts_membership_by_user"),
        ]

    def __str__(self) -> str:
        return f"{self.user} in {self.workspace} ({self.role})"

    @property
    def role_enum(self) -> Role:
        return Role(self.role)

    def has_role(self, minimum: Role) -> bool:
        return self.role_enum.at_least(minimum)

    @property
    def is_owner(self) -> bool:
        return self.role == Role.OWNER

    @property
    def can_manage(self) -> bool:
        """Owners and admins manage members, billing, API keys and caps."""
        return self.has_role(Role.ADMIN)

    @property
    def can_generate(self) -> bool:
        return self.has_role(Role.MEMBER)


def _hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _invitation_expiry() -> Any:
    return timezone.now() + timedelta(days=settings.INVITATION_VALID_DAYS)


class InvitationQuerySet(models.QuerySet["Invitation"]):
    def pending(self) -> InvitationQuerySet:
        return self.filter(
            accepted_at__isnull=True, revoked_at__isnull=True, expires_at__gt=timezone.now()
        )

    def open(self) -> InvitationQuerySet:
        """Neither accepted nor revoked (possibly expired, which a resend fixes)."""
        return self.filter(accepted_at__isnull=True, revoked_at__isnull=True)


class Invitation(models.Model):
    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        EXPIRED = "expired", "Expired"
        ACCEPTED = "accepted", "Accepted"
        REVOKED = "revoked", "Revoked"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="invitations")
    email = models.EmailField()
    role = models.CharField(max_length=10, choices=[(r.value, r.label) for r in ASSIGNABLE_ROLES])
    # Only a hash is stored: the token itself travels in the emailed link.
    token_hash = models.CharField(max_length=64, unique=True, editable=False)
    invited_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)
    sent_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField(default=_invitation_expiry)
    accepted_at = models.DateTimeField(null=True, blank=True)
    accepted_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    revoked_at = models.DateTimeField(null=True, blank=True)

    objects = InvitationQuerySet.as_manager()

    class Meta:
        constraints = [
            models.UniqueConstraint(
                "workspace",
                Lower("email"),
                condition=models.Q(accepted_at__isnull=True, revoked_at__isnull=True),
                name="accounts_invitation_one_open_per_email",
            ),
            models.CheckConstraint(
                condition=models.Q(role__in=["admin", "member", "viewer"]),
                name="accounts_invitation_role_assignable",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.email} to {self.workspace} ({self.status})"

    def save(self, *args: Any, **kwargs: Any) -> None:
        self.email = normalize_email(self.email)
        super().save(*args, **kwargs)

    @staticmethod
    def hash_token(token: str) -> str:
        return _hash_token(token)

    def issue_token(self) -> str:
        """Give the invitation a fresh token and expiry; returns the token to email."""
        token = secrets.token_urlsafe(32)
        self.token_hash = _hash_token(token)
        self.sent_at = timezone.now()
        self.expires_at = _invitation_expiry()
        return token

    @property
    def status(self) -> Invitation.Status:
        if self.accepted_at:
            return self.Status.ACCEPTED
        if self.revoked_at:
            return self.Status.REVOKED
        if self.expires_at <= timezone.now():
            return self.Status.EXPIRED
        return self.Status.PENDING

    def matches(self, emails: Iterable[str]) -> bool:
        return self.email in {normalize_email(e) for e in emails}


class Scope(models.TextChoices):
    """What an API key may do (DESIGN §3); the key also acts with its creator's role."""

    GENERATIONS_READ = "generations:read", "Read generations and download videos"
    GENERATIONS_WRITE = "generations:write", "Create, cancel and delete generations"
    BILLING_READ = "billing:read", "Read the balance and the ledger"


API_KEY_PREFIX = "msk_"


def _hash_secret(secret: str) -> str:
    # The secret is 32 random bytes: a fast hash is as safe as a slow one here.
    return hashlib.sha256(secret.encode()).hexdigest()


class ApiKeyQuerySet(models.QuerySet["ApiKey"]):
    def active(self) -> ApiKeyQuerySet:
        now = timezone.now()
        return self.filter(
            models.Q(expires_at__isnull=True) | models.Q(expires_at__gt=now),
            revoked_at__isnull=True,
            workspace__deleted_at__isnull=True,
        )


class ApiKey(models.Model):
    """A workspace's key for the REST API: `msk_<lookup>_<secret>`. Only the lookup and
    a hash of the secret are stored; the whole key is shown once, when it is created."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="api_keys")
    name = models.CharField(max_length=100)
    lookup = models.CharField(max_length=16, unique=True, editable=False)
    secret_hash = models.CharField(max_length=64, editable=False)
    scopes = models.JSONField(default=list)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_keys"
    )
    created_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    last_used_at = models.DateTimeField(null=True, blank=True)

    objects = ApiKeyQuerySet.as_manager()

    class Meta:
        verbose_name = "API key"
        indexes = [
            # The API keys page: a workspace's keys, newest first.
            models.Index(fields=["workspace", "-created_at"], name="accounts_apikey_recent"),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"

    @property
    def prefix(self) -> str:
        """What identifies the key on pages and in logs; never the secret."""
        return f"{API_KEY_PREFIX}{self.lookup}"

    @classmethod
    def issue(cls, **fields: Any) -> tuple[ApiKey, str]:
        """A new unsaved key and its full text (to show once)."""
        lookup = get_random_string(12, "abcdefghijklmnopqrstuvwxyz0123456789")
        secret = secrets.token_urlsafe(32)
        key = cls(lookup=lookup, secret_hash=_hash_secret(secret), **fields)
        return key, f"{API_KEY_PREFIX}{lookup}_{secret}"

    @staticmethod
    def split(text: str) -> tuple[str, str] | None:
        """The lookup and secret of a key's text, or None when it is not shaped like one."""
        if not text.startswith(API_KEY_PREFIX):
            return None
        lookup, _, secret = text[len(API_KEY_PREFIX) :].partition("_")
        if len(lookup) != 12 or not secret:
            return None
        return lookup, secret

    def matches(self, secret: str) -> bool:
        return hmac.compare_digest(self.secret_hash, _hash_secret(secret))

    @property
    def status(self) -> str:
        """`active`, `revoked` or `expired`: what the API keys page shows."""
        if self.revoked_at is not None:
            return "revoked"
        if self.expires_at is not None and self.expires_at <= timezone.now():
            return "expired"
        return "active"

    @property
    def is_active(self) -> bool:
        return self.status == "active"

    def has_scope(self, scope: str) -> bool:
        return scope in self.scopes
