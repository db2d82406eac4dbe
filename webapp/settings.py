"""Django settings for Podium.

Everything that differs between machines comes from the environment through
the typed helpers in ``webapp.lib.env``; there is no separate "dev" settings
module. ``make up`` and ``make test`` export ``DATABASE_URL`` and ``REDIS_URL``
for the embedded services when the caller has not set them.
"""

from __future__ import annotations

import secrets
from pathlib import Path

import dj_database_url

from webapp.lib.env import envbool, envint, envlist, envsecret, envstr

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(envstr("PODIUM_VAR_DIR", str(BASE_DIR / "var"))).resolve()

DEBUG = envbool("PODIUM_DEBUG", False)
PRODUCTION = envbool("PODIUM_PRODUCTION", False)


def _secret_key() -> str:
    configured = envsecret("PODIUM_SECRET_KEY")
    if configured:
        return configured
    if PRODUCTION:
        raise RuntimeError("PODIUM_SECRET_KEY (or PODIUM_SECRET_KEY_FILE) must be set in production")
    # A single-host install keeps a generated key under var/ so sessions and
    # signed links survive restarts without anyone having to invent one.
    path = VAR_DIR / "secret_key"
    if not path.exists():
        VAR_DIR.mkdir(parents=True, exist_ok=True)
        path.write_text(secrets.token_urlsafe(50))
        path.chmod(0o600)
    return path.read_text().strip()


SECRET_KEY = _secret_key()

PODIUM_URL = envstr("PODIUM_URL", "http://127.0.0.1:8000").rstrip("/")
ALLOWED_HOSTS = envlist("PODIUM_ALLOWED_HOSTS", ["127.0.0.1", "localhost", "[::1]", "testserver"])
CSRF_TRUSTED_ORIGINS = envlist("PODIUM_CSRF_TRUSTED_ORIGINS", [PODIUM_URL])

INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "django.contrib.postgres",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "channels",
    "django_celery_beat",
    "webapp.core",
    "webapp.accounts",
    "webapp.workspaces",
    "webapp.serving",
    "webapp.ide",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "webapp.urls"
ASGI_APPLICATION = "webapp.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "webapp" / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "webapp.core.context.podium",
            ],
        },
    },
]

DATABASES = {
    "default": dj_database_url.parse(
        envstr("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/podium"),
        conn_max_age=envint("PODIUM_DB_CONN_MAX_AGE", 0),
    )
}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

REDIS_URL = envstr("REDIS_URL", "redis://127.0.0.1:6379/0")

CACHES = {
    "default": {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": REDIS_URL,
        "KEY_PREFIX": "podium",
    }
}

CHANNEL_LAYERS = {
    "default": {
        "BACKEND": "channels_redis.core.RedisChannelLayer",
        # channels_redis waits for a message with a 5 s BZPOPMIN; redis-py's own default socket timeout is also
        # 5 s, so an idle websocket's read timed out and its consumer died (1006) every 5 s. Read longer.
        "CONFIG": {"hosts": [{"address": REDIS_URL, "socket_timeout": 30}], "prefix": "podium:channels"},
    }
}

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator", "OPTIONS": {"min_length": 10}},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "login"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "/static/"
STATIC_ROOT = VAR_DIR / "staticfiles"
STATIC_ROOT.mkdir(parents=True, exist_ok=True)
STATICFILES_DIRS = [BASE_DIR / "webapp" / "static"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}
# Serve straight from the finders so `make up` never needs a collectstatic step.
WHITENOISE_USE_FINDERS = True
WHITENOISE_AUTOREFRESH = DEBUG

EMAIL_BACKEND = envstr("PODIUM_EMAIL_BACKEND", "django.core.mail.backends.console.EmailBackend")
EMAIL_HOST = envstr("PODIUM_EMAIL_HOST", "localhost")
EMAIL_PORT = envint("PODIUM_EMAIL_PORT", 25)
EMAIL_HOST_USER = envstr("PODIUM_EMAIL_HOST_USER", "")
EMAIL_HOST_PASSWORD = envsecret("PODIUM_EMAIL_HOST_PASSWORD", "") or ""
EMAIL_USE_TLS = envbool("PODIUM_EMAIL_USE_TLS", False)
DEFAULT_FROM_EMAIL = envstr("PODIUM_FROM_EMAIL", "Podium <podium@localhost>")

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "webapp.workspaces.auth.ApiKeyAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_SCHEMA_CLASS": "webapp.core.openapi.PodiumAutoSchema",
    "EXCEPTION_HANDLER": "webapp.core.api.exception_handler",
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["rest_framework.parsers.JSONParser"],
    "DEFAULT_PAGINATION_CLASS": "webapp.core.api.LimitOffsetPagination",
    "PAGE_SIZE": 100,
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
}

