"""VetSync settings: one file, read from the environment, with defaults that run on a fresh clone.

Defaults: SQLite, a Celery broker on the filesystem (no server), console email, the PIMS
emulator on 127.0.0.1:8765. ``DATABASE_URL`` switches to PostgreSQL; ``REDIS_URL`` switches
the Celery broker, result backend and cache to Redis.
"""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path

import dj_database_url
from celery.schedules import crontab
from django.utils.csp import CSP


def env_bool(name: str, default: bool = False) -> bool:
    return os.environ.get(name, str(default)).strip().lower() in {"1", "true", "yes", "on"}


def env_int(name: str, default: int) -> int:
    return int(os.environ.get(name, default))


def env_list(name: str, default: str = "") -> list[str]:
    return [item.strip() for item in os.environ.get(name, default).split(",") if item.strip()]


BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(os.environ.get("VETSYNC_VAR_DIR", BASE_DIR / "var"))

DEBUG = env_bool("DEBUG", default=False)
_DEV_SECRET_KEY = "dev-only-insecure-key-never-used-without-DEBUG-0123456789abcdef"  # noqa: S105
SECRET_KEY = os.environ.get("SECRET_KEY") or (_DEV_SECRET_KEY if DEBUG else "")
if not SECRET_KEY:
    from django.core.exceptions import ImproperlyConfigured

    raise ImproperlyConfigured("Set SECRET_KEY (or DEBUG=1 for local development).")

ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", "127.0.0.1,localhost" if DEBUG else "")
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS")

INSTALLED_APPS = [
    "vetsync.admin.VetSyncAdminConfig",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "django_htmx",
    "django_otp",
    "django_otp.plugins.otp_totp",
    "django_otp.plugins.otp_static",
    "axes",
    "vetsync.apps.VetSyncConfig",
    "clinics",
    "records",
    "prescriptions",
    "vetsync.ops",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    # Static files straight from gunicorn (hashed names cached for a year), before anything
    # that needs a session or a database.
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "vetsync.api_errors.ApiJsonErrorsMiddleware",
    "vetsync.request_guard.NulCharacterGuardMiddleware",
    "django.middleware.csp.ContentSecurityPolicyMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "vetsync.session_idle.IdleSessionRefreshMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django_otp.middleware.OTPMiddleware",
    "clinics.two_factor.middleware.TwoFactorRequiredMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "clinics.middleware.clinic_timezone_middleware",
    # Last, as django-axes asks: it turns a lockout into its answer.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "vetsync.urls"
WSGI_APPLICATION = "vetsync.wsgi.application"

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
                "clinics.context_processors.navigation",
            ],
            # person, actor, phone: one way to show them on every page (clinics.display).
            "builtins": ["clinics.templatetags.display"],
        },
    },
]

# Database: SQLite by default; DATABASE_URL (postgres://…) for PostgreSQL.
VAR_DIR.mkdir(parents=True, exist_ok=True)
DATABASES = {
    "default": dj_database_url.config(
        default=f"sqlite:///{VAR_DIR / 'vetsync.sqlite3'}",
        conn_max_age=int(os.environ.get("DB_CONN_MAX_AGE", "60")),
        conn_health_checks=True,
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # WAL and a busy timeout let the web process and the Celery worker share the file.
    DATABASES["default"]["OPTIONS"] = {
        "transaction_mode": "IMMEDIATE",
        "timeout": 20,
        # A 64 MB page cache: a first copy maintains a dozen indexes over 100,000s of rows.
        "init_command": (
            "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; "
            "PRAGMA cache_size=-65536; PRAGMA temp_store=MEMORY; PRAGMA wal_autocheckpoint=20000;"
        ),
    }
    DATABASES["default"]["CONN_MAX_AGE"] = 0
elif PG_RANDOM_PAGE_COST := os.environ.get("PG_RANDOM_PAGE_COST", "1.1"):
    # PostgreSQL's default random_page_cost (4) prices an index read as on a spinning disk;
    # on SSDs (any managed PostgreSQL) 1.1 is the usual figure. With 4, a search matching a
    # tenth of a large clinic's pets sorts its owners after a scan of every client row (twice
    # the time of reading the names' covering index). Set PG_RANDOM_PAGE_COST="" to keep the
    # server's own value (e.g. behind a pooler that refuses startup options).
    DATABASES["default"].setdefault("OPTIONS", {})["options"] = (
        f"-c random_page_cost={float(PG_RANDOM_PAGE_COST)}"
    )
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# Redis switches the broker, the result backend and the cache together.
REDIS_URL = os.environ.get("REDIS_URL", "")
BROKER_DIR = VAR_DIR / "broker"
# A redis:// (or rediss://) broker is served by kombu's Redis transport with a worker that
# survives the broker's restart (vetsync/lib/redisbroker.py).
from kombu.transport import TRANSPORT_ALIASES  # noqa: E402

for _scheme in ("redis", "rediss"):
    TRANSPORT_ALIASES[_scheme] = "vetsync.lib.redisbroker:Transport"
if REDIS_URL:
    CELERY_BROKER_URL = REDIS_URL
    CELERY_RESULT_BACKEND = REDIS_URL
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": "vetsync",
        }
    }
