"""Test settings: the real settings with fast hashing, a per-worker broker, and http cookies."""

from __future__ import annotations

import os
import tempfile

os.environ.setdefault("SECRET_KEY", "test-secret-key-not-for-production-0123456789abcdefghij")
_worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
os.environ.setdefault(
    "VETSYNC_VAR_DIR", os.path.join(tempfile.gettempdir(), f"vetsync-test-{_worker}")
)

from vetsync.settings import *  # noqa: E402,F403

DEBUG = False
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":  # noqa: F405
    # A file, as `make run` has, not SQLite's shared in-memory database: tests that run a real
    # Celery worker in a thread write while the test reads, and an in-memory database answers
    # "table is locked" at once where a file waits (WAL, the busy timeout).
    DATABASES["default"]["TEST"] = {  # noqa: F405
        "NAME": os.path.join(os.environ["VETSYNC_VAR_DIR"], "test.sqlite3")
    }
ALLOWED_HOSTS = ["testserver", "localhost", "127.0.0.1"]
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
SECURE_SSL_REDIRECT = False
SESSION_COOKIE_SECURE = False
CSRF_COOKIE_SECURE = False
SECURE_HSTS_SECONDS = 0
# Static files from the sources (production's hashed names need `collectstatic` first).
STORAGES = {
    **STORAGES,  # noqa: F405
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}
WHITENOISE_AUTOREFRESH = True  # WhiteNoise looks files up per request: no collectstatic
MAILERS = {"default": {"BACKEND": "django.core.mail.backends.locmem.EmailBackend"}}

# Tasks run in-process unless a test starts a real worker; each xdist worker has its own
# queue so that parallel runs sharing one Redis never consume each other's tasks.
CELERY_TASK_ALWAYS_EAGER = True
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_TASK_DEFAULT_QUEUE = f"vetsync-test-{_worker}"
if not REDIS_URL:  # noqa: F405
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
else:
    CACHES["default"]["KEY_PREFIX"] = f"vetsync-test-{_worker}"

# The per-process cache outlives each test: limits counted there are raised out of the way,
# and the tests of the limits set their own (with keys of their own).
AGENT_REQUESTS_PER_MINUTE = 100_000
PASSWORD_RESET_LIMIT_PER_HOUR = 100_000
