"""Test settings: production settings plus the few overrides that make tests fast and hermetic."""

from __future__ import annotations

import tempfile
from pathlib import Path

from mochi_site.settings import *  # noqa: F403
from mochi_site.settings import Q_CLUSTER

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]

# Tasks go to the real ORM broker; tests run them with tests.support.queue.run_tasks
# (delays honoured), or start real workers when the test is about the workers.
Q_CLUSTER = {**Q_CLUSTER, "sync": False}

SEGMIND_API_KEY = "test-key"
SEGMIND_BASE_URL = "http://127.0.0.1:9"  # nothing listens: tests that call it start the fake

CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":  # noqa: F405
    # A file, as `make run` uses, rather than SQLite's in-memory database: between
    # connections (the live server's, a worker thread's) that one locks whole tables and
    # fails at once where a file database waits its turn (WAL, busy timeout).
    DATABASES["default"]["TEST"] = {  # noqa: F405
        "NAME": str(Path(tempfile.mkdtemp(prefix="mochi-test-db-")) / "test.sqlite3")
    }

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