SPECTACULAR_SETTINGS = {
    "TITLE": "Podium API",
    "DESCRIPTION": "Workspaces, members, invitations, API keys, the audit log, models and their predictions. "
    "Authenticate with `Authorization: Bearer pod_...` or a signed-in session.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    "SCHEMA_PATH_PREFIX": r"/api/v1",
    "ENUM_NAME_OVERRIDES": {"TemplateEnum": "webapp.ide.catalog.template_ids"},
    # The prediction routes of the gateway, which no Django view serves (webapp/core/openapi.py).
    "POSTPROCESSING_HOOKS": ["drf_spectacular.hooks.postprocess_schema_enums", "webapp.core.openapi.gateway_paths"],
}

CELERY_BROKER_URL = REDIS_URL
CELERY_RESULT_BACKEND = None
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"
CELERY_TASK_ALWAYS_EAGER = envbool("PODIUM_CELERY_EAGER", False)

PODIUM_EXECUTOR = envstr("PODIUM_EXECUTOR", "local")
PODIUM_INVITATION_DAYS = envint("PODIUM_INVITATION_DAYS", 7)

SESSION_COOKIE_HTTPONLY = True
CSRF_COOKIE_HTTPONLY = False
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
if PRODUCTION:
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_SSL_REDIRECT = envbool("PODIUM_SSL_REDIRECT", True)
    SECURE_HSTS_SECONDS = envint("PODIUM_HSTS_SECONDS", 31536000)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = True
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SECURE_REDIRECT_EXEMPT = [r"^healthz$"]

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": envstr("PODIUM_LOG_LEVEL", "INFO")},
    "loggers": {"django.db.backends": {"level": "WARNING"}},
}

# Model serving
PODIUM_ARTIFACTS_DIR = Path(envstr("PODIUM_ARTIFACTS_DIR", str(VAR_DIR / "artifacts"))).resolve()
PODIUM_MAX_BUNDLE_MB = envint("PODIUM_MAX_BUNDLE_MB", 512)
PODIUM_MAX_REQUEST_BYTES = envint("PODIUM_MAX_REQUEST_BYTES", 10 * 1024 * 1024)
PODIUM_PREDICT_TIMEOUT_S = envint("PODIUM_PREDICT_TIMEOUT_S", 60)
PODIUM_READY_TIMEOUT_S = envint("PODIUM_READY_TIMEOUT_S", 300)
PODIUM_DRAIN_S = envint("PODIUM_DRAIN_S", 10)
# The reconciler (webapp/serving/reconciler.py): restarts of one version within an hour before it is failed.
PODIUM_RECONCILE_MAX_RESTARTS = envint("PODIUM_RECONCILE_MAX_RESTARTS", 3)
PODIUM_METRICS_TOKEN = envsecret("PODIUM_METRICS_TOKEN", "") or ""
# Per-workspace quotas (webapp/serving/quotas.py): the defaults; `manage.py quota` sets one workspace's own.
PODIUM_QUOTA_REPLICAS = envint("PODIUM_QUOTA_REPLICAS", 8)
PODIUM_QUOTA_CPU = envint("PODIUM_QUOTA_CPU", 8)
PODIUM_QUOTA_MEMORY_MIB = envint("PODIUM_QUOTA_MEMORY_MIB", 16384)
PODIUM_QUOTA_GPUS = envint("PODIUM_QUOTA_GPUS", 2)
PODIUM_QUOTA_TEST_RUNS = envint("PODIUM_QUOTA_TEST_RUNS", 4)
PODIUM_QUOTA_BUILDS = envint("PODIUM_QUOTA_BUILDS", 2)
# The editor's test runs (webapp/ide/runner.py) and warm runners (webapp/ide/warm.py).
PODIUM_IDE_TEST_WALL_S = envint("PODIUM_IDE_TEST_WALL_S", 120)
PODIUM_IDE_WARM_RUNNERS = envint("PODIUM_IDE_WARM_RUNNERS", 2)
PODIUM_IDE_WARM_IDLE_S = envint("PODIUM_IDE_WARM_IDLE_S", 900)
PODIUM_IDE_WARM_START_TIMEOUT_S = envint("PODIUM_IDE_WARM_START_TIMEOUT_S", 120)
# Signed artifact URLs for sandboxes on other hosts (webapp/core/artifacts.py, sandbox/signing.py).
PODIUM_ARTIFACT_ROOT = Path(envstr("PODIUM_ARTIFACT_ROOT", str(VAR_DIR))).resolve()
PODIUM_ARTIFACT_SIGNING_KEY = envsecret("PODIUM_ARTIFACT_SIGNING_KEY") or SECRET_KEY
# The largest environment archive a Nomad build job may upload (PUT /sandbox-artifacts/...).
PODIUM_ENV_ARCHIVE_MAX_MIB = envint("PODIUM_ENV_ARCHIVE_MAX_MIB", 4096)
