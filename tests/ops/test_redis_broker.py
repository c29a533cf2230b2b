"""A worker's broker connection to Redis survives the Redis server going away."""

from __future__ import annotations

import logging
import signal
from pathlib import Path

import pytest
from kombu import Connection, Queue
from kombu.common import ignore_errors

from tests.servers import redis_server


@pytest.fixture
def own_redis(tmp_path: Path):
    """A redis-server of the test's own, without persistence, for the test to kill."""
    with redis_server(tmp_path) as server:
        yield server


def test_a_lost_broker_connection_closes_as_a_connection_error(own_redis) -> None:
    """Redis goes away under a worker holding an unacknowledged task. Celery 5.7 collects the
    connection, which may fail to close the channel (Redis is gone) and then detaches the
    transport from it, and closes the connection again: the channel's close then gives the
    task back to Redis, and its acknowledgement may come later still. Each may fail only as a
    connection error, which Celery meets by reconnecting; with kombu's own transport the
    close fails with an AttributeError (the detached transport has no settings left), and the
    worker exits."""
    proc, url = own_redis
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
