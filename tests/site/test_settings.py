"""The environment is read strictly: a malformed value stops the process, naming the variable."""

from __future__ import annotations

import secrets

import pytest

from tests.support.processes import manage, python

PRODUCTION = {
    "DJANGO_DEBUG": "False",
    "DJANGO_SECRET_KEY": secrets.token_urlsafe(50),
    "DJANGO_ALLOWED_HOSTS": "studio.example.com",
    "EMAIL_URL": "smtp+tls://mailer:secret@smtp.example.com:587",
}


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("SIGNUP_CREDITS", "ten"),
        ("SIGNUP_CREDITS", "-5"),
        ("DJANGO_DEBUG", "maybe"),
        ("DATABASE_URL", "mysql://db/mochi"),
        ("EMAIL_URL", "pigeon://coop"),
        ("REDIS_URL", "http://cache"),
        ("QCLUSTER_WORKERS", "0"),
        ("LOG_LEVEL", "LOUD"),
        ("LOG_FORMAT", "yaml"),
    ],
)
def test_a_malformed_value_fails_at_start_naming_the_variable(variable: str, value: str) -> None:
    result = manage("check", env={variable: value})
    assert result.returncode != 0
    assert f"{variable}=" in result.stderr
    assert "ImproperlyConfigured" in result.stderr


@pytest.mark.parametrize("token", ["short", "a long token with spaces in the middle of it"])
def test_a_weak_metrics_token_fails_at_start_without_echoing_it(token: str) -> None:
    result = manage("check", env={"METRICS_TOKEN": token})
    assert result.returncode != 0
    assert "METRICS_TOKEN is not valid" in result.stderr
    assert token not in result.stderr


@pytest.mark.parametrize("missing", ["DJANGO_SECRET_KEY", "DJANGO_ALLOWED_HOSTS"])
def test_production_refuses_to_start_without_its_secrets(missing: str) -> None:
    env = dict(PRODUCTION)
    env[missing] = ""
    result = manage("check", env=env)
    assert result.returncode != 0
    assert f"{missing} must be set" in result.stderr


def test_production_settings_pass_the_deployment_checklist() -> None:
    result = manage("check", "--deploy", "--fail-level", "WARNING", env=PRODUCTION)
    assert result.returncode == 0, result.stderr + result.stdout


def test_a_development_mailer_fails_the_deployment_checklist() -> None:
    result = manage(
        "check", "--deploy", "--fail-level", "WARNING", env={**PRODUCTION, "EMAIL_URL": ""}
    )
    assert result.returncode != 0
    assert "mail.E001" in result.stderr + result.stdout


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"STRIPE_SECRET_KEY": "pk_test_123", "STRIPE_WEBHOOK_SECRET": "whsec_1"}, "sk_ or rk_"),
        ({"STRIPE_SECRET_KEY": "sk_test_123", "STRIPE_WEBHOOK_SECRET": "abc"}, "whsec_"),
        ({"STRIPE_SECRET_KEY": "sk_test_123"}, "STRIPE_WEBHOOK_SECRET must be set"),
        ({"STRIPE_API_BASE": "api.stripe.com"}, "STRIPE_API_BASE="),
    ],
)
def test_stripe_settings_are_checked_at_start(env: dict[str, str], message: str) -> None:
    result = manage("check", env=env)
    assert result.returncode != 0
    assert message in result.stderr
    # A secret is never echoed into logs.
    assert "sk_test_123" not in result.stderr.replace("STRIPE_SECRET_KEY", "")


def test_a_previous_secret_key_still_verifies_what_it_signed_while_it_is_a_fallback() -> None:
    old, new = secrets.token_urlsafe(50), secrets.token_urlsafe(50)
    sign = "from django.core import signing; print(signing.dumps('session'))"
    signed = python(sign, env={**PRODUCTION, "DJANGO_SECRET_KEY": old}).stdout.strip()
    check = f"from django.core import signing; print(signing.loads({signed!r}))"

    rotated = {**PRODUCTION, "DJANGO_SECRET_KEY": new, "DJANGO_SECRET_KEY_FALLBACKS": old}
    assert python(check, env=rotated).stdout.strip() == "session"
    assert manage("check", "--deploy", "--fail-level", "WARNING", env=rotated).returncode == 0
    forgotten = python(check, env={**PRODUCTION, "DJANGO_SECRET_KEY": new})
    assert "BadSignature" in forgotten.stderr


@pytest.mark.parametrize(
    ("endpoint", "expected"),
    [("", "https://s3.eu-west-1.amazonaws.com"), ("http://minio:9000", "http://minio:9000")],
)
def test_s3_storage_reaches_aws_or_the_compatible_store_it_names(
    endpoint: str, expected: str
) -> None:
    env = {
        **PRODUCTION,
        "AWS_STORAGE_BUCKET_NAME": "mochi-videos",
        "AWS_S3_REGION_NAME": "eu-west-1",
        "AWS_ACCESS_KEY_ID": "AKIAEXAMPLE",
        "AWS_SECRET_ACCESS_KEY": "example",
        "AWS_S3_ENDPOINT_URL": endpoint,
    }
    code = (
        "from django.core.files.storage import default_storage\n"
        "print(default_storage.connection.meta.client.meta.endpoint_url)\n"
        "print(default_storage.url('v.mp4', expire=60).split('?')[0])\n"
    )
    result = python(code, env=env)
    assert result.returncode == 0, result.stderr
    client_endpoint, url = result.stdout.split()
    assert client_endpoint == expected
    assert url.endswith("/v.mp4")
