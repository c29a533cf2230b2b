"""kombu's Redis broker, with a worker that survives the broker's restart.

Celery 5.7 handles a lost broker connection by collecting the connection (which detaches the
transport from it) and then closing it again. The second close can still reach the channel's
Redis code: giving back the messages the worker holds unacknowledged, acknowledging one, or
deleting a queue, each of which builds its Redis client from the connection's settings, which
the collect removed. That ``AttributeError`` is not a connection error, nobody catches it and
the worker exits ("Unrecoverable error: AttributeError: 'NoneType' object has no attribute
'hostname'"), as the WriteBack soak saw whenever it restarted redis-server. Here a channel
whose connection is gone says so as a connection error, which kombu and Celery expect while
the broker is away: the close goes on, the worker reconnects, and the unacknowledged messages
stay in Redis for the next consumer to restore, as when a worker dies.
"""

from __future__ import annotations

from typing import Any

from kombu.transport import redis
from redis.exceptions import ConnectionError as RedisConnectionError


class Channel(redis.Channel):
    def _connparams(self, asynchronous: bool = False) -> Any:
        if self.connection.client is None:
            raise RedisConnectionError("The broker connection was closed after it was lost.")
        return super()._connparams(asynchronous=asynchronous)


class Transport(redis.Transport):
    Channel = Channel
