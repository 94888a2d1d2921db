from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta

from django import forms
from django.utils import timezone

from accounts.models import ASSIGNABLE_ROLES, Scope

ROLE_CHOICES = [(role.value, f"{role.label} — {role.description}") for role in ASSIGNABLE_ROLES]


class TeamNameForm(forms.Form):
    name = forms.CharField(label="Team name", max_length=100)


class InviteForm(forms.Form):
    email = forms.EmailField(label="Email address")
    role = forms.ChoiceField(label="Role", choices=ROLE_CHOICES, initial="member")


class RoleForm(forms.Form):
    role = forms.ChoiceField(label="Role", choices=[(r.value, r.label) for r in ASSIGNABLE_ROLES])


class DeleteTeamForm(forms.Form):
    confirm_name = forms.CharField(label="Type the team's name to confirm", max_length=100)

    def __init__(self, *args: object, team_name: str, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.team_name = team_name

    def clean_confirm_name(self) -> str:
        value: str = self.cleaned_data["confirm_name"]
        if value.strip() != self.team_name:
            raise forms.ValidationError("That is not the team's name.")
        return value


class MonthlyCapForm(forms.Form):
    monthly_cap = forms.IntegerField(
        label="Monthly limit (credits)", min_value=0, max_value=10_000_000, required=False
    )


class ApiKeyForm(forms.Form):
    name = forms.CharField(
        label="Name",
        max_length=100,
        help_text="What will use the key, such as the app or script: it helps you revoke "
        "the right one later.",
    )
    scopes = forms.MultipleChoiceField(
        label="Scopes",
        choices=Scope.choices,
        initial=Scope.values,
        widget=forms.CheckboxSelectMultiple,
        error_messages={"required": "Choose at least one scope."},
    )
    expires_on = forms.DateField(
        label="Expires on (optional)",
        required=False,
        widget=forms.DateInput(attrs={"type": "date"}),
        help_text="The key stops working at the end of this day (UTC). Leave it empty for "
        "a key that works until it is revoked.",
    )
    # New in every rendering of the form (the view writes it); a second submission with
    # the same token (a reload of the page that showed the key) creates no second key.
    form_token = forms.CharField(widget=forms.HiddenInput, required=False, max_length=64)

    def __init__(self, *args: object, **kwargs: object) -> None:
        kwargs.setdefault("label_suffix", "")
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.fields["expires_on"].widget.attrs["min"] = _today_utc().isoformat()

    def clean_expires_on(self) -> date | None:
        value: date | None = self.cleaned_data["expires_on"]
        if value is not None and value < _today_utc():
            raise forms.ValidationError("Choose today or a later day.")
        if value is not None and value >= date.max:
            raise forms.ValidationError("Choose an earlier day.")
        return value

    @property
    def expires_at(self) -> datetime | None:
        """The end of the chosen day in UTC, when the key stops working."""
        day: date | None = self.cleaned_data.get("expires_on")
        if day is None:
            return None
        return datetime.combine(day, time.min, tzinfo=UTC) + timedelta(days=1)


def _today_utc() -> date:
    return timezone.now().astimezone(UTC).date()
