"""Test settings: production settings plus the few overrides that make tests fast and hermetic."""

from __future__ import annotations

import tempfile
from pathlib import Path

from mochi_site.settings import *  # noqa: F403
from mochi_site.settings import Q_CLUSTER

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]

# Tasks run inline unless a test is about the queue itself.
Q_CLUSTER = {**Q_CLUSTER, "sync": True}

CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

MEDIA_ROOT = Path(tempfile.mkdtemp(prefix="mochi-test-media-"))
STORAGES = {
    "default": {
        "BACKEND": "django.core.files.storage.FileSystemStorage",
        "OPTIONS": {"location": str(MEDIA_ROOT)},
    },
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}

# Production behaviour: a new account must confirm its email address.
ACCOUNT_EMAIL_VERIFICATION = "mandatory"

SITE_URL = "http://testserver"

# Serve static files from the source folders (no collectstatic in tests).
WHITENOISE_USE_FINDERS = True
WHITENOISE_AUTOREFRESH = True
