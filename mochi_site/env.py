"""Typed readers for the environment that fail loudly, naming the variable.

Settings read every knob through these helpers, so a typo in a deployment
stops the process at start with a message such as
``SIGNUP_CREDITS='ten' is not valid: expected a whole number``
instead of surfacing as a confusing error much later.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from fractions import Fraction
from urllib.parse import urlsplit

from django.core.exceptions import ImproperlyConfigured

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def _invalid(name: str, value: str, expected: str) -> ImproperlyConfigured:
    return ImproperlyConfigured(f"{name}={value!r} is not valid: expected {expected}")


def _raw(name: str) -> str | None:
    value = os.environ.get(name)
    if value is None:
        return None
    value = value.strip()
    return value or None


def env_str(name: str, default: str = "") -> str:
    value = _raw(name)
    return default if value is None else value


def env_required(name: str, why: str) -> str:
    value = _raw(name)
    if value is None:
        raise ImproperlyConfigured(f"{name} must be set: {why}")
    return value


def env_secret(name: str, *, min_length: int) -> str:
    """A secret that is either unset ("") or long enough to resist guessing. The message
    never repeats the value."""
    value = _raw(name)
    if value is None:
        return ""
    if len(value) < min_length or any(c.isspace() for c in value):
        raise ImproperlyConfigured(
            f"{name} is not valid: expected at least {min_length} characters without spaces, "
            "such as the output of `python -c 'import secrets; print(secrets.token_urlsafe())'`"
        )
    return value


def env_bool(name: str, default: bool) -> bool:
    value = _raw(name)
    if value is None:
        return default
    lowered = value.lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise _invalid(name, value, "True or False")


def env_int(
    name: str, default: int, *, minimum: int | None = None, maximum: int | None = None
) -> int:
    value = _raw(name)
    if value is None:
        return default
    try:
        number = int(value)
    except ValueError:
        raise _invalid(name, value, "a whole number") from None
    if minimum is not None and number < minimum:
        raise _invalid(name, value, f"a whole number of at least {minimum}")
    if maximum is not None and number > maximum:
        raise _invalid(name, value, f"a whole number of at most {maximum}")
    return number


def env_fraction(name: str, default: str) -> Fraction:
    """A positive exact number, written as a fraction ("1/40") or a decimal ("0.025")."""
    value = _raw(name) or default
    try:
        number = Fraction(value)
    except (ValueError, ZeroDivisionError):
        raise _invalid(name, value, "a positive number such as 1/40 or 0.025") from None
    if number <= 0:
        raise _invalid(name, value, "a positive number such as 1/40 or 0.025")
    return number


def env_choice(name: str, default: str, choices: Iterable[str]) -> str:
    allowed = tuple(choices)
    value = _raw(name)
    if value is None:
        return default
    if value not in allowed:
        raise _invalid(name, value, "one of " + ", ".join(allowed))
    return value


_RATE_PERIODS = ("s", "sec", "second", "m", "min", "minute", "h", "hour", "d", "day")


def env_rate(name: str, default: str) -> str:
    """A request rate such as `600/min` (Django REST framework's notation)."""
    value = _raw(name) or default
    count, _, period = value.partition("/")
    if not count.isdigit() or int(count) < 1 or period not in _RATE_PERIODS:
        raise _invalid(name, value, "a rate such as 600/min (per s, min, hour or day)")
    return value


def env_list(name: str, default: Iterable[str] = ()) -> list[str]:
    value = _raw(name)
    if value is None:
        return list(default)
    return [item.strip() for item in value.split(",") if item.strip()]


def env_url(name: str, default: str = "", *, schemes: Iterable[str] = ("http", "https")) -> str:
    value = _raw(name)
    if value is None:
        return default
    allowed = tuple(schemes)
    parts = urlsplit(value)
    if parts.scheme not in allowed or not parts.netloc:
        raise _invalid(
            name, value, "a URL starting with " + " or ".join(f"{s}://" for s in allowed)
        )
    return value.rstrip("/")


_DATABASE_SCHEMES = ("postgres", "postgresql", "pgsql", "sqlite")


def env_database(name: str, default: str) -> dict[str, object]:
    """A Django DATABASES entry from a URL: postgres://user:pass@host:5432/db or sqlite:///path."""
    import environ  # django-environ parses the URL; we only check what it accepts.

    value = _raw(name) or default
    scheme = urlsplit(value).scheme
    if scheme not in _DATABASE_SCHEMES:
        raise _invalid(name, value, "a postgres://… or sqlite:///… URL")
    config: dict[str, object] = dict(environ.Env.db_url_config(value))
    if scheme != "sqlite" and not config.get("NAME"):
        raise _invalid(name, value, "a database name at the end of the URL")
    return config


def env_mailer(name: str, default: str) -> dict[str, object]:
    """A Django MAILERS entry from a URL: smtp+tls://user:pass@host:587 or consolemail://."""
    import environ

    value = _raw(name) or default
    try:
        config = environ.Env.email_url_config(value)
    except ImproperlyConfigured:
        raise _invalid(name, value, "smtp://, smtp+tls://, smtp+ssl:// or consolemail://") from None
    backend = str(config["EMAIL_BACKEND"])
    if not backend.endswith(".smtp.EmailBackend"):
        return {"BACKEND": backend}
    if not config.get("EMAIL_HOST"):
        raise _invalid(name, value, "a host name, as in smtp+tls://user:pass@smtp.example.com:587")
    return {
        "BACKEND": backend,
        "OPTIONS": {
            "host": config["EMAIL_HOST"],
            "port": int(str(config.get("EMAIL_PORT") or 25)),
            "username": config.get("EMAIL_HOST_USER") or "",
            "password": config.get("EMAIL_HOST_PASSWORD") or "",
            "use_tls": bool(config.get("EMAIL_USE_TLS", False)),
            "use_ssl": bool(config.get("EMAIL_USE_SSL", False)),
            "timeout": 10,
        },
    }
