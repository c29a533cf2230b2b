"""A worker's broker connection to Redis survives the Redis server going away."""

from __future__ import annotations

import logging
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest
from kombu import Connection, Queue
from kombu.common import ignore_errors

REDIS_SERVER = shutil.which("redis-server")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def redis_server(tmp_path: Path):
    """A redis-server of the test's own, without persistence, for the test to kill."""
    if REDIS_SERVER is None:
        pytest.fail("redis-server is not installed (apt-get install redis-server)")
    port = free_port()
    proc = subprocess.Popen(
        [REDIS_SERVER, "--port", str(port), "--save", "", "--appendonly", "no"],
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            break
        except OSError:
            time.sleep(0.05)
    yield proc, f"redis://127.0.0.1:{port}/0"
    if proc.poll() is None:
        proc.kill()
    proc.wait()


def test_a_lost_broker_connection_closes_as_a_connection_error(redis_server) -> None:
    """Redis goes away under a worker holding an unacknowledged task. Celery 5.7 collects the
    connection, which may fail to close the channel (Redis is gone) and then detaches the
    transport from it, and closes the connection again: the channel's close then gives the
    task back to Redis, and its acknowledgement may come later still. Each may fail only as a
    connection error, which Celery meets by reconnecting; with kombu's own transport the
    close fails with an AttributeError (the detached transport has no settings left), and the
    worker exits."""
    proc, url = redis_server
    connection = Connection(url, transport="vetsync.lib.redisbroker:Transport")
    queue = Queue("vetsync-test", channel=connection.default_channel)
    queue.declare()
    connection.Producer().publish({"task": 1}, routing_key="vetsync-test")
    message = queue.get(no_ack=False)
    assert message is not None and message.payload == {"task": 1}

    proc.send_signal(signal.SIGKILL)
    proc.wait()
    # Where Celery's collect leaves a connection whose channel would not close: the channel
    # open, the transport detached (``Connection.collect``'s last step).
    connection._do_close_transport()
    errors = connection.connection_errors + connection.channel_errors
    ignore_errors(connection, connection.close)  # raises anything but a connection error
    message.ack_log_error(logging.getLogger(__name__), errors)


def test_a_redis_broker_url_is_served_by_the_transport_that_survives_it() -> None:
    from vetsync.lib import redisbroker

    for url in ("redis://127.0.0.1:6379/0", "rediss://cache.example:6380/0"):
        assert type(Connection(url).transport) is redisbroker.Transport
