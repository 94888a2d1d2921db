"""Forms of the billing page."""

from __future__ import annotations

from typing import Any

from django import forms

from billing.models import Code


class LedgerFilterForm(forms.Form):
    """The ledger's filters; the page and its CSV export read the same ones."""

    code = forms.ChoiceField(
        label="Kind",
        required=False,
        choices=[("", "All kinds"), *Code.choices],
    )
    since = forms.DateField(
        label="From", required=False, widget=forms.DateInput(attrs={"type": "date"})
    )
    until = forms.DateField(
        label="To", required=False, widget=forms.DateInput(attrs={"type": "date"})
    )

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        since, until = cleaned.get("since"), cleaned.get("until")
        if since and until and since > until:
            raise forms.ValidationError("The start date is after the end date.")
        return cleaned


class BuyForm(forms.Form):
    pack = forms.CharField(max_length=40)
