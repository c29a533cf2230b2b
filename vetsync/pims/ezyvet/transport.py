"""One ezyVet site's v1 API over HTTP: the token, the site's rate limits, every retry that is
safe, and paging. ``EzyVetClient`` builds what VetSync asks of ezyVet on it."""

from __future__ import annotations

import datetime as dt
import json
import random
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from types import TracebackType
from typing import Any, NoReturn, Protocol, Self
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import requests

from vetsync.lib.numbers import is_ascii_digits
from vetsync.pims.ezyvet.credentials import EzyVetCredentials
from vetsync.pims.ezyvet.errors import (
    EzyVetAuthError,
    EzyVetProtocolError,
    EzyVetRateLimited,
    EzyVetRequestError,
    EzyVetScopeError,
    EzyVetUnavailable,
    _AmbiguousWrite,
)
from vetsync.pims.ezyvet.limits import RateLimiter
from vetsync.pims.ezyvet.shared_limits import SharedRateLimiter
from vetsync.pims.ezyvet.wire import _epoch_datetime, _id_order, _unwrap

PAGE_LIMIT = 200  # ezyVet's maximum page size
ID_BATCH = 200  # ids per ``in`` filter: keeps URLs near 3 kB, well under server limits
# The longest Retry-After honoured: ezyVet's limits are per minute, and a bigger value (401
# digits read as infinity) would keep a worker asleep and overflow a next attempt's date.
RETRY_AFTER_MAX = 3600.0


def _zone(timezone: str | dt.tzinfo) -> dt.tzinfo:
    if isinstance(timezone, dt.tzinfo):
        return timezone
    try:
        return ZoneInfo(timezone)
    except ZoneInfoNotFoundError as exc:
        raise ValueError(f"Unknown time zone {timezone!r}.") from exc


def _filter(value: object) -> str:
    """A filter value as ezyVet reads it: plain for equality, URL-encoded JSON otherwise."""
    if isinstance(value, Mapping):
        return json.dumps(dict(value), separators=(",", ":"))
    return str(value)


def _id_list(ids: Iterable[str]) -> list[int | str]:
    return [int(i) if is_ascii_digits(i) else i for i in ids]


def _chunks(items: Sequence[str], size: int = ID_BATCH) -> Iterator[list[str]]:
    for start in range(0, len(items), size):
        yield list(items[start : start + size])


@dataclass(slots=True)
class _Call:
    """One ``request`` and the retries it has used up."""

    method: str
    path: str
    endpoint: str
    idempotent: bool
    attempt: int = 0  # transport failures and 5xx answers
    rate_limited: int = 0  # 429 answers
    reauthenticated: bool = False

    def __str__(self) -> str:
        return f"{self.method} v1/{self.path}"


class TokenStore(Protocol):
    """Where processes share a site's access token: ezyVet keeps one live token per set of
    credentials, so two workers each fetching their own would keep revoking each other's."""

    def get(self) -> tuple[str, float] | None:
        """The token and its expiry (wall-clock epoch seconds), if one is stored."""

    def put(self, token: str, expires_at: float) -> None: ...

    def discard(self, token: str) -> None:
        """Forget ``token`` (refused by ezyVet) unless another process replaced it already."""