else:
    for sub in ("out", "processed", "results", "control"):
        (BROKER_DIR / sub).mkdir(parents=True, exist_ok=True)
    # kombu's filesystem transport, writing each message whole (vetsync/lib/fsbroker.py).
    TRANSPORT_ALIASES.setdefault("vetsync-filesystem", "vetsync.lib.fsbroker:Transport")
    CELERY_BROKER_URL = "vetsync-filesystem://"
    CELERY_BROKER_TRANSPORT_OPTIONS: dict[str, object] = {
        "data_folder_in": str(BROKER_DIR / "out"),
        "data_folder_out": str(BROKER_DIR / "out"),
        "processed_folder": str(BROKER_DIR / "processed"),
        "control_folder": str(BROKER_DIR / "control"),
        "store_processed": False,
        # kombu's default (1 s) caps each worker process at about a task a second, and a
        # WriteBack row's delivery waits for it; a folder listing five times a second is cheap.
        "polling_interval": 0.2,
    }
    CELERY_RESULT_BACKEND = f"file://{BROKER_DIR / 'results'}"
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.filebased.FileBasedCache",
            "LOCATION": str(VAR_DIR / "cache"),
        }
    }

CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_RESULT_EXPIRES = timedelta(days=1)
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_SOFT_TIME_LIMIT = int(os.environ.get("CELERY_TASK_SOFT_TIME_LIMIT", "600"))
CELERY_TASK_TIME_LIMIT = CELERY_TASK_SOFT_TIME_LIMIT + 60
CELERY_TASK_ALWAYS_EAGER = False
# Redis redelivers unacked tasks after the visibility timeout: keep it above the hard time
# limit, and never schedule countdowns longer than it (the outbox row carries retry times).
CELERY_BROKER_TRANSPORT_OPTIONS_REDIS: dict[str, object] = {"visibility_timeout": 3600}
if REDIS_URL:
    CELERY_BROKER_TRANSPORT_OPTIONS = CELERY_BROKER_TRANSPORT_OPTIONS_REDIS
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# A broker restart (Redis killed and back within seconds) must not fail the request that
# committed an outbox row: publishing is retried for about 6 s (the row itself is already
# committed; the sweep delivers it if the message never goes out).
CELERY_TASK_PUBLISH_RETRY_POLICY = {
    "max_retries": 6,
    "interval_start": 0,
    "interval_step": 0.5,
    "interval_max": 1.5,
}
# Every process logs through LOGGING below, in one format (Celery would install its own).
CELERY_WORKER_HIJACK_ROOT_LOGGER = False

