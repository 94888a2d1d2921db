"""The container's HEALTHCHECK: GET /healthz from inside the container; exit 0 when it is 200.

Production only answers the host names in DJANGO_ALLOWED_HOSTS (any other Host header is
a 400), so the request names the first of them rather than 127.0.0.1.

    python scripts/healthcheck.py [URL]    # default http://127.0.0.1:8000/healthz
"""

from __future__ import annotations

import os
import sys
import urllib.error
import urllib.request

DEFAULT_URL = "http://127.0.0.1:8000/healthz"


def host_header() -> str:
    """A Host the site accepts: the first allowed host (".example.com" allows example.com)."""
    for host in os.environ.get("DJANGO_ALLOWED_HOSTS", "").split(","):
        host = host.strip().lstrip(".")
        if host and host != "*":
            return host
    return "localhost"


def main() -> int:
    url = sys.argv[1] if len(sys.argv) > 1 else DEFAULT_URL
    request = urllib.request.Request(url, headers={"Host": host_header()})  # noqa: S310
    try:
        with urllib.request.urlopen(request, timeout=4) as response:  # noqa: S310
            return 0 if response.status == 200 else 1
    except (urllib.error.URLError, OSError) as error:
        sys.stderr.write(f"unhealthy: {error}\n")
        return 1


if __name__ == "__main__":
    sys.exit(main())
