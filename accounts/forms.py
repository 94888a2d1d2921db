from __future__ import annotations

from django import forms

from accounts.models import ASSIGNABLE_ROLES

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
