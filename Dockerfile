# Mochi Studio: one image, web or worker by its command.
#   web:    (default command) gunicorn (ASGI) on :8000
#   worker: python manage.py qcluster
# Configure it with the environment variables listed in README.md.

FROM python:3.13-slim-bookworm AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /build
COPY requirements.txt .
RUN python -m venv /opt/venv \
    && /opt/venv/bin/pip install --no-cache-dir -r requirements.txt

FROM python:3.13-slim-bookworm
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    DJANGO_DEBUG=False
RUN groupadd --gid 10001 mochi \
    && useradd --create-home --uid 10001 --gid 10001 --shell /usr/sbin/nologin mochi
WORKDIR /app
COPY --from=build /opt/venv /opt/venv
COPY --chown=mochi:mochi . .
# Static files are collected at build time and served by WhiteNoise.
RUN DJANGO_SECRET_KEY=collectstatic-only DJANGO_ALLOWED_HOSTS=localhost \
    python manage.py collectstatic --noinput --verbosity 0 \
    && mkdir -p /app/media && chown 10001:10001 /app/media
USER 10001:10001
EXPOSE 8000
# /healthz, asked under an allowed host name (production refuses any other Host).
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "/app/scripts/healthcheck.py"]
# ASGI (gunicorn's own asyncio worker, set in gunicorn.conf.py): a request waiting in an
# async view holds no worker; synchronous views run in a thread each.
CMD ["gunicorn", "mochi_site.asgi:application", "--bind", "0.0.0.0:8000", "--workers", "3", "--access-logfile", "-"]
