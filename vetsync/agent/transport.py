"""Talking to VetSync's agent API: the batch upload, its status, the writeback feed and acks.

Network errors and 5xx are retried with exponential backoff and jitter; a 429 waits for its
``Retry-After``. Every request names the agent and its version in ``User-Agent`` (PIMS.md).
"""

from __future__ import annotations

import email.utils
import platform
import random
import re
import threading
import time
import urllib.parse
from dataclasses import dataclass
from typing import Any

import requests

from vetsync.agent import USER_AGENT_NAME, __version__
from vetsync.agent.config import Config

USER_AGENT = (
    f"{USER_AGENT_NAME}/{__version__} (Python {platform.python_version()}; {platform.system()})"
)
MAX_RETRY_AFTER = 900.0


class Unreachable(RuntimeError):
    """VetSync did not answer usefully after every retry (network, 5xx, 429): try later."""


class Refused(RuntimeError):
    """VetSync answered with a 4xx that a retry will not change (bad token, paused, bad batch)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"HTTP {status}: {message}")
        self.status = status
        self.message = message


@dataclass(frozen=True)
class Answer:
    status: int
    body: dict[str, Any]


def retry_after_seconds(value: str | None, default: float) -> float:
    """``Retry-After`` as seconds: either a number or an HTTP date."""
    if not value:
        return default
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return default
    return max(0.0, when.timestamp() - time.time())


def _short(exc: Exception) -> str:
    """A network error in a few words (requests nests the reason three levels deep)."""
    reason = re.search(r"\[Errno [^\]]*\][^'\")]*", str(exc))
    return f"{exc.__class__.__name__}: {reason.group(0) if reason else str(exc)[:200]}"


class VetSync:
    def __init__(self, config: Config, *, stop: threading.Event | None = None) -> None:
        self.config = config
        self.stop = stop or threading.Event()
        self.session = requests.Session()
        self.session.headers.update(
            {
                "Authorization": f"Bearer {config.token}",
                "User-Agent": USER_AGENT,
                "Accept": "application/json",
            }
        )
        self.last_contact: float | None = None

    def close(self) -> None:
        self.session.close()

    def _sleep(self, seconds: float) -> None:
        if self.stop.wait(seconds):
            raise Unreachable("Stopped while waiting to retry.")

    def request(
        self,
        method: str,
        path: str,
        *,
        data: bytes | None = None,
        json_body: Any = None,
        expect: tuple[int, ...] = (200,),
    ) -> Answer:
        """One call with retries; 4xx (other than 429) raise ``Refused`` at once."""
        cfg = self.config
        last = ""
        for attempt in range(1, cfg.max_attempts + 1):
            delay = min(cfg.backoff_max, cfg.backoff_base * 2 ** (attempt - 1))
            delay *= random.uniform(0.5, 1.0)
            try:
                response = self.session.request(
                    method,
                    cfg.api + path,
                    data=data,
                    json=json_body,
                    headers={"Content-Type": "application/json"} if data is not None else None,
                    timeout=cfg.timeout,
                    allow_redirects=False,
                )
            except requests.RequestException as exc:
                last = _short(exc)
            else:
                self.last_contact = time.time()
                answer = self._answer(response)
                if response.status_code in expect:
                    return answer
                message = str(answer.body.get("error") or response.reason or "")
                if response.status_code == 429:
                    last = f"HTTP 429: {message}"
                    delay = min(
                        MAX_RETRY_AFTER,
                        retry_after_seconds(response.headers.get("Retry-After"), delay),
                    )
                elif response.status_code >= 500:
                    last = f"HTTP {response.status_code}: {message}"
                elif 300 <= response.status_code < 400:
                    # Never follow: a POST would be replayed as a GET elsewhere.
                    target = response.headers.get("Location", "?")
                    raise Refused(
                        response.status_code, f"redirected to {target}; set [vetsync] url to it"
                    )
                else:
                    raise Refused(response.status_code, message)
            if attempt < cfg.max_attempts:
                self._sleep(delay)
        raise Unreachable(f"VetSync did not answer after {cfg.max_attempts} attempts ({last}).")

    @staticmethod
    def _answer(response: requests.Response) -> Answer:
        try:
            body = response.json()
        except ValueError:
            body = {"error": response.text[:300]}
        return Answer(response.status_code, body if isinstance(body, dict) else {"body": body})

    # --- the calls -----------------------------------------------------------------------------

    def post_batch(self, body: bytes) -> Answer:
        return self.request("POST", "batches", data=body, expect=(200, 202))

    def batch_status(self, batch_id: str) -> Answer:
        return self.request("GET", f"batches/{urllib.parse.quote(batch_id, safe='')}")

    def probe(self) -> Answer:
        """Whether VetSync answers and takes the token: an unknown batch is a 404, not a 401."""
        return self.request("GET", "batches/vetsync-agent-check", expect=(404,))

    def feed(self, after: int) -> Answer:
        return self.request("GET", f"writebacks?after={after}")

    def ack(self, item_id: int, ok: bool, error: str = "") -> Answer:
        body: dict[str, Any] = {"ok": ok} if ok else {"ok": False, "error": error[:2000]}
        return self.request("POST", f"writebacks/{item_id}/ack", json_body=body)