# One queue per kind of work, so a 100,000-client first copy never sits in front of a
# writeback or of another clinic's pull. Routed by registered task name (stable through
# renames); everything else (emails, sweeps, refreshes, heartbeats) goes to the default queue.
# `make serve` starts a worker per queue; `make run` one worker on all of them.
QUEUE_SYNC = "sync"
QUEUE_PULL = "pull"
QUEUE_WRITEBACK = "writeback"
# First copies of new clinics and large agent batches: their own worker, so an onboarding
# wave never sits in front of a live clinic's delta (see README, "Queues").
QUEUE_BULK = "bulk"
CELERY_TASK_DEFAULT_QUEUE = os.environ.get("CELERY_DEFAULT_QUEUE", "default")
CELERY_TASK_ROUTES: dict[str, dict[str, str]] = {
    "records.tasks.sync_run_apply": {"queue": QUEUE_SYNC},
    "records.tasks.ezyvet_pull": {"queue": QUEUE_PULL},
    "records.tasks.ezyvet_first_copy": {"queue": QUEUE_BULK},
    "records.tasks.sync_run_apply_bulk": {"queue": QUEUE_BULK},
    "prescriptions.tasks.writeback_deliver": {"queue": QUEUE_WRITEBACK},
}
CELERY_QUEUES_ALL = [
    QUEUE_SYNC,
    QUEUE_PULL,
    QUEUE_WRITEBACK,
    QUEUE_BULK,
    CELERY_TASK_DEFAULT_QUEUE,
]
CELERY_TIMEZONE = "UTC"
ONBOARDING_SUMMARY_HOUR_UTC = env_int("ONBOARDING_SUMMARY_HOUR_UTC", 13)
CELERY_BEAT_SCHEDULE_FILENAME = str(VAR_DIR / "celerybeat-schedule")
CELERY_BEAT_SCHEDULE: dict[str, dict[str, object]] = {
    "clinics-heartbeat": {
        "task": "clinics.tasks.record_worker_heartbeat",
        "schedule": 60.0,
    },
    # A heartbeat through every queue: /healthz and /metrics tell a queue nobody consumes
    # (its worker down) and a beat that stopped (every queue's heartbeat ages).
    **{
        f"ops-heartbeat-{queue}": {
            "task": "vetsync.ops.tasks.queue_heartbeat",
            "schedule": 30.0,
            "args": (queue,),
            "options": {"queue": queue, "expires": 120},
        }
        for queue in CELERY_QUEUES_ALL
    },
    "records-sync-sweep": {
        "task": "records.tasks.sync_runs_sweep",
        "schedule": 60.0,
    },
    # Each ezyVet integration has its own interval; this only checks who is due.
    # Pet Owner Care's dictionary of client names (PostgreSQL): new names become typo-findable.
    "records-care-name-tokens": {
        "task": "records.tasks.care_name_tokens_refresh_task",
        "schedule": 300.0,
    },
    # The outbox row is the source of truth: deliver what is due and was never sent (a lost
    # message, a crashed worker, a retry whose time has come).
    "prescriptions-writeback-sweep": {
        "task": "prescriptions.tasks.writeback_sweep",
        "schedule": 15.0,
    },
    "prescriptions-rx-requests-daily": {
        "task": "prescriptions.tasks.rx_requests_expire_and_remind",
        "schedule": 3600.0,
    },
    "prescriptions-autoship": {
        "task": "prescriptions.tasks.autoships_due",
        "schedule": 3600.0,
    },
    "records-ezyvet-pulls": {
        "task": "records.tasks.ezyvet_pulls_due",
        "schedule": 60.0,
    },
    # Retention: per-record outcomes, stored batches and old matcher fits past their age go
    # in bounded batches; each tick stops after RETENTION_TICK_SECONDS and the next resumes.
    "ops-retention": {
        "task": "vetsync.ops.tasks.retention_prune_task",
        "schedule": 900.0,
        "options": {"expires": 600},
    },
    # A "we are receiving your data" email whose task was lost or whose send failed.
    "clinics-onboarding-final-confirmations": {
        "task": "clinics.tasks.onboarding_final_confirmations_sweep",
        "schedule": 300.0,
    },
    # The onboarding team's daily list of overdue checklist steps (once per day; a rerun
    # the same day sends nothing).
    "clinics-onboarding-overdue-summary": {
        "task": "clinics.tasks.onboarding_overdue_summary",
        "schedule": crontab(hour=ONBOARDING_SUMMARY_HOUR_UTC, minute=0),
    },
}

# Agent batches: the biggest accepted, and up to how many clients one is applied before the
# answer (bigger ones answer 202 and run in Celery).
# 256 MiB: a 200,000-client extract measures about 138 MiB (bench/bench_agent_body.py).
AGENT_BATCH_MAX_BYTES = env_int("AGENT_BATCH_MAX_BYTES", 256 * 1024 * 1024)
# Each agent token: at most this many requests a minute (429 with Retry-After above it).
AGENT_REQUESTS_PER_MINUTE = env_int("AGENT_REQUESTS_PER_MINUTE", 120)
AGENT_BATCH_INLINE_MAX_CLIENTS = env_int("AGENT_BATCH_INLINE_MAX_CLIENTS", 200)
# The sweep re-sends a queued run's message only this long after the last one (records.tasks).
SYNC_RESEND_AFTER_SECONDS = env_int("SYNC_RESEND_AFTER_SECONDS", 600)

