"""kombu's filesystem broker (`make run`'s, no server needed) with whole messages only.

kombu writes a message file in place (create, then write), and a worker polling the folder
may take the file in between: it reads an empty message, fails to decode it and the worker
dies ("Unrecoverable error: JSONDecodeError"), which the WriteBack soak saw under load. Here a
message is written under a name no reader picks up and renamed into place when complete
(a rename is atomic within a folder).
"""

from __future__ import annotations

import os
import uuid
from time import monotonic
from typing import Any

from kombu.transport import filesystem
from kombu.utils.encoding import str_to_bytes
from kombu.utils.json import dumps


class Channel(filesystem.Channel):
    def _put(self, queue: str, payload: Any, **kwargs: Any) -> None:  # type: ignore[override]
        name = f"{round(monotonic() * 1000)}_{uuid.uuid4()}.{queue}.msg"
        final = os.path.join(self.data_folder_out, name)
        partial = os.path.join(self.data_folder_out, f"~{name}.part")  # never "<queue>.msg"
        try:
            with open(partial, "wb") as handle:
                handle.write(str_to_bytes(dumps(payload)))
            os.replace(partial, final)
        except OSError as exc:
            raise filesystem.ChannelError(f"Cannot add file {final!r} to directory") from exc


class Transport(filesystem.Transport):
    Channel = Channel
    global_state = filesystem.Transport.global_state
