"""An agent's batch body, read in a bounded way: streamed in pieces to a temporary file (on
disk past a megabyte) with the cap enforced on the bytes that arrive, whatever the
Content-Length said, then decoded once into the text that is stored."""

from __future__ import annotations

import codecs
import tempfile

from django.http import HttpRequest

PIECE = 1024 * 1024
SPOOL_IN_MEMORY = 1024 * 1024


class BodyTooBig(Exception):
    pass


class BodyNotText(Exception):
    pass


def agent_body_text(request: HttpRequest, *, max_bytes: int) -> str:
    """The body as text. Raises BodyTooBig past ``max_bytes``, BodyNotText if not UTF-8."""
    received = 0
    with tempfile.SpooledTemporaryFile(max_size=SPOOL_IN_MEMORY) as spool:
        while piece := request.read(PIECE):
            received += len(piece)
            if received > max_bytes:
                raise BodyTooBig
            spool.write(piece)
        spool.seek(0)
        decoder = codecs.getincrementaldecoder("utf-8")()
        parts: list[str] = []
        try:
            while piece := spool.read(PIECE):
                parts.append(decoder.decode(piece))
            parts.append(decoder.decode(b"", final=True))
        except UnicodeDecodeError as exc:
            raise BodyNotText(f"The batch is not valid UTF-8 JSON: {exc.reason}.") from exc
    return "".join(parts)
