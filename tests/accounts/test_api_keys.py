"""The API keys page: list, create (the key shown once), revoke; and the keys it makes
work against the REST API."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from io import StringIO

import pytest
from allauth.account.models import EmailAddress
from django.core.management import call_command
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from accounts.models import ApiKey, Role, Scope
from accounts.services import create_api_key
from tests.conftest import Team

pytestmark = pytest.mark.django_db

PERSONAS = ["alice", "erin", "bob", "carol", "dave"]  # owner, admin, member, viewer, outsider
KEY_TEXT = re.compile(r"msk_[a-z0-9]{12}_[A-Za-z0-9_-]{20,}")


def _url(team: Team, name: str, *args: object) -> str:
    return reverse(name, args=[team.workspace.slug, *args])


def _create(client: Client, team: Team, **data: object) -> str:
    """Create a key on the page; the text the page shows."""
    fields: dict[str, object] = {"name": "Render farm", "scopes": Scope.values, **data}
    response = client.post(_url(team, "api_key_create"), fields)
    assert response.status_code == 200
    found = KEY_TEXT.search(response.content.decode())
    assert found, "the new key is shown"
    return found.group(0)


def _key(team: Team, name: str = "Script") -> ApiKey:
    key, _ = create_api_key(actor=team.membership(team.alice), name=name, scopes=Scope.values)
    return key


Case = tuple[str, str, Callable[[Team], list[object]], dict[str, object], int]

CASES: list[Case] = [
    ("GET", "api_keys", lambda t: [], {}, 200),
    ("POST", "api_key_create", lambda t: [], {"name": "CI", "scopes": ["billing:read"]}, 200),
    ("POST", "api_key_revoke", lambda t: [_key(t).pk], {}, 302),
]


@pytest.mark.parametrize("persona", PERSONAS)
@pytest.mark.parametrize(("method", "name", "args", "data", "ok"), CASES, ids=[c[1] for c in CASES])
def test_access(
    client: Client,
    team: Team,
    persona: str,
    method: str,
    name: str,
    args: Callable[[Team], list[object]],
    data: dict[str, object],
    ok: int,
) -> None:
    url = _url(team, name, *args(team))
    keys_before = ApiKey.objects.filter(revoked_at__isnull=True).count()
    client.force_login(team.persona(persona))
    response = client.get(url) if method == "GET" else client.post(url, data)
    expected = {"alice": ok, "erin": ok, "bob": 403, "carol": 403, "dave": 404}[persona]
    assert response.status_code == expected
    if expected != ok:  # a refused action changes nothing
        assert ApiKey.objects.filter(revoked_at__isnull=True).count() == keys_before


@pytest.mark.parametrize("name", ["api_key_create", "api_key_revoke"])
def test_actions_refuse_get(client: Client, team: Team, name: str) -> None:
    args = [_key(team).pk] if name == "api_key_revoke" else []
    client.force_login(team.alice)
    assert client.get(_url(team, name, *args)).status_code == 405


@pytest.mark.parametrize("name", ["api_key_create", "api_key_revoke"])
def test_posts_need_the_csrf_token(team: Team, name: str) -> None:
    key = _key(team)
    client = Client(enforce_csrf_checks=True)
    client.force_login(team.alice)
    args = [key.pk] if name == "api_key_revoke" else []
    data = {"name": "Forged", "scopes": Scope.values}
    assert client.post(_url(team, name, *args), data).status_code == 403
    assert list(ApiKey.objects.values_list("name", "revoked_at")) == [("Script", None)]


def test_the_navigation_links_the_page_for_owners_and_admins_only(
    client: Client, team: Team
) -> None:
    link = f'href="{_url(team, "api_keys")}"'
    for persona, shown in [("alice", True), ("erin", True), ("bob", False), ("carol", False)]:
        client.force_login(team.persona(persona))
        page = client.get(_url(team, "members")).content.decode()
        assert (link in page) is shown, persona


def test_the_empty_state_says_what_keys_are_for(client: Client, team: Team) -> None:
    client.force_login(team.alice)
    page = client.get(_url(team, "api_keys")).content.decode()
    assert "No API keys yet." in page
    assert "through the REST API" in page
    assert 'href="/api/docs/"' in page
    assert "curl http://testserver/api/v1/workspace" in page
    assert 'Authorization: Bearer msk_…"' in page


def test_the_form_offers_every_scope_checked_by_default(client: Client, team: Team) -> None:
    client.force_login(team.alice)
    page = client.get(_url(team, "api_keys")).content.decode()
    for scope in Scope.values:
        assert re.search(
            rf'<input type="checkbox" name="scopes" value="{scope}"[^>]* checked', page
        )
    assert '<input type="date" name="expires_on"' in page
    assert '<label for="id_name">Name</label>' in page


def test_the_key_is_shown_once_and_only_its_hash_is_kept(client: Client, team: Team) -> None:
    client.force_login(team.erin)
    response = client.post(
        _url(team, "api_key_create"),
        {"name": "Render farm", "scopes": Scope.values, "form_token": "t1"},
    )
    assert "no-store" in response["Cache-Control"]
    text = KEY_TEXT.search(response.content.decode())
    assert text
    key = ApiKey.objects.get()
    assert (key.name, key.created_by, key.scopes) == ("Render farm", team.erin, Scope.values)
    assert text.group(0).startswith(key.prefix + "_")
    secret = text.group(0).removeprefix(key.prefix + "_")
    assert secret not in key.secret_hash
    assert key.matches(secret)

    listing = client.get(_url(team, "api_keys")).content.decode()
    assert text.group(0) not in listing
    assert secret not in listing
    assert f'<code class="key-prefix">{key.prefix}…</code>' in listing


def test_submitting_the_same_form_again_creates_no_second_key(client: Client, team: Team) -> None:
    client.force_login(team.alice)
    data = {"name": "Render farm", "scopes": Scope.values, "form_token": "same-form"}
    first = client.post(_url(team, "api_key_create"), data)
    text = KEY_TEXT.search(first.content.decode())
    assert text

    again = client.post(_url(team, "api_key_create"), data, follow=True)
    assert again.redirect_chain == [(_url(team, "api_keys"), 302)]
    page = again.content.decode()
    assert "That key was already created" in page
    assert text.group(0) not in page
    assert not KEY_TEXT.search(page)
    assert ApiKey.objects.count() == 1


def test_each_rendering_of_the_form_has_its_own_token(client: Client, team: Team) -> None:
    client.force_login(team.alice)
    tokens = set()
    for _ in range(2):
        page = client.get(_url(team, "api_keys")).content.decode()
        found = re.search(r'name="form_token" value="([^"]+)"', page)
        assert found
        tokens.add(found.group(1))
    assert len(tokens) == 2


def test_a_key_with_chosen_scopes_and_an_expiry_day(client: Client, team: Team) -> None:
    client.force_login(team.alice)
    day = (timezone.now() + timedelta(days=30)).astimezone(UTC).date()
    _create(
        client,
        team,
        name="Reporting",
        scopes=["billing:read", "generations:read"],
        expires_on=day.isoformat(),
    )
    key = ApiKey.objects.get()
    # Stored in the scopes' canonical order; working until the end of that day (UTC).
    assert key.scopes == ["generations:read", "billing:read"]
    assert key.expires_at == datetime.combine(day + timedelta(days=1), datetime.min.time(), UTC)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"name": "", "scopes": Scope.values}, "This field is required."),
        ({"name": "No scopes"}, "Choose at least one scope."),
        ({"name": "Bad", "scopes": ["admin:all"]}, "Select a valid choice."),
        (
            {"name": "Old", "scopes": Scope.values, "expires_on": "2020-01-01"},
            "Choose today or a later day.",
        ),
        ({"name": "x" * 101, "scopes": Scope.values}, "at most 100 characters"),
    ],
)
def test_invalid_forms_are_shown_again_with_the_reason(
    client: Client, team: Team, data: dict[str, object], message: str
) -> None:
    client.force_login(team.alice)
    response = client.post(_url(team, "api_key_create"), data)
    assert response.status_code == 200
    page = response.content.decode()
    assert message in page
    assert 'aria-invalid="true"' in page
    assert ApiKey.objects.count() == 0


def test_an_unconfirmed_email_is_asked_for_before_a_key(client: Client, team: Team) -> None:
    EmailAddress.objects.filter(user=team.erin).update(verified=False)
    client.force_login(team.erin)
    page = client.get(_url(team, "api_keys")).content.decode()
    assert "Confirm your email address <strong>erin@example.com</strong>" in page
    assert 'href="/accounts/email/"' in page
    assert 'name="scopes"' not in page

    response = client.post(_url(team, "api_key_create"), {"name": "x", "scopes": Scope.values})
    assert "Confirm your email address before creating API keys." in response.content.decode()
    assert ApiKey.objects.count() == 0


def test_the_list_shows_each_keys_details_and_status(client: Client, team: Team) -> None:
    active = _key(team, "Active one")
    active.last_used_at = timezone.now()
    active.save()
    revoked = _key(team, "Revoked one")
    revoked.revoked_at = timezone.now()
    revoked.save()
    expired = _key(team, "Expired one")
    expired.expires_at = timezone.now() - timedelta(minutes=1)
    expired.save()

    client.force_login(team.erin)
    page = client.get(_url(team, "api_keys")).content.decode()
    rows = {key.name: _row(page, key) for key in (active, revoked, expired)}
    assert "badge-ok" in rows["Active one"]
    assert "Active" in rows["Active one"]
    assert "by alice@example.com" in rows["Active one"]
    assert "<code>generations:write</code>" in rows["Active one"]
    assert f'datetime="{active.last_used_at:%Y-%m-%dT%H:%M:%S}' in rows["Active one"]
    assert "Revoked</span>" in rows["Revoked one"]
    assert "Expired</span>" in rows["Expired one"]
    assert rows["Expired one"].count("Never") == 1  # not used; its expiry is shown
    # Only an active key has something left to revoke.
    assert "Revoke Active one" in rows["Active one"]
    assert "Revoke" not in rows["Revoked one"].replace("Revoked", "")
    assert "Revoke" not in rows["Expired one"]


def _row(page: str, key: ApiKey) -> str:
    found = re.search(rf'<tr id="key-{key.pk}">(.*?)</tr>', page, re.S)
    assert found, key.name
    return found.group(1)


def test_revoking_asks_first_and_stops_the_key(client: Client, team: Team) -> None:
    key = _key(team)
    client.force_login(team.erin)
    page = client.get(_url(team, "api_keys")).content.decode()
    assert 'data-confirm="Revoke Script (' in page
    response = client.post(_url(team, "api_key_revoke", key.pk), follow=True)
    assert f"Script ({key.prefix}…) is revoked" in response.content.decode()
    key.refresh_from_db()
    assert key.revoked_at is not None
    assert key.status == "revoked"


def test_another_workspaces_key_is_a_404(client: Client, team: Team) -> None:
    dave = team.dave.personal_workspace.memberships.get()
    theirs, _ = create_api_key(actor=dave, name="Dave's", scopes=Scope.values)
    client.force_login(team.alice)
    assert client.post(_url(team, "api_key_revoke", theirs.pk)).status_code == 404
    theirs.refresh_from_db()
    assert theirs.revoked_at is None


def test_the_list_uses_a_fixed_number_of_queries_for_2_and_for_50_keys(
    client: Client, team: Team
) -> None:
    client.force_login(team.alice)
    url = _url(team, "api_keys")
    client.get(url)  # warm up the session

    def queries() -> int:
        with CaptureQueriesContext(connection) as captured:
            assert client.get(url).status_code == 200
        return len(captured)

    def add_keys(numbers: range) -> None:
        creators = [team.membership(team.alice), team.membership(team.erin)]
        for n in numbers:
            create_api_key(actor=creators[n % 2], name=f"Key {n}", scopes=Scope.values)

    add_keys(range(2))
    small = queries()
    add_keys(range(2, 50))
    assert ApiKey.objects.count() == 50
    assert queries() == small


def test_a_key_made_on_the_page_works_against_the_api_until_revoked(
    client: Client, team: Team
) -> None:
    client.force_login(team.alice)
    text = _create(client, team)
    api = Client()
    answer = api.get("/api/v1/workspace", HTTP_AUTHORIZATION=f"Bearer {text}")
    assert answer.status_code == 200
    assert answer.json()["slug"] == team.workspace.slug

    key = ApiKey.objects.get()
    client.post(_url(team, "api_key_revoke", key.pk))
    answer = api.get("/api/v1/workspace", HTTP_AUTHORIZATION=f"Bearer {text}")
    assert answer.status_code == 401
    assert answer.json()["error"]["code"] == "unauthenticated"


def test_the_page_and_the_command_make_the_same_keys(client: Client, team: Team) -> None:
    out = StringIO()
    call_command("create_api_key", "erin@example.com", team.workspace.slug, stdout=out)
    made = json.loads(out.getvalue())
    client.force_login(team.alice)
    page = client.get(_url(team, "api_keys")).content.decode()
    key = ApiKey.objects.get()
    assert made["prefix"] == key.prefix
    assert "Command line" in _row(page, key)
    assert "by erin@example.com" in _row(page, key)
    assert made["key"] not in page


def test_the_pages_need_no_inline_script_or_style(client: Client, team: Team) -> None:
    """Both pages work under the strict Content-Security-Policy (the copy button's script
    is loaded from our origin)."""
    client.force_login(team.alice)
    created = client.post(_url(team, "api_key_create"), {"name": "CI", "scopes": Scope.values})
    listing = client.get(_url(team, "api_keys"))
    for response in (created, listing):
        html = response.content.decode()
        assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", html)
        assert " style=" not in html
    assert 'data-copy="#new-api-key"' in created.content.decode()


def test_a_viewer_is_told_who_manages_keys(client: Client, team: Team) -> None:
    client.force_login(team.carol)
    response = client.get(_url(team, "api_keys"))
    assert response.status_code == 403
    assert Role.ADMIN.label.lower() in response.content.decode()
