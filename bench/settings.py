"""Production settings plus one endpoint for the API benchmark's ceiling (bench/urls.py)."""

from mochi_site.settings import *  # noqa: F403

ROOT_URLCONF = "bench.urls"
