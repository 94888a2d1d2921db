"""Mochi Studio settings: one file, every knob read from the environment.

A fresh checkout runs with no configuration at all (SQLite, a local media
folder, the task queue in the database, email printed to the console).
Production sets DJANGO_DEBUG=False and the variables listed in README.md;
anything malformed stops the process at start with the variable's name.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.core.exceptions import ImproperlyConfigured
from django.utils.csp import CSP

from mochi_site.env import (
    env_bool,
    env_choice,
    env_database,
    env_fraction,
    env_int,
    env_list,
    env_mailer,
    env_rate,
    env_required,
    env_secret,
    env_str,
    env_url,
)

BASE_DIR = Path(__file__).resolve().parent.parent

# --- Core -------------------------------------------------------------------

DEBUG = env_bool("DJANGO_DEBUG", True)

if DEBUG:
    # Only ever used on a developer's machine; `check --deploy` rejects it.
    SECRET_KEY = env_str(
        "DJANGO_SECRET_KEY", "django-insecure-local-development-key-not-for-production"
    )
else:
    SECRET_KEY = env_required(
        "DJANGO_SECRET_KEY", "production (DJANGO_DEBUG=False) needs a long random secret"
    )

ALLOWED_HOSTS = env_list("DJANGO_ALLOWED_HOSTS", ["127.0.0.1", "localhost"] if DEBUG else [])
if not DEBUG and not ALLOWED_HOSTS:
    raise ImproperlyConfigured(
        "DJANGO_ALLOWED_HOSTS must be set: production (DJANGO_DEBUG=False) serves only named hosts"
    )

ADMINS = env_list("DJANGO_ADMINS")

# The public address of the site, for links in emails and redirects from Stripe.
SITE_URL = env_url(
    "SITE_URL", "http://127.0.0.1:8000" if DEBUG else f"https://{ALLOWED_HOSTS[0].lstrip('.')}"
)

INSTALLED_APPS = [
    "accounts",
    "billing",
    "generations",
    "ops",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "allauth",
    "allauth.account",
    "allauth.mfa",
    "django_htmx",
    "django_q",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "mochi_site.streaming.WhiteNoiseMiddleware",  # WhiteNoise, async-capable (ASGI)
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django.middleware.csp.ContentSecurityPolicyMiddleware",
    "allauth.account.middleware.AccountMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
]

ROOT_URLCONF = "mochi_site.urls"
WSGI_APPLICATION = "mochi_site.wsgi.application"
ASGI_APPLICATION = "mochi_site.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.template.context_processors.csp",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "accounts.context_processors.workspaces",
            ],
        },
    },
]

# --- Database, cache, queue -------------------------------------------------

DATABASES = {"default": env_database("DATABASE_URL", f"sqlite:///{BASE_DIR / 'db.sqlite3'}")}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # Several processes (web, worker, demo upstream) share one file in development:
    # WAL lets readers run beside the writer, IMMEDIATE takes the write lock up
    # front so two writers queue instead of deadlocking.
    DATABASES["default"]["OPTIONS"] = {
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        "transaction_mode": "IMMEDIATE",
        "timeout": 30,
    }
elif env_bool("DATABASE_POOL", False):
    # The web server (ASGI; mochi_site/asgi.py sets DATABASE_POOL) runs each request's
    # synchronous code in a thread of that request's own, and connections belong to a
    # thread: persistent ones (CONN_MAX_AGE) would be stranded with their threads. As
    # Django advises for ASGI, it borrows from psycopg's pool instead (one per process).
    DATABASES["default"]["CONN_MAX_AGE"] = 0
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = True  # the pool checks what it lends
    DATABASES["default"]["OPTIONS"] = {
        "pool": {"min_size": 1, "max_size": env_int("DATABASE_POOL_SIZE", 10, minimum=1)}
    }
else:
    # Workers and commands: a pool must not cross the fork that starts a django-q2
    # worker, so they keep their connection for a while instead.
    DATABASES["default"]["CONN_MAX_AGE"] = env_int("DATABASE_CONN_MAX_AGE", 60, minimum=0)
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = True

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

REDIS_URL = env_url("REDIS_URL", schemes=("redis", "rediss", "unix"))
if REDIS_URL:
    CACHES = {
        "default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": REDIS_URL}
    }
else:
    # Shared by every web and worker process (rate limits, queue monitor), unlike
    # the per-process local-memory cache. `make run` and the image create the table.
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.db.DatabaseCache",
            "LOCATION": "mochi_cache",
        }
    }

# django-q2 with the ORM broker on the default database: enqueueing inside a
# transaction commits or rolls back with it. Tasks are written to be safe to
# run twice (they claim their step with a guarded UPDATE), because the broker
# delivers at least once. `retry` must stay above `timeout`, or a task that is
# still running is handed to a second worker.
Q_CLUSTER: dict[str, Any] = {
    "name": "mochi",
    "orm": "default",
    "workers": env_int("QCLUSTER_WORKERS", 4, minimum=1, maximum=64),
    # The longest task is one synchronous (v1) upstream call plus storing its video.
    "timeout": env_int("QCLUSTER_TIMEOUT", 1200, minimum=5),
    "retry": env_int("QCLUSTER_RETRY", 1500, minimum=10),
    "max_attempts": 1,
    "ack_failures": True,
    "queue_limit": 4,
    "bulk": 1,
    "poll": 0.1,
    "save_limit": 1000,
    "catch_up": False,
    "recycle": 200,
    "max_rss": 512_000,
    "cache": "default",
    "label": "Task queue",
}

# --- Accounts ---------------------------------------------------------------

AUTH_USER_MODEL = "accounts.User"
AUTHENTICATION_BACKENDS = [
    "django.contrib.auth.backends.ModelBackend",
    "allauth.account.auth_backends.AuthenticationBackend",
]
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "account_login"
LOGIN_REDIRECT_URL = "home"

ACCOUNT_USER_MODEL_USERNAME_FIELD = None
ACCOUNT_LOGIN_METHODS = {"email"}
ACCOUNT_SIGNUP_FIELDS = ["email*", "password1*", "password2*"]
ACCOUNT_UNIQUE_EMAIL = True
# Mandatory in production; on a developer's machine a new account lands in its
# workspace at once and the confirmation link is printed to the console.
ACCOUNT_EMAIL_VERIFICATION = "optional" if DEBUG else "mandatory"
ACCOUNT_EMAIL_VERIFICATION_SUPPORTS_CHANGE = True
ACCOUNT_CHANGE_EMAIL = True
ACCOUNT_LOGIN_ON_EMAIL_CONFIRMATION = True
ACCOUNT_EMAIL_SUBJECT_PREFIX = "[Mochi Studio] "
# Failed logins are limited per IP and per account (allauth keeps the counters
# in the shared cache).
ACCOUNT_RATE_LIMITS = {
    "login": "30/m/ip",
    "login_failed": "10/m/ip,5/5m/key",
    "signup": "20/m/ip",
    "reset_password": "20/m/ip,5/m/key",
    "reset_password_from_key": "20/m/ip",
    "confirm_email": "1/3m/key",
    "change_password": "5/m/user",
}
# Behind a load balancer every request comes from its address: the limits per IP need the
# client's, the entry that many proxies back in X-Forwarded-For (0: REMOTE_ADDR).
ALLAUTH_TRUSTED_PROXY_COUNT = env_int("TRUSTED_PROXY_COUNT", 0, minimum=0, maximum=5)
MFA_SUPPORTED_TYPES = ["totp", "recovery_codes"]
MFA_TOTP_ISSUER = "Mochi Studio"

# Trial credits granted once to every new personal workspace.
SIGNUP_CREDITS = env_int("SIGNUP_CREDITS", 100, minimum=0, maximum=1_000_000)

# cost = ceil(frames × steps × CREDITS_PER_FRAME_STEP); the defaults (52 × 30) cost 39.
CREDITS_PER_FRAME_STEP = env_fraction("CREDITS_PER_FRAME_STEP", "1/40")
# A hold the reaper may expire: longer than any generation can take, so only holds
# of crashed or abandoned work ever expire.
HOLD_TIMEOUT_SECONDS = env_int("HOLD_TIMEOUT_SECONDS", 6 * 3600, minimum=3600)

# --- The upstream (Segmind Mochi 1) -----------------------------------------------

SEGMIND_API_KEY = env_str("SEGMIND_API_KEY")
SEGMIND_BASE_URL = env_url("SEGMIND_BASE_URL", "https://api.segmind.com")
# v2: submit, then poll (Segmind's recommendation); v1: one long synchronous call.
SEGMIND_API_MODE = env_choice("SEGMIND_API_MODE", "v2", ("v2", "v1"))
# Requests per minute our Segmind account allows, shared by every worker.
SEGMIND_RPM = env_int("SEGMIND_RPM", 50, minimum=1, maximum=100_000)
SEGMIND_POLL_SECONDS = env_int("SEGMIND_POLL_SECONDS", 3, minimum=1, maximum=60)
# How long a generation usually takes upstream until we have measured it (Segmind's
# published average for Mochi 1); ETAs and the poll rhythm start from it.
SEGMIND_TYPICAL_SECONDS = env_int("SEGMIND_TYPICAL_SECONDS", 180, minimum=1)
# The longest one synchronous (v1) call may take before it counts as lost.
SEGMIND_V1_TIMEOUT_SECONDS = env_int("SEGMIND_V1_TIMEOUT_SECONDS", 900, minimum=5, maximum=1100)
# Each v2 call (submit, status, result) must answer within this long.
SEGMIND_READ_TIMEOUT_SECONDS = env_int("SEGMIND_READ_TIMEOUT_SECONDS", 30, minimum=1, maximum=300)
# First wait before trying a failed step again; it doubles with every try (up to 2 min).
RETRY_BACKOFF_SECONDS = 2.0
# Hosts a result's download URL may point at (Segmind's CDN; the upstream itself).
SEGMIND_OUTPUT_HOSTS = env_list("SEGMIND_OUTPUT_HOSTS", ["images.segmind.com", "*.segmind.com"])
# How many generations of one workspace may be at the upstream at once; the rest wait.
MAX_RUNNING_PER_WORKSPACE = env_int("MAX_RUNNING_PER_WORKSPACE", 4, minimum=1, maximum=100)
# A generation that could not start within this long fails, and its credits are released.
GENERATION_QUEUE_TIMEOUT_SECONDS = env_int(
    "GENERATION_QUEUE_TIMEOUT_SECONDS", 3600, minimum=60, maximum=4 * 3600
)
# A step whose task has not run this long after it was due lost its task (a worker
# died); the reaper queues it again. A submit's POST is considered lost after its
# timeouts plus this.
GENERATION_TASK_GRACE_SECONDS = env_int("GENERATION_TASK_GRACE_SECONDS", 120, minimum=1)
# How long one worker may take to download and store a video before another may retry.
GENERATION_INGEST_LEASE_SECONDS = env_int("GENERATION_INGEST_LEASE_SECONDS", 600, minimum=5)
# Largest video accepted from the upstream.
MAX_VIDEO_BYTES = env_int("MAX_VIDEO_BYTES", 500 * 1024 * 1024, minimum=1024 * 1024)
# After the breaker opens (our upstream account or the model is broken), how long
# before it lets a probe through.
UPSTREAM_BREAKER_COOLDOWN_SECONDS = env_int(
    "UPSTREAM_BREAKER_COOLDOWN_SECONDS", 60, minimum=5, maximum=3600
)

# How long a team invitation stays valid.
INVITATION_VALID_DAYS = env_int("INVITATION_VALID_DAYS", 7, minimum=1, maximum=90)

# --- Payments (Stripe) ---------------------------------------------------------

# Unset: the billing page shows the packs but cannot sell them (operators still
# grant credits with `grant_credits`). Set: both are needed, because fulfilment
# relies on the webhook when a customer never comes back from Checkout.
STRIPE_SECRET_KEY = env_str("STRIPE_SECRET_KEY")
STRIPE_WEBHOOK_SECRET = env_str("STRIPE_WEBHOOK_SECRET")
if STRIPE_SECRET_KEY and not STRIPE_SECRET_KEY.startswith(("sk_", "rk_")):
    raise ImproperlyConfigured(
        "STRIPE_SECRET_KEY is not valid: expected a secret key starting with sk_ or rk_"
    )
if STRIPE_WEBHOOK_SECRET and not STRIPE_WEBHOOK_SECRET.startswith("whsec_"):
    raise ImproperlyConfigured(
        "STRIPE_WEBHOOK_SECRET is not valid: expected the endpoint's signing secret (whsec_…)"
    )
if STRIPE_SECRET_KEY and not STRIPE_WEBHOOK_SECRET:
    raise ImproperlyConfigured(
        "STRIPE_WEBHOOK_SECRET must be set with STRIPE_SECRET_KEY: purchases are fulfilled "
        "from Stripe's webhook when the customer does not return from Checkout"
    )
# Stripe's API address; tests point it at a fake Stripe served on loopback.
STRIPE_API_BASE = env_url("STRIPE_API_BASE", "https://api.stripe.com")

# The credit packs on sale: the pricing page, the billing page and Checkout read
# them from here. A purchase keeps its own copy of what was bought, so changing a
# pack never changes past purchases. Prices are whole cents.
CREDIT_PACKS: list[dict[str, Any]] = [
    {"id": "starter", "name": "Starter", "credits": 500, "price_cents": 500, "currency": "usd"},
    {"id": "creator", "name": "Creator", "credits": 2000, "price_cents": 1800, "currency": "usd"},
    {"id": "pro", "name": "Pro", "credits": 10000, "price_cents": 8000, "currency": "usd"},
]

# --- REST API -----------------------------------------------------------------

# Requests per API key and per workspace (several keys and browser sessions share a
# workspace's allowance), counted in the shared cache. Fairness, not a security
# boundary: credits and the running limit are enforced by the database.
API_RATE_PER_KEY = env_rate("API_RATE_PER_KEY", "600/min")
API_RATE_PER_WORKSPACE = env_rate("API_RATE_PER_WORKSPACE", "1200/min")
# Largest request body the API reads (413 past it).
API_MAX_BODY_BYTES = 64 * 1024
# The Segmind-compatible `POST /v1/mochi-1` waits this long at most for the video (then
# 504; the generation goes on), looking at the generation every SEGMIND_COMPAT_CHECK_SECONDS.
SEGMIND_COMPAT_V1_TIMEOUT_SECONDS = env_int(
    "SEGMIND_COMPAT_V1_TIMEOUT_SECONDS", 1200, minimum=5, maximum=4 * 3600
)
SEGMIND_COMPAT_CHECK_SECONDS = 1.0

REST_FRAMEWORK: dict[str, Any] = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "mochi_site.api_auth.ApiKeyAuthentication",
        "mochi_site.api_auth.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_PARSER_CLASSES": ["rest_framework.parsers.JSONParser"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_THROTTLE_CLASSES": [
        "mochi_site.api_auth.KeyRateThrottle",
        "mochi_site.api_auth.WorkspaceRateThrottle",
    ],
    "DEFAULT_THROTTLE_RATES": {"key": API_RATE_PER_KEY, "workspace": API_RATE_PER_WORKSPACE},
    "EXCEPTION_HANDLER": "mochi_site.api.exception_handler",
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "UNAUTHENTICATED_USER": None,
}

SPECTACULAR_SETTINGS: dict[str, Any] = {
    "TITLE": "Mochi Studio API",
    "DESCRIPTION": (
        "Turn text prompts into short videos with the Mochi 1 model. Authenticate with a "
        "workspace API key: `Authorization: Bearer msk_…`. Errors are always "
        '`{"error": {"code", "message", "fields"}}`.'
    ),
    "VERSION": "1.0.0",
    # OpenAPI 3.1 is JSON Schema 2020-12: a JSON number such as 52.0 is an integer, as
    # the API treats it.
    "OAS_VERSION": "3.1.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SCHEMA_PATH_PREFIX": r"/api/v1",
    # Apps authenticate with keys; the browser session (same API) is not documented.
    "AUTHENTICATION_WHITELIST": ["mochi_site.api_auth.ApiKeyAuthentication"],
    "COMPONENT_SPLIT_REQUEST": True,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "ENUM_NAME_OVERRIDES": {
        "GenerationStatusEnum": "generations.models.Status",
        "GenerationPhaseEnum": "generations.models.Phase",
    },
}

# --- Outgoing webhooks ------------------------------------------------------------

# Webhook URLs must resolve to public addresses, checked when a generation is submitted
# and again at every delivery. Development and tests may allow private ones.
WEBHOOK_ALLOW_PRIVATE_IPS = env_bool("WEBHOOK_ALLOW_PRIVATE_IPS", False)
if WEBHOOK_ALLOW_PRIVATE_IPS and not DEBUG:
    raise ImproperlyConfigured(
        "WEBHOOK_ALLOW_PRIVATE_IPS must not be set in production (DJANGO_DEBUG=False): it "
        "would let customers' webhooks reach private networks"
    )

# --- Email ------------------------------------------------------------------

MAILERS = {"default": env_mailer("EMAIL_URL", "consolemail://")}
DEFAULT_FROM_EMAIL = env_str("DEFAULT_FROM_EMAIL", "Mochi Studio <noreply@localhost>")
SERVER_EMAIL = DEFAULT_FROM_EMAIL

# --- Static files and storage -----------------------------------------------

STATIC_URL = "/static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STATICFILES_DIRS = [BASE_DIR / "static"]
MEDIA_ROOT = Path(env_str("MEDIA_ROOT", str(BASE_DIR / "media")))
# Never routed: local media is served only through access-checked views.
MEDIA_URL = "/media/"

AWS_STORAGE_BUCKET_NAME = env_str("AWS_STORAGE_BUCKET_NAME")
# None, not "", when unset: django-storages reads this setting and boto3 refuses "".
AWS_S3_ENDPOINT_URL = env_url("AWS_S3_ENDPOINT_URL") or None
AWS_S3_REGION_NAME = env_str("AWS_S3_REGION_NAME", "us-east-1")
# Presigned URLs for videos and posters live at most this long.
SIGNED_URL_SECONDS = env_int("SIGNED_URL_SECONDS", 900, minimum=30, maximum=900)

if AWS_STORAGE_BUCKET_NAME:
    from botocore.config import Config as BotoConfig

    _s3_options: dict[str, object] = {
        "bucket_name": AWS_STORAGE_BUCKET_NAME,
        "region_name": AWS_S3_REGION_NAME,
        "access_key": env_str("AWS_ACCESS_KEY_ID") or None,
        "secret_key": env_str("AWS_SECRET_ACCESS_KEY") or None,
        # Private objects, read only through short-lived presigned URLs.
        "default_acl": None,
        "querystring_auth": True,
        "querystring_expire": SIGNED_URL_SECONDS,
        # Keys are derived from the generation id, so a retried upload replaces
        # its own earlier attempt instead of leaving an orphan beside it.
        "file_overwrite": True,
        "object_parameters": {"CacheControl": "private, max-age=900"},
    }
    if AWS_S3_ENDPOINT_URL:
        # S3-compatible stores (MinIO, R2, moto) want path-style addresses and
        # reject the checksum headers boto3 sends by default since 1.36.
        _s3_options["endpoint_url"] = AWS_S3_ENDPOINT_URL
        _s3_options["addressing_style"] = "path"
        _s3_options["client_config"] = BotoConfig(
            signature_version="s3v4",
            s3={"addressing_style": "path"},
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
            retries={"max_attempts": 5, "mode": "standard"},
        )
    from boto3.s3.transfer import TransferConfig

    # Multipart uploads with at most two 8 MB parts read ahead and four in flight:
    # memory stays bounded however large the video (read from a temporary file).
    _transfer = TransferConfig(
        multipart_threshold=16 * 1024 * 1024,
        multipart_chunksize=8 * 1024 * 1024,
        max_concurrency=4,
    )
    _transfer.max_in_memory_upload_chunks = 2  # s3transfer's setting; boto3's init lacks it
    _s3_options["transfer_config"] = _transfer
    _default_storage = {"BACKEND": "generations.s3.S3Storage", "OPTIONS": _s3_options}
else:
    _default_storage = {
        "BACKEND": "django.core.files.storage.FileSystemStorage",
        "OPTIONS": {"location": str(MEDIA_ROOT)},
    }

STORAGES = {
    "default": _default_storage,
    "staticfiles": {
        "BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"
        if DEBUG
        else "whitenoise.storage.CompressedManifestStaticFilesStorage"
    },
}

# --- Security ---------------------------------------------------------------

SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
CSRF_COOKIE_HTTPONLY = True
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
SECURE_CROSS_ORIGIN_OPENER_POLICY = "same-origin"

_storage_origins = [AWS_S3_ENDPOINT_URL] if AWS_S3_ENDPOINT_URL else []
if AWS_STORAGE_BUCKET_NAME and not AWS_S3_ENDPOINT_URL:
    _storage_origins = ["https://*.amazonaws.com"]

# Scripts run only from our own origin or with the per-request nonce; no inline styles.
SECURE_CSP = {
    "default-src": [CSP.SELF],
    "script-src": [CSP.SELF, CSP.NONCE],
    "style-src": [CSP.SELF],
    "img-src": [CSP.SELF, "data:", *_storage_origins],
    "media-src": [CSP.SELF, *_storage_origins],
    "connect-src": [CSP.SELF],
    "font-src": [CSP.SELF],
    "object-src": [CSP.NONE],
    "base-uri": [CSP.SELF],
    "frame-ancestors": [CSP.NONE],
    "form-action": [CSP.SELF],
}

if not DEBUG:
    # TLS is terminated by the load balancer in front of the app, which sets
    # X-Forwarded-Proto; the container health check calls /healthz over HTTP.
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SECURE_SSL_REDIRECT = env_bool("DJANGO_SECURE_SSL_REDIRECT", True)
    SECURE_REDIRECT_EXEMPT = [r"^healthz$"]
    SECURE_HSTS_SECONDS = 31_536_000
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = True
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True

# --- Operations: the operator's page (/ops/), /metrics, secret rotation -------------

# The bearer token Prometheus sends to GET /metrics. Unset: /metrics answers 404.
METRICS_TOKEN = env_secret("METRICS_TOKEN", min_length=32)
# Earlier secret keys, still accepted for signed values (sessions, password-reset and
# email links) while a new DJANGO_SECRET_KEY rolls out (README, "Runbook").
SECRET_KEY_FALLBACKS = env_list("DJANGO_SECRET_KEY_FALLBACKS")

# --- Internationalisation ---------------------------------------------------

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

# --- Logging ----------------------------------------------------------------

# `json`: one object per line with context fields such as generation_id (for a log
# collector); `plain`: one readable line (for a terminal). See mochi_site/logs.py.
LOG_FORMAT = env_choice("LOG_FORMAT", "plain" if DEBUG else "json", ("plain", "json"))

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "plain": {"()": "mochi_site.logs.PlainFormatter"},
        "json": {"()": "mochi_site.logs.JsonFormatter"},
    },
    "filters": {"context": {"()": "mochi_site.logs.ContextFilter"}},
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": LOG_FORMAT,
            "filters": ["context"],
        },
        "mail_admins": {
            "class": "django.utils.log.AdminEmailHandler",
            "level": "ERROR",
        },
    },
    "root": {
        "handlers": ["console"],
        "level": env_choice("LOG_LEVEL", "INFO", ("DEBUG", "INFO", "WARNING", "ERROR")),
    },
    "loggers": {
        "django.request": {
            "handlers": ["console", "mail_admins"],
            "level": "ERROR",
            "propagate": False,
        },
        # stripe-python logs every request at INFO; its errors reach us as exceptions.
        "stripe": {"level": "WARNING"},
        "mochi.alerts": {
            "handlers": ["console", "mail_admins"],
            "level": "WARNING",
            "propagate": False,
        },
    },
}
