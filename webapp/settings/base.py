"""Settings shared by every environment. Environment-specific modules (dev, prod, test) import this.

Everything that differs between deployments comes from the environment through `env.py`.
"""

from __future__ import annotations

from pathlib import Path

import dj_database_url

from .env import env_bool, env_int, env_list, env_str

BASE_DIR = Path(__file__).resolve().parent.parent.parent
VAR_DIR = Path(env_str("ARPO_VAR_DIR", str(BASE_DIR / "var")))

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "channels",
    "rest_framework",
    "knox",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "webapp.core",
    "webapp.accounts",
    "webapp.datasets",
    "webapp.tools",
    "webapp.runs",
    "webapp.playground",
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
WSGI_APPLICATION = None

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "webapp.core.context.navigation",
            ],
        },
    },
]

# --- Database: DATABASE_URL, or SQLite under var/ (the embedded default) ---
DATABASES = {
    "default": dj_database_url.parse(
        env_str("DATABASE_URL", f"sqlite:///{VAR_DIR / 'db.sqlite3'}"), conn_max_age=60, conn_health_checks=True
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # Web and worker write to one SQLite file: WAL lets readers run beside a writer, IMMEDIATE takes the
    # write lock up front (no "database is locked" half-way through a transaction), and a writer waits.
    DATABASES["default"]["OPTIONS"] = {
        "transaction_mode": "IMMEDIATE",
        "timeout": 20,
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    }
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Redis: Celery broker and the Channels layer ---
REDIS_URL = env_str("REDIS_URL", "redis://127.0.0.1:6379/0")
CHANNEL_LAYERS = {
    "default": {
        "BACKEND": "channels_redis.core.RedisChannelLayer",
        # redis-py 8 reads with a 5 s socket timeout by default, the same 5 s channels_redis blocks in BZPOPMIN
        # waiting for a message: an idle consumer then dies of "Timeout reading". Leave the blocking read room.
        # redis-py's async pool refuses a 101st connection in use at once (no waiting): hundreds of sockets
        # (re)connecting together, each joining its groups, need more (bench/ws_fanout.py, 500 clients).
        "CONFIG": {"hosts": [{"address": REDIS_URL, "socket_timeout": 15, "max_connections": 2000}]},
    }
}
CACHES = {
    "default": {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": REDIS_URL,
    }
}

CELERY_BROKER_URL = REDIS_URL
CELERY_RESULT_BACKEND = REDIS_URL
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_DEFAULT_QUEUE = "short"
# Runs take hours: a message must not be redelivered to a second worker while the first still works.
CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": env_int("ARPO_CELERY_VISIBILITY_S", 6 * 3600)}
CELERY_TASK_ROUTES = {
    "worker.tasks.run_execute": {"queue": "runs"},
    "worker.tasks.tool_try": {"queue": "short"},
    "worker.tasks.run_preflight": {"queue": "short"},
    "worker.tasks.playground_answer": {"queue": "short"},
}

# --- Runs on Ray (worker/relay.py, worker/runner.py) ---
RAY_ADDRESS = env_str("RAY_ADDRESS", "")  # empty: the worker starts a local Ray instance of its own
ARPO_RAY_NAMESPACE = env_str("ARPO_RAY_NAMESPACE", "arpo")  # actors are named run-<id> in it
ARPO_RUN_NUM_CPUS = float(env_str("ARPO_RUN_NUM_CPUS", "1"))  # Ray resources of one run's actor
ARPO_RUN_NUM_GPUS = float(env_str("ARPO_RUN_NUM_GPUS", "0"))
# Ask Ray for the memory arpo_engine.memory.estimate gives the run's config (off: place runs unsized).
ARPO_RUN_REQUEST_MEMORY = env_bool("ARPO_RUN_REQUEST_MEMORY", True)
# Custom Ray resources of one run's actor, "name=amount,…" (e.g. "run_slot=1" with a head started with
# --resources='{"run_slot": 2}' runs at most two at once; the others wait `queued`, with a position).
ARPO_RUN_RESOURCES = {
    k.strip(): float(v) for k, _, v in (item.partition("=") for item in env_list("ARPO_RUN_RESOURCES", []))
}
ARPO_RUN_THREADS = env_int("ARPO_RUN_THREADS", 0)  # torch threads in the actor (0: Ray's choice)
ARPO_RUN_LEASE_S = float(env_str("ARPO_RUN_LEASE_S", "30"))  # a worker that stops beating loses the run after this
ARPO_RUN_HEARTBEAT_S = float(env_str("ARPO_RUN_HEARTBEAT_S", "5"))
ARPO_RUN_POLL_S = float(env_str("ARPO_RUN_POLL_S", "0.2"))  # relay latency is about this when idle
ARPO_RUN_MAX_RESTARTS = env_int("ARPO_RUN_MAX_RESTARTS", 2)  # actor deaths resumed from a checkpoint
ARPO_RUN_ROLLOUT_SAMPLE = env_int("ARPO_RUN_ROLLOUT_SAMPLE", 4)  # rollout trees kept per step
ARPO_RUN_TREE_MAX_BYTES = env_int("ARPO_RUN_TREE_MAX_BYTES", 64 * 1024)
ARPO_RUN_NO_TOOL_STEPS = env_int("ARPO_RUN_NO_TOOL_STEPS", 5)  # fail a run whose model never calls a tool
ARPO_PLAYGROUND_WALL_S = float(env_str("ARPO_PLAYGROUND_WALL_S", "120"))  # one playground answer, tools included
ARPO_PLAYGROUND_MODELS = env_int("ARPO_PLAYGROUND_MODELS", 2)  # models a worker process keeps loaded for it
# Torch threads of one answer (0: half the CPUs, since a session's two answers may run at once; more threads
# than cores make a CPU decode several times slower).
ARPO_PLAYGROUND_THREADS = env_int("ARPO_PLAYGROUND_THREADS", 0)

# --- Auth ---
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "accounts:login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "accounts:login"

# --- REST API ---
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "webapp.accounts.auth.ApiTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_PAGINATION_CLASS": "webapp.core.api.Pagination",
    "PAGE_SIZE": 50,
    "DEFAULT_FILTER_BACKENDS": ["django_filters.rest_framework.DjangoFilterBackend"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "webapp.core.api.exception_handler",
    "DEFAULT_THROTTLE_RATES": {
        "sign_in": env_str("ARPO_THROTTLE_SIGN_IN", "10/min"),
        "upload": env_str("ARPO_THROTTLE_UPLOAD", "30/min"),
    },
}
KNOX_TOKEN_MODEL = "accounts.ApiToken"
REST_KNOX = {
    "TOKEN_TTL": None,  # each token carries its own expiry, chosen when it is created
    "AUTO_REFRESH": False,
    "TOKEN_PREFIX": "arpo_",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "ARPO Studio API",
    "DESCRIPTION": "Datasets, tools and ARPO runs for tool-using LLM agents.",
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    "COMPONENT_SPLIT_REQUEST": True,
    # Swagger UI and Redoc served from our own static files, never a CDN.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    # Several models have a "kind" field: name each choice set after its model.
    "ENUM_NAME_OVERRIDES": {
        "DatasetKindEnum": "webapp.datasets.models.Dataset.Kind",
        "RunStatusEnum": "webapp.runs.models.Run.Status",
        # Tool trials and preflights share one choice set (queued, running, done, failed).
        "JobStatusEnum": "webapp.tools.models.ToolTrial.Status",
    },
    # 401 / 404 (page past the end) / 400 (bad filter) documented on every operation that can answer them.
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "webapp.core.api.document_common_errors",
    ],
}

# --- Files ---
STATIC_URL = "static/"
STATIC_ROOT = VAR_DIR / "static"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"},
}
MEDIA_ROOT = Path(env_str("ARPO_MEDIA_ROOT", str(VAR_DIR / "media")))
MEDIA_URL = "media/"  # never served directly: downloads go through views that check access
FILE_UPLOAD_TEMP_DIR = None
FILE_UPLOAD_MAX_MEMORY_SIZE = 2 * 1024 * 1024
DATA_UPLOAD_MAX_MEMORY_SIZE = 5 * 1024 * 1024

# --- ARPO Studio limits (all overridable from the environment) ---
ARPO_UPLOAD_MAX_BYTES = env_int("ARPO_UPLOAD_MAX_BYTES", 200 * 1024 * 1024)
ARPO_DATASET_MAX_ROWS = env_int("ARPO_DATASET_MAX_ROWS", 1_000_000)
ARPO_DATASET_MAX_ROW_CHARS = env_int("ARPO_DATASET_MAX_ROW_CHARS", 200_000)
ARPO_CORPUS_MAX_DOCS = env_int("ARPO_CORPUS_MAX_DOCS", 2_000_000)
ARPO_DECOMPRESSED_MAX_BYTES = env_int("ARPO_DECOMPRESSED_MAX_BYTES", 1024 * 1024 * 1024)
# http tools may reach private/loopback addresses (the worker's own network) only when this is on.
ARPO_HTTP_TOOLS_ALLOW_PRIVATE = env_bool("ARPO_HTTP_TOOLS_ALLOW_PRIVATE", False)

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = False
USE_TZ = True

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env_str("ARPO_LOG_LEVEL", "INFO")},
}
