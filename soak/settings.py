"""The production settings, served over plain HTTP on loopback for the soak test.

In production a load balancer terminates TLS; the soak test has none in front of
gunicorn, so its cookies may travel without HTTPS. Everything else is production's.
"""

from mochi_site.settings import *  # noqa: F403

SESSION_COOKIE_SECURE = False
CSRF_COOKIE_SECURE = False