# Retention: what a sync did to each record (its outcomes), a failed run's stored batch and
# matcher fits older than this are removed; a run's summary and counts stay for good, and so
# do open quarantined records and the runs of manual updates still pending. Each delete
# takes at most RETENTION_BATCH_ROWS rows in a transaction of its own.
SYNC_HISTORY_RETENTION_DAYS = env_int("SYNC_HISTORY_RETENTION_DAYS", 90)
RETENTION_BATCH_ROWS = env_int("RETENTION_BATCH_ROWS", 5000)
RETENTION_TICK_SECONDS = env_int("RETENTION_TICK_SECONDS", 240)

# Auth
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
AUTHENTICATION_BACKENDS = [
    # django-axes first: it refuses a locked-out username and address before any password check.
    "axes.backends.AxesStandaloneBackend",
    # Django's model backend; its get_user loads the two-factor flags with the user.
    "clinics.two_factor.backend.UserWithTwoFactorBackend",
]
# Login throttling (django-axes): the username and the address are locked together, so nobody
# can lock a vet out from elsewhere; the lock lifts after the cool-off, or when the onboarding
# team or a superuser deletes the attempt in /admin/axes/.
AXES_FAILURE_LIMIT = env_int("LOGIN_FAILURE_LIMIT", 5)
AXES_COOLOFF_TIME = timedelta(minutes=env_int("LOGIN_COOLOFF_MINUTES", 15))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_LOCKOUT_CALLABLE = "clinics.lockout.lockout_response"
AXES_CLIENT_IP_CALLABLE = "clinics.audit.client_ip"
AXES_USERNAME_CALLABLE = "clinics.lockout.attempt_username"
# Password reset requests: per address and per email, within an hour.
PASSWORD_RESET_LIMIT_PER_HOUR = env_int("PASSWORD_RESET_LIMIT_PER_HOUR", 5)
# Two-factor (django-otp): the issuer shown in the authenticator app.
OTP_TOTP_ISSUER = os.environ.get("OTP_TOTP_ISSUER", "VetSync")
# Idle sessions end: use pushes the expiry on (vetsync.session_idle, at most once a minute),
# so this is an idle timeout. A pharmacy back office: 30 minutes idle, and the session ends
# with the browser.
SESSION_COOKIE_AGE = env_int("SESSION_IDLE_MINUTES", 30) * 60
SESSION_EXPIRE_AT_BROWSER_CLOSE = env_bool("SESSION_EXPIRE_AT_BROWSER_CLOSE", default=True)
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "login"

# Email (Django 6.1 MAILERS): console by default; SMTP when EMAIL_HOST is set.
if os.environ.get("EMAIL_HOST"):
    MAILERS = {
        "default": {
            "BACKEND": "django.core.mail.backends.smtp.EmailBackend",
            "OPTIONS": {
                "host": os.environ["EMAIL_HOST"],
                "port": int(os.environ.get("EMAIL_PORT", "587")),
                "username": os.environ.get("EMAIL_HOST_USER", ""),
                "password": os.environ.get("EMAIL_HOST_PASSWORD", ""),
                "use_tls": env_bool("EMAIL_USE_TLS", default=True),
            },
        }
    }
else:
    # Console mail, decoded for reading (vetsync/mail/console.py).
    MAILERS = {"default": {"BACKEND": "vetsync.mail.console.EmailBackend"}}
DEFAULT_FROM_EMAIL = os.environ.get("DEFAULT_FROM_EMAIL", "VetSync <noreply@vetsync.local>")
ONBOARDING_TEAM_EMAIL = os.environ.get("ONBOARDING_TEAM_EMAIL", "onboarding@vetsync.local")

