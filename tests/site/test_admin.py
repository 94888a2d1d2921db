"""The Django admin covers every model of the project, each with a working search."""

from __future__ import annotations

import pytest
from django.apps import apps
from django.contrib import admin
from django.test import Client

from tests.conftest import make_user

PROJECT_APPS = ("accounts", "billing", "generations")
MODELS = [model for app in PROJECT_APPS for model in apps.get_app_config(app).get_models()]


@pytest.mark.parametrize("model", MODELS, ids=[m._meta.label for m in MODELS])
def test_every_model_is_in_the_admin_with_search(model: type) -> None:
    assert model in admin.site._registry, f"{model._meta.label} is not in the admin"
    assert admin.site._registry[model].search_fields


@pytest.mark.django_db
@pytest.mark.parametrize("model", MODELS, ids=[m._meta.label for m in MODELS])
def test_every_admin_list_answers_a_search(client: Client, model: type) -> None:
    staff = make_user("ops@example.com")
    staff.is_staff = staff.is_superuser = True
    staff.save()
    client.force_login(staff)
    meta = model._meta  # type: ignore[attr-defined]
    response = client.get(f"/admin/{meta.app_label}/{meta.model_name}/", {"q": "ops"})
    assert response.status_code == 200
