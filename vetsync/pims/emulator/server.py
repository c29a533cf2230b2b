"""The emulated site on a real socket: ``EzyVetEmulator`` for tests, the CLI for the demo."""

from __future__ import annotations

import contextlib
import socket
import sys
import threading
import time
from collections.abc import Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Protocol, Self
from urllib.parse import parse_qsl, urlsplit

from vetsync.pims.emulator.fleet import EzyVetFleet
from vetsync.pims.emulator.reply import Reply
from vetsync.pims.emulator.site import EzyVetSite


class Handles(Protocol):
    """What the HTTP layer serves: one site, or a fleet of them."""

    def handle(
        self,
        method: str,
        path: str,
        query: Mapping[str, str],
        headers: Mapping[str, str],
        body: bytes,
    ) -> Reply: ...


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    # Many clients at once (a fleet's workers): a deeper accept queue than the default 5.
    request_queue_size = 128
    site: Handles
    verbose: bool

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that timed out and hung up is normal here (slow-response faults), not news.
        error = sys.exc_info()[1]
        if isinstance(error, ConnectionError | TimeoutError):
            return
        super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    # HTTP/1.1 keeps connections alive, as ezyVet's servers do; requests' pool reuses them.
    protocol_version = "HTTP/1.1"
    # Headers and body go out in separate writes; with Nagle on, each answer would wait
    # for the client's delayed ACK (~40 ms).
    disable_nagle_algorithm = True
    server_version = "ezyVet-emulator"
    # An idle kept-alive connection is closed after this, so stopped tests leave no threads.
    timeout = 30
    server: _Server

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_PATCH(self) -> None:
        self._dispatch("PATCH")

    def do_PUT(self) -> None:
        self._dispatch("PUT")

    def do_DELETE(self) -> None:
        self._dispatch("DELETE")

    def _dispatch(self, method: str) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        url = urlsplit(self.path)
        query = dict(parse_qsl(url.query, keep_blank_values=True))
        # Title-case so the site reads "Authorization" however the client spelled it.
        headers = {key.title(): value for key, value in self.headers.items()}
        reply = self.server.site.handle(method, url.path, query, headers, body)
        if reply.delay:
            time.sleep(reply.delay)
        if reply.drop:
            self.close_connection = True
            with contextlib.suppress(OSError):
                self.connection.shutdown(socket.SHUT_RDWR)
            return
        self.send_response(reply.status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(reply.body)))
        for key, value in reply.headers.items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(reply.body)

    def log_message(self, format: str, *args: Any) -> None:
        if self.server.verbose:
            super().log_message(format, *args)


class Serving:
    """Serves ``self.handle`` over HTTP: ``start()`` in a thread, or ``serve_forever()``."""

    # Class-level defaults keep the served class's typed constructor as its own.
    verbose = False  # log every request to stderr
    _server: _Server | None = None
    _thread: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        if self._server is None:
            raise RuntimeError("The emulator is not started.")
        host, port = self._server.server_address[:2]
        name = host.decode() if isinstance(host, bytes) else host
        return f"http://{name}:{port}"

    def bind(self, host: str = "127.0.0.1", port: int = 0) -> str:
        """Listen on ``host:port`` (0 picks a free port) and return the base URL."""
        server = _Server((host, port), _Handler)
        server.site = self  # type: ignore[assignment]  # the served class defines handle()
        server.verbose = self.verbose
        self._server = server
        return self.base_url

    def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        """Serve from a background thread; returns the base URL, e.g. ``http://127.0.0.1:41234``."""
        url = self.bind(host, port)
        assert self._server is not None
        # A short poll interval makes stop() quick: tests start and stop one per test.
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="ezyvet-emulator",
            daemon=True,
        )
        self._thread.start()
        return url

    def serve_forever(self) -> None:
        """Serve in this thread until interrupted (after ``bind``)."""
        if self._server is None:
            raise RuntimeError("Call bind() first.")
        self._server.serve_forever()

    def stop(self) -> None:
        if self._server is None:
            return
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join(timeout=5)
            self._thread = None
        self._server.server_close()
        self._server = None

    def __enter__(self) -> Self:
        if self._server is None:
            self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()


class EzyVetEmulator(Serving, EzyVetSite):
    """An ezyVet site served over HTTP: ``start()`` in a thread, or ``serve_forever()``.

    Every control method of ``EzyVetSite`` (``mutate``, ``inject_fault``, ``state``, …) is
    available directly and through ``/_emulator/*``.
    """


class FleetEmulator(Serving, EzyVetFleet):
    """Many ezyVet sites served over HTTP on one port, site ``n`` under ``/site/<n>/``.

    ``site_url(n)`` is the base URL an integration stores; ``site(n)`` is the site itself, with
    every control method of ``EzyVetSite``.
    """

    def site_url(self, number: int) -> str:
        return f"{self.base_url}{self.site_path(number)}"