# WriteBack. Links written into the PIMS point at SITE_URL; the prefix keeps two VetSync
# installations' prescription references apart in one PIMS. A row is failed (dead letter)
# after WRITEBACK_MAX_ATTEMPTS; retries back off exponentially with jitter.
VETSYNC_REFERENCE_PREFIX = os.environ.get("VETSYNC_REFERENCE_PREFIX", "VS")
# The matcher's thresholds, as match probabilities (records/matching.py): a new PIMS client is
# merged into a home-delivery customer automatically when the model puts the chance that they
# are the same person at MATCH_MERGE_PROBABILITY or more (0.999: at most one in a thousand such
# merges wrong, by the model's own estimate); from MATCH_SUGGEST_PROBABILITY (more likely the
# same person than not) up to that, the pair goes to staff as a possible match.
MATCH_MERGE_PROBABILITY = float(os.environ.get("MATCH_MERGE_PROBABILITY", "0.999"))
MATCH_SUGGEST_PROBABILITY = float(os.environ.get("MATCH_SUGGEST_PROBABILITY", "0.5"))
WRITEBACK_MAX_ATTEMPTS = env_int("WRITEBACK_MAX_ATTEMPTS", 8)
WRITEBACK_BACKOFF_BASE = float(os.environ.get("WRITEBACK_BACKOFF_BASE", "5"))
WRITEBACK_BACKOFF_MAX = float(os.environ.get("WRITEBACK_BACKOFF_MAX", "1800"))
WRITEBACK_LEASE = timedelta(seconds=env_int("WRITEBACK_LEASE_SECONDS", 120))

LANGUAGE_CODE = "en-us"
# One date and time format on every page (vetsync/formats/en/formats.py).
FORMAT_MODULE_PATH = ["vetsync.formats"]
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = Path(os.environ.get("STATIC_ROOT", BASE_DIR / "staticfiles"))
# DEBUG off: hashed, compressed files from `collectstatic` (`make serve` runs it), which
# WhiteNoise serves with a year's cache headers (the tests serve the sources).
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"
        if DEBUG
        else "whitenoise.storage.CompressedManifestStaticFilesStorage"
    },
}
WHITENOISE_MAX_AGE = env_int("WHITENOISE_MAX_AGE", 0 if DEBUG else 3600)

# Content-Security-Policy (Django 6): no inline script anywhere; htmx is served from 'self'.
SECURE_CSP = {
    "default-src": [CSP.SELF],
    "script-src": [CSP.SELF, CSP.NONCE],
    "style-src": [CSP.SELF],
    "img-src": [CSP.SELF, "data:"],
    "connect-src": [CSP.SELF],
    "form-action": [CSP.SELF],
    "frame-ancestors": [CSP.NONE],
    "base-uri": [CSP.SELF],
    "object-src": [CSP.NONE],
}

