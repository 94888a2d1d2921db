"""`python manage.py create_user EMAIL [--password P]`: an account with a verified email.

Prints one JSON object: {"email": ..., "workspace": <personal workspace slug>}.
"""

from __future__ import annotations

import json
from typing import Any

from allauth.account.models import EmailAddress
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.core.validators import validate_email
from django.db import transaction

from accounts.models import User, normalize_email


class Command(BaseCommand):
    help = "Create a user with a verified email address and a personal workspace."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("email")
        parser.add_argument("--password", help="Without it the user sets one by resetting it.")

    def handle(self, *args: Any, **options: Any) -> None:
        email = normalize_email(options["email"])
        try:
            validate_email(email)
        except ValidationError:
            raise CommandError(f"{options['email']!r} is not a valid email address.") from None
        if User.objects.filter(email__iexact=email).exists():
            raise CommandError(f"A user with the email {email} already exists.")
        password = options["password"]
        if password is not None:
            try:
                validate_password(password, User(email=email))
            except ValidationError as error:
                raise CommandError(
                    "The password is too weak: " + " ".join(error.messages)
                ) from None

        with transaction.atomic():
            user = User.objects.create_user(email, password)
            EmailAddress.objects.create(user=user, email=email, verified=True, primary=True)
        workspace = user.personal_workspace
        self.stdout.write(json.dumps({"email": user.email, "workspace": workspace.slug}))
