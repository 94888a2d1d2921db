"""`python manage.py create_api_key EMAIL WORKSPACE_SLUG [--name NAME] [--scopes a,b]`.

Creates an API key for the workspace on behalf of EMAIL, who must be an owner or admin
there with a confirmed email. Prints one JSON object: {"key", "prefix", "workspace"};
the key is shown only this once.
"""

from __future__ import annotations

import json
from typing import Any

from django.core.exceptions import PermissionDenied
from django.core.management.base import BaseCommand, CommandError, CommandParser

from accounts.models import Membership, Scope, normalize_email
from accounts.services import TeamActionError, create_api_key


class Command(BaseCommand):
    help = "Create an API key for a workspace (shown once)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("email", help="An owner or admin of the workspace.")
        parser.add_argument("workspace_slug")
        parser.add_argument("--name", default="Command line", help="What the key is for.")
        parser.add_argument(
            "--scopes",
            default=",".join(Scope.values),
            help=f"Comma-separated, from {', '.join(Scope.values)} (default: all).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        email = normalize_email(options["email"])
        slug = options["workspace_slug"]
        membership = (
            Membership.objects.live()
            .select_related("workspace", "user")
            .filter(user__email__iexact=email, workspace__slug=slug)
            .first()
        )
        if membership is None:
            raise CommandError(f"{email} is not a member of a workspace with the slug {slug!r}.")
        scopes = [s.strip() for s in options["scopes"].split(",") if s.strip()]
        try:
            key, text = create_api_key(actor=membership, name=options["name"], scopes=scopes)
        except (TeamActionError, PermissionDenied) as refused:
            raise CommandError(str(refused)) from None
        self.stdout.write(
            json.dumps({"key": text, "prefix": key.prefix, "workspace": membership.workspace.slug})
        )
