"""The web server's entry point (gunicorn's ASGI worker: see the Dockerfile)."""

from __future__ import annotations

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mochi_site.settings")
# Borrow PostgreSQL connections from a pool rather than keep one per thread (settings.py).
os.environ.setdefault("DATABASE_POOL", "true")

application = get_asgi_application()