# Production hardening: on unless DEBUG; `manage.py check --deploy` is clean with
# DEBUG off, SECRET_KEY and ALLOWED_HOSTS set.
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", default=not DEBUG)
SESSION_COOKIE_SECURE = not DEBUG
CSRF_COOKIE_SECURE = not DEBUG
SECURE_HSTS_SECONDS = int(os.environ.get("SECURE_HSTS_SECONDS", "0" if DEBUG else "31536000"))
SECURE_HSTS_INCLUDE_SUBDOMAINS = not DEBUG
SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", default=False)
# Only behind a proxy that sets it (and strips it from clients): otherwise any client could
# claim HTTPS.
if env_bool("TRUST_X_FORWARDED_PROTO", default=False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_REFERRER_POLICY = "same-origin"
SESSION_COOKIE_HTTPONLY = True
# Sessions read from the cache (written through to the database): one query less a page.
SESSION_ENGINE = "django.contrib.sessions.backends.cached_db"
X_FRAME_OPTIONS = "DENY"
SILENCED_SYSTEM_CHECKS = ["security.W021"] if not SECURE_HSTS_PRELOAD else []
# SQLite ignores an index's INCLUDE columns (PostgreSQL uses them): not worth a warning.
SILENCED_SYSTEM_CHECKS += ["models.W040"]

# Credentials for PIMS integrations are encrypted at rest with these Fernet keys (the
# first encrypts; all decrypt, so keys can be rotated). Without them, a key derived from
# SECRET_KEY is used.
CREDENTIALS_KEYS = env_list("CREDENTIALS_KEYS")

# Each ezyVet site's rate limits, shared by every process: Redis (the `limits` package's moving
# window) when EZYVET_LIMITER_URL or REDIS_URL is set, else a file-locked window in the var
# directory. A margin of seconds over ezyVet's 60 s window covers a call's way there; pulls
# leave EZYVET_WRITEBACK_RESERVE of the site's calls a minute to waiting writebacks.
# EZYVET_RATE_WINDOW_SECONDS is ezyVet's (60); only a benchmark on a compressed clock shortens
# it, together with the emulator's window (bench/bench_fleet.py).
EZYVET_LIMITER_URL = os.environ.get("EZYVET_LIMITER_URL", REDIS_URL)
EZYVET_LIMITER_DIR = VAR_DIR / "ratelimits"
EZYVET_RATE_PER_MINUTE = env_int("EZYVET_RATE_PER_MINUTE", 180)
EZYVET_ENDPOINT_RATE_PER_MINUTE = env_int("EZYVET_ENDPOINT_RATE_PER_MINUTE", 60)
EZYVET_RATE_WINDOW_SECONDS = float(os.environ.get("EZYVET_RATE_WINDOW_SECONDS", "60"))
EZYVET_LIMITER_MARGIN_SECONDS = float(os.environ.get("EZYVET_LIMITER_MARGIN_SECONDS", "2"))
EZYVET_WRITEBACK_RESERVE = env_int("EZYVET_WRITEBACK_RESERVE", 18)
# The pull schedule at fleet scale (records/dispatch.py, clinics/sync_health.py): due pulls are
# taken in batches of EZYVET_DISPATCH_BATCH, at most EZYVET_DISPATCH_MAX_PER_TICK a minute; a
# failing site is tried again after 5, 10, 20 … minutes, at most EZYVET_BACKOFF_MAX_MINUTES;
# the clinic and the onboarding team are told once SYNC_FAILURE_ALERT_AFTER syncs in a row fail.
EZYVET_DISPATCH_BATCH = env_int("EZYVET_DISPATCH_BATCH", 100)
EZYVET_DISPATCH_MAX_PER_TICK = env_int("EZYVET_DISPATCH_MAX_PER_TICK", 5000)
EZYVET_BACKOFF_FIRST = timedelta(minutes=env_int("EZYVET_BACKOFF_FIRST_MINUTES", 5))
EZYVET_BACKOFF_MAX = timedelta(minutes=env_int("EZYVET_BACKOFF_MAX_MINUTES", 360))
SYNC_FAILURE_ALERT_AFTER = env_int("SYNC_FAILURE_ALERT_AFTER", 3)
# An agent batch with more clients than this is applied on the bulk queue, as first copies are.
SYNC_BULK_MIN_CLIENTS = env_int("SYNC_BULK_MIN_CLIENTS", 2000)

# /metrics (Prometheus): only with this bearer token, or from these addresses (comma-separated
# IPs or networks); with neither set it answers 404. Processes share metrics through
# PROMETHEUS_MULTIPROC_DIR (set by `make serve`).
METRICS_TOKEN = os.environ.get("METRICS_TOKEN", "")
METRICS_ALLOWED_ADDRESSES = env_list("METRICS_ALLOWED_ADDRESSES")
# Beat sends a heartbeat through every queue every 30 s; older than this is "down".
HEARTBEAT_STALE_SECONDS = env_int("HEARTBEAT_STALE_SECONDS", 150)

# The PIMS emulator the demo points at (the product never imports it).
PIMS_EMULATOR_URL = os.environ.get("PIMS_EMULATOR_URL", "http://127.0.0.1:8765")
# Public base URL used in links sent to PIMS (ezyVet external_link) and in emails.
SITE_URL = os.environ.get("SITE_URL", "http://127.0.0.1:8000")

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    # One format for every process (web, workers, beat): `make serve` prefixes each line
    # with the process's name.
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s [%(process)d] %(name)s: %(message)s"}
    },
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": os.environ.get("LOG_LEVEL", "INFO")},
    "loggers": {
        "django.db.backends": {"level": "WARNING"},
        # django-axes announces itself at every start (each manage.py command, each worker)
        # and repeats each login at INFO; lockouts are WARNING. Logins stay in its access log
        # (admin), failures and lockouts in the audit log.
        "axes": {"level": "WARNING"},
        # gunicorn's own loggers through the same handler and format.
        "gunicorn.error": {"level": "INFO", "handlers": [], "propagate": True},
        "gunicorn.access": {"level": "INFO", "handlers": [], "propagate": True},
    },
}
