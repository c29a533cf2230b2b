"""gunicorn's settings for `make serve` (scripts/serve.py passes this file with -c).

Processes: WEB_CONCURRENCY (gunicorn reads it itself; 2 by default). Address: BIND. Logs go
through the same dictConfig as Django's (vetsync/settings.py LOGGING), so the web process
writes the same format as the Celery workers and beat.
"""

import os

from prometheus_client import multiprocess

from vetsync.settings import LOGGING

bind = os.environ.get("BIND", "127.0.0.1:8000")
workers = int(os.environ.get("WEB_CONCURRENCY", "2"))
accesslog = "-"
logconfig_dict = LOGGING
# Behind a TLS-terminating proxy on the same machine: trust its X-Forwarded-* headers.
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1")
timeout = int(os.environ.get("GUNICORN_TIMEOUT", "60"))
graceful_timeout = 20
# No control socket in the home directory: two deployments on one machine would share it.
control_socket_disable = True


def child_exit(server, worker):  # type: ignore[no-untyped-def]
    """A web process that ended: its live gauges leave /metrics (counters stay summed)."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        multiprocess.mark_process_dead(worker.pid)