class EzyVetTransport:
    """One ezyVet site over HTTP: tokens, limits, retries, paging."""

    def __init__(
        self,
        base_url: str,
        credentials: EzyVetCredentials,
        *,
        timeout: float | tuple[float, float] = (5.0, 30.0),
        rate_per_minute: int = 180,
        endpoint_rate_per_minute: int = 60,
        window_seconds: float = 60.0,
        max_attempts: int = 5,
        max_rate_limited: int = 8,
        backoff_base: float = 0.5,
        backoff_cap: float = 30.0,
        refresh_margin: float = 300.0,
        timezone: str | dt.tzinfo = "UTC",
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        rng: random.Random | None = None,
        session: requests.Session | None = None,
        token_store: TokenStore | None = None,
        limiter: SharedRateLimiter | None = None,
        on_call: Callable[[str, int | None], None] | None = None,
    ) -> None:
        """``limiter``: the site's limits shared with other processes (else this process keeps
        to them alone); ``on_call(endpoint, status)`` is told of every call (None: no answer)."""
        base = base_url.rstrip("/")
        self.base_url = base.removesuffix("/v1")
        self.credentials = credentials
        self.timeout = timeout
        self.max_attempts = max_attempts
        self.max_rate_limited = max_rate_limited
        self.backoff_base = backoff_base
        self.backoff_cap = backoff_cap
        self.refresh_margin = refresh_margin
        self.zone = _zone(timezone)
        self.clock = clock
        self.sleep = sleep
        self.rng = rng or random.Random()
        self.session = session or requests.Session()
        self.session.headers.setdefault("User-Agent", "VetSync-ezyVet/1")
        self.limiter: RateLimiter | SharedRateLimiter = limiter or RateLimiter(
            rate=rate_per_minute,
            endpoint_rate=endpoint_rate_per_minute,
            window=window_seconds,
            clock=clock,
            sleep=sleep,
        )
        self.on_call = on_call
        self._token: str | None = None
        self._token_expires = 0.0
        self.token_store = token_store
        self.calls = 0  # API calls sent, the token endpoint excluded
        self.calls_by_endpoint: Counter[str] = Counter()
        self.token_requests = 0
        self.last_server_time: dt.datetime | None = None

    def close(self) -> None:
        self.session.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    # -- tokens --

    def access_token(self) -> str:
        """The cached token (this process's, else the shared store's), fetched anew when
        missing or near its expiry."""
        if self._token is None or self.clock() >= self._token_expires:
            shared = self.token_store.get() if self.token_store is not None else None
            left = shared[1] - time.time() if shared is not None else 0.0
            if shared is not None and left > 0:
                self._token, self._token_expires = shared[0], self.clock() + left
            else:
                self._fetch_token()
                if self.token_store is not None and self._token is not None:
                    ttl = self._token_expires - self.clock()
                    self.token_store.put(self._token, time.time() + ttl)
        assert self._token is not None
        return self._token

    def _token_refused(self) -> None:
        """ezyVet refused our token (expired, or replaced by a newer one): drop it here and
        in the shared store; the next call takes a newer stored token or fetches one."""
        if self._token is not None and self.token_store is not None:
            self.token_store.discard(self._token)
        self._token = None

    def _fetch_token(self) -> None:
        url = f"{self.base_url}/v1/oauth/access_token"
        attempt = 0
        rate_limited = 0
        while True:
            self.token_requests += 1
            try:
                response = self.session.post(
                    url, json=self.credentials.token_request(), timeout=self.timeout
                )
            except (requests.ConnectionError, requests.Timeout) as exc:
                attempt += 1
                if attempt >= self.max_attempts:
                    raise EzyVetUnavailable(
                        f"ezyVet at {self.base_url} could not be reached: {exc}"
                    ) from exc
                self._backoff(attempt)
                continue
            status = response.status_code
            if status == 429:
                rate_limited += 1
                wait = self._retry_after(response, rate_limited)
                if rate_limited > self.max_rate_limited:
                    raise EzyVetRateLimited(
                        "ezyVet kept answering 429 to the token request.", retry_after=wait
                    )
                self.sleep(wait)
                continue
            if status >= 500:
                attempt += 1
                if attempt >= self.max_attempts:
                    raise EzyVetUnavailable(
                        f"ezyVet's token endpoint kept failing (HTTP {status}).", status=status
                    )
                self._backoff(attempt)
                continue
            if status != 200:
                texts = _texts(response)
                detail = " ".join(texts) or f"HTTP {status}"
                raise EzyVetAuthError(
                    f"ezyVet refused the credentials: {detail}", status=status, texts=texts
                )
            body = _json_body(response)
            token = body.get("access_token") if isinstance(body, dict) else None
            if not token:
                raise EzyVetProtocolError("ezyVet's token answer has no access_token.")
            try:
                lifetime = float(body.get("expires_in") or 43200)
            except (TypeError, ValueError):
                lifetime = 43200.0
            # Refresh early, but never so early that a short-lived token is refreshed per call.
            margin = min(self.refresh_margin, lifetime * 0.1)
            self._token = str(token)
            self._token_expires = self.clock() + lifetime - margin
            return

    # -- HTTP --

    def _backoff(self, attempt: int) -> None:
        """Exponential backoff with jitter: half the step fixed, half random."""
        step = min(self.backoff_cap, self.backoff_base * 2 ** (attempt - 1))
        self.sleep(step / 2 + self.rng.uniform(0, step / 2))

    def _retry_after(self, response: requests.Response, attempt: int) -> float:
        header = response.headers.get("Retry-After", "").strip()
        asked: float | None = None
        if header:
            try:
                asked = float(header)
            except ValueError:
                try:
                    when = parsedate_to_datetime(header)
                except (TypeError, ValueError, OverflowError):
                    when = None
                if when is not None:
                    if when.tzinfo is None:  # "-0000": UTC, with no zone said (RFC 5322)
                        when = when.replace(tzinfo=dt.UTC)
                    asked = (when - dt.datetime.now(dt.UTC)).total_seconds()
        if asked is not None and asked == asked:  # NaN is no wait: the backoff below
            return min(max(0.0, asked), RETRY_AFTER_MAX)
        return min(self.backoff_cap, self.backoff_base * 2**attempt)

    def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, object] | None = None,
        payload: object = None,
        idempotent: bool = True,
    ) -> dict[str, Any]:
        """One v1 call (``path`` like ``"contact"`` or ``"externalprescription/7"``) with the
        limits, the token and every retry that is safe; returns the decoded body."""
        call = _Call(method, path, path.split("/", 1)[0], idempotent)
        url = f"{self.base_url}/v1/{path}"
        query = {key: _filter(value) for key, value in (params or {}).items()}
        while True:
            response = self._send(call, url, query, payload)
            if response is None:
                continue
            status = response.status_code
            if status == 401:
                self._on_unauthorized(call, response)
            elif status == 403:
                self._on_forbidden(call, response)
            elif status == 429:
                self._on_rate_limited(call, response)
            elif status >= 500:
                self._on_server_error(call, response)
            elif status >= 400:
                self._on_refused(call, response)
            else:
                return self._on_answer(call, response)

    def _send(
        self, call: _Call, url: str, query: Mapping[str, str], payload: object
    ) -> requests.Response | None:
        """One try within the limits; None when the transport failed and a retry is due."""
        headers = {"Authorization": f"Bearer {self.access_token()}"}
        slots = self.limiter.acquire(call.endpoint)
        try:
            response = self.session.request(
                call.method,
                url,
                params=query,
                json=payload,
                headers=headers,
                timeout=self.timeout,
            )
        except (
            requests.ConnectionError,
            requests.Timeout,
            requests.exceptions.ChunkedEncodingError,
        ) as exc:
            self._count(call, None)
            self._on_transport_error(call, exc)
            return None
        finally:
            # Stamped after a transport error's backoff too: later is only more cautious.
            self.limiter.finish(slots)
        self._count(call, response.status_code)
        return response

    def _count(self, call: _Call, status: int | None) -> None:
        self.calls += 1
        self.calls_by_endpoint[call.endpoint] += 1
        if self.on_call is not None:
            self.on_call(call.endpoint, status)

    def _on_transport_error(self, call: _Call, exc: requests.RequestException) -> None:
        """No answer: a write may have landed, so only a read is retried, with backoff."""
        if not call.idempotent:
            raise _AmbiguousWrite(f"No answer to {call}: {exc}") from exc
        call.attempt += 1
        if call.attempt >= self.max_attempts:
            raise EzyVetUnavailable(
                f"ezyVet at {self.base_url} could not be reached after {call.attempt} "
                f"attempts: {exc}"
            ) from exc
        self._backoff(call.attempt)

    def _on_unauthorized(self, call: _Call, response: requests.Response) -> None:
        """401: expired, or revoked by a newer token for the same credentials; a new token,
        once."""
        if call.reauthenticated:
            raise EzyVetAuthError(
                "ezyVet refused a freshly issued access token: " + " ".join(_texts(response)),
                status=401,
                texts=_texts(response),
            )
        self._token_refused()
        call.reauthenticated = True

    def _on_forbidden(self, call: _Call, response: requests.Response) -> NoReturn:
        """403: the token lacks the scope of this endpoint."""
        scope = (
            "write-externalprescription"
            if call.endpoint == "externalprescription"
            else f"read-{call.endpoint}"
        )
        raise EzyVetScopeError(
            f"The ezyVet integration lacks the {scope} scope; enable it on the "
            "integration record and download the credentials again.",
            status=403,
            texts=_texts(response),
        )

    def _on_rate_limited(self, call: _Call, response: requests.Response) -> None:
        """429: wait as ezyVet asks, up to ``max_rate_limited`` times."""
        call.rate_limited += 1
        wait = self._retry_after(response, call.rate_limited)
        if call.rate_limited > self.max_rate_limited:
            raise EzyVetRateLimited(f"ezyVet kept answering 429 to {call}.", retry_after=wait)
        self.sleep(wait)

    def _on_server_error(self, call: _Call, response: requests.Response) -> None:
        """5xx: a write may have landed, so only a read is retried, with backoff."""
        status = response.status_code
        if not call.idempotent:
            raise _AmbiguousWrite(f"HTTP {status} from {call}", status=status)
        call.attempt += 1
        if call.attempt >= self.max_attempts:
            raise EzyVetUnavailable(
                f"ezyVet kept failing {call} (HTTP {status}) after {call.attempt} attempts.",
                status=status,
                texts=_texts(response),
            )
        self._backoff(call.attempt)

    @staticmethod
    def _on_refused(call: _Call, response: requests.Response) -> NoReturn:
        """Any other 4xx: the request itself is wrong, and sending it again will not help."""
        status = response.status_code
        texts = _texts(response)
        raise EzyVetRequestError(
            " ".join(texts) or f"ezyVet refused {call} (HTTP {status}).",
            status=status,
            texts=texts,
        )

    @staticmethod
    def _on_answer(call: _Call, response: requests.Response) -> dict[str, Any]:
        """2xx (or anything below 400): the body, which must be a JSON object."""
        body = _json_body(response)
        if not isinstance(body, dict):
            raise EzyVetProtocolError(f"{call} did not answer a JSON object.")
        return body

    def pages(
        self, resource: str, filters: Mapping[str, object] | None = None
    ) -> Iterator[list[dict[str, Any]]]:
        """Each page of a list, 200 at a time, walked until ``items_page_total``."""
        page = 1
        while True:
            params = {**(filters or {}), "limit": PAGE_LIMIT, "page": page}
            body = self.request("GET", resource, params=params)
            meta = body.get("meta") or {}
            self._note_server_time(meta)
            records = [_unwrap(item, resource) for item in body.get("items") or []]
            yield records
            try:
                total_pages = int(str(meta.get("items_page_total", "0")) or 0)
            except ValueError as exc:
                raise EzyVetProtocolError(f"v1/{resource} sent a bad items_page_total.") from exc
            # An empty page also ends the walk, so a miscounting server cannot loop us.
            if page >= total_pages or not records:
                return
            page += 1

    def iter_records(
        self, resource: str, filters: Mapping[str, object] | None = None
    ) -> Iterator[dict[str, Any]]:
        """Every record of a list, across pages; ``filters`` values may be comparator dicts."""
        for page in self.pages(resource, filters):
            yield from page

    def iter_by_ids(
        self,
        resource: str,
        field_name: str,
        ids: Iterable[str],
        filters: Mapping[str, object] | None = None,
    ) -> Iterator[dict[str, Any]]:
        """Records whose ``field_name`` is one of ``ids``, 200 ids per call."""
        wanted = sorted({i for i in ids if i and i != "0"}, key=_id_order)
        for chunk in _chunks(wanted):
            yield from self.iter_records(
                resource, {**(filters or {}), field_name: {"in": _id_list(chunk)}}
            )

    def _note_server_time(self, meta: Mapping[str, Any]) -> None:
        stamp = _epoch_datetime(meta.get("timestamp"))
        if stamp is not None:
            self.last_server_time = stamp

    # -- onboarding --


def _json_body(response: requests.Response) -> Any:
    try:
        return response.json()
    except ValueError as exc:
        raise EzyVetProtocolError(
            f"ezyVet answered HTTP {response.status_code} with a body that is not JSON."
        ) from exc


def _texts(response: requests.Response) -> list[str]:
    """ezyVet's ``messages[].text``, or nothing when the body is not its error shape."""
    try:
        body = response.json()
    except ValueError:
        return []
    messages = body.get("messages") if isinstance(body, dict) else None
    if not isinstance(messages, list):
        return []
    return [str(m["text"]) for m in messages if isinstance(m, dict) and m.get("text")]
