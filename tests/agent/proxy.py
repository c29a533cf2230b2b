"""A small HTTP proxy between the agent and the live VetSync, on a real socket, that the tests
turn into an outage: VetSync down (503 or no connection), rate-limited (429 + Retry-After), or
applying a request and then never answering it (an agent killed while waiting)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import requests


@dataclass
class Seen:
    method: str
    path: str
    at: float
    status: int


@dataclass
class Rules:
    down: bool = False  # answer 503 to everything
    throttle: int = 0  # answer this many requests with 429 + Retry-After
    retry_after: str = "1"
    # Forward this POST to VetSync but then hold the answer until released (None: none held).
    hold_after_posts: int | None = None
    drop_acks: bool = False  # acks reach VetSync? no: answered 503 before forwarding
    released: threading.Event = field(default_factory=threading.Event)


class Proxy:
    def __init__(self, target: str) -> None:
        self.target = target.rstrip("/")
        self.rules = Rules()
        self.seen: list[Seen] = []
        self.posts = 0
        self.lock = threading.Lock()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                proxy.handle(self)

            def do_POST(self) -> None:
                proxy.handle(self)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def close(self) -> None:
        self.rules.released.set()
        self.server.shutdown()
        self.server.server_close()

    def _note(self, handler: BaseHTTPRequestHandler, status: int) -> None:
        with self.lock:
            self.seen.append(Seen(handler.command, handler.path, time.monotonic(), status))

    def _reply(self, handler: BaseHTTPRequestHandler, status: int, body: bytes, **headers: str):
        handler.send_response(status)
        for name, value in {"Content-Type": "application/json", **headers}.items():
            handler.send_header(name, value)
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        handler.wfile.write(body)
        self._note(handler, status)

    def handle(self, handler: BaseHTTPRequestHandler) -> None:
        rules = self.rules
        length = int(handler.headers.get("Content-Length") or 0)
        body = handler.rfile.read(length) if length else None
        if rules.down or (rules.drop_acks and handler.path.endswith("/ack")):
            self._reply(handler, 503, b'{"error": "down for maintenance"}')
            return
        with self.lock:
            throttled = rules.throttle > 0
            if throttled:
                rules.throttle -= 1
        if throttled:
            self._reply(
                handler, 429, b'{"error": "slow down"}', **{"Retry-After": rules.retry_after}
            )
            return
        answer = self._forward(handler, body)
        if handler.command == "POST" and handler.path.endswith("/batches"):
            with self.lock:
                self.posts += 1
                hold = rules.hold_after_posts is not None and self.posts > rules.hold_after_posts
            if hold:
                self._note(handler, -answer.status_code)  # applied, never answered
                rules.released.wait()
                return
        headers = (
            {"Retry-After": answer.headers["Retry-After"]}
            if "Retry-After" in answer.headers
            else {}
        )
        self._reply(handler, answer.status_code, answer.content, **headers)

    def _forward(self, handler: BaseHTTPRequestHandler, body: bytes | None) -> requests.Response:
        headers = {
            name: handler.headers[name]
            for name in ("Authorization", "Content-Type", "User-Agent", "Accept")
            if handler.headers.get(name)
        }
        return requests.request(
            handler.command, self.target + handler.path, data=body, headers=headers, timeout=60
        )

    def wait_for(self, condition: Callable[[], bool], timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while not condition():
            if time.monotonic() > deadline:
                raise AssertionError("the proxy never saw what the test waited for")
            time.sleep(0.02)
