"""The ezyVet v1 REST connector: credentials, a polite HTTP client, the pull, the writeback.

``EzyVetClient`` holds one site's token, keeps under the site's rate limits on its own side,
retries what is safe to retry, and turns ezyVet's contacts and animals into
``vetsync.pims.records`` types. ``EzyVetClient.pull`` walks clients in pages of 200 and yields
one ``PimsBatch`` per page; a record that does not parse becomes a ``QuarantinedRecord``
instead of stopping the pull. Pure protocol code: no Django, no database.

One client is meant for one thread. Two processes pulling and writing back for the same site
share ezyVet's limits (and, since a new token expires the old, fight over tokens); the 429 and
401 handling here keeps that correct, only slower.
"""

from __future__ import annotations

import datetime as dt
import json
import random
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from email.utils import parsedate_to_datetime
from types import TracebackType
from typing import Any, Protocol
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import requests

from vetsync.pims.records import (
    PimsAddress,
    PimsBatch,
    PimsClient,
    PimsPatient,
    QuarantinedRecord,
    Source,
    WeightUnit,
)

PAGE_LIMIT = 200  # ezyVet's maximum page size
ID_BATCH = 200  # ids per ``in`` filter: keeps URLs near 3 kB, well under server limits
PULL_SCOPES = (
    "read-contact",
    "read-contactdetail",
    "read-contactdetailtype",
    "read-address",
    "read-animal",
    "read-species",
    "read-breed",
    "read-sex",
)
WRITEBACK_SCOPES = ("read-user", "read-consult", "write-externalprescription")
REQUIRED_SCOPES = PULL_SCOPES + WRITEBACK_SCOPES
# The resource whose read proves each scope (the write scope is proved by a lookup, which
# needs it too).
SCOPE_PROBES = {scope: scope.split("-", 1)[1] for scope in REQUIRED_SCOPES}
ITEMS_KEY = "external_prescription_item_list"


# -- credentials ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class EzyVetCredentials:
    """The clinic's API credentials, as in the ``client_credentials.txt`` ezyVet hands out."""

    partner_id: str
    client_id: str
    client_secret: str = field(repr=False)
    site_uid: str
    scope: str = " ".join(REQUIRED_SCOPES)

    @property
    def scopes(self) -> tuple[str, ...]:
        return tuple(s for s in self.scope.replace(",", " ").split() if s)

    def token_request(self) -> dict[str, str]:
        return {
            "partner_id": self.partner_id,
            "client_id": self.client_id,
            "client_secret": self.client_secret,
            "grant_type": "client_credentials",
            "scope": " ".join(self.scopes),
            "site_uid": self.site_uid,
        }


_LABELS = {
    "partner_id": "Partner ID",
    "client_id": "Client ID",
    "client_secret": "Client Secret",
    "site_uid": "Site UID",
}
_KEYS = {
    "partnerid": "partner_id",
    "clientid": "client_id",
    "clientsecret": "client_secret",
    "secret": "client_secret",
    "siteuid": "site_uid",
    "siteid": "site_uid",
    "scope": "scope",
    "scopes": "scope",
}


def _normal_key(key: str) -> str:
    return "".join(ch for ch in key.lower() if ch.isalnum())


def credentials_from_mapping(values: Mapping[str, object]) -> EzyVetCredentials:
    """Credentials from a key/value mapping whose keys may be spelled any common way
    (``partner_id``, ``Partner ID``, ``partnerId``); ``scope`` defaults to what VetSync needs."""
    found: dict[str, str] = {}
    for raw_key, raw_value in values.items():
        key = _KEYS.get(_normal_key(str(raw_key)))
        if key is None:
            continue  # ezyVet's file carries other lines (names, grant type) we do not need
        value = "" if raw_value is None else str(raw_value).strip().strip("\"'").strip()
        if key in found and found[key] != value:
            raise ValueError(f"The credentials give two different values for {_label(key)}.")
        found[key] = value
    missing = [_LABELS[key] for key in _LABELS if not found.get(key)]
    if missing:
        raise ValueError(f"The credentials are missing {_join(missing)}.")
    scope = found.get("scope") or " ".join(REQUIRED_SCOPES)
    return EzyVetCredentials(
        partner_id=found["partner_id"],
        client_id=found["client_id"],
        client_secret=found["client_secret"],
        site_uid=found["site_uid"],
        scope=" ".join(s for s in scope.replace(",", " ").split() if s),
    )


def parse_credentials_file(text: str) -> EzyVetCredentials:
    """Read a ``client_credentials.txt``: ``key: value`` or ``key=value`` lines, a label
    alone on a line with its value on the next, or a JSON object. Raises ValueError naming
    what is missing or unreadable."""
    if not text or not text.strip():
        raise ValueError("The credentials file is empty.")
    stripped = text.strip().lstrip("\ufeff")
    if stripped.startswith("{"):
        try:
            data = json.loads(stripped)
        except json.JSONDecodeError as exc:
            raise ValueError(f"The credentials file is not valid JSON ({exc.msg}).") from exc
        if not isinstance(data, dict):
            raise ValueError("The credentials file must be a JSON object.")
        return credentials_from_mapping(data)
    pairs: list[tuple[str, str]] = []
    pending_label: str | None = None
    for raw in stripped.splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", "//", ";")):
            continue
        cuts = [i for i in (line.find(":"), line.find("=")) if i > 0]
        if cuts:
            cut = min(cuts)
            key, value = line[:cut], line[cut + 1 :]
            if _normal_key(key) in _KEYS:
                pairs.append((key, value))
                pending_label = None
                continue
        if pending_label is not None:
            pairs.append((pending_label, line))
            pending_label = None
        elif _normal_key(line) in _KEYS:
            pending_label = line
    return credentials_from_mapping(dict(_merge_pairs(pairs)))


def _merge_pairs(pairs: list[tuple[str, str]]) -> Iterator[tuple[str, str]]:
    seen: dict[str, tuple[str, str]] = {}
    for key, value in pairs:
        normal = _KEYS[_normal_key(key)]
        if normal in seen and seen[normal][1].strip() != value.strip():
            raise ValueError(
                f"The credentials file gives two different values for {_label(normal)}."
            )
        seen[normal] = (key, value)
    yield from seen.values()


def _label(key: str) -> str:
    return _LABELS.get(key, "Scope")


def _join(names: Sequence[str]) -> str:
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


# -- errors ---------------------------------------------------------------------------------


class EzyVetError(Exception):
    """Anything ezyVet refused or could not answer; ``texts`` are ezyVet's own messages."""

    def __init__(
        self, message: str, *, status: int | None = None, texts: Sequence[str] = ()
    ) -> None:
        super().__init__(message)
        self.status = status
        self.texts = tuple(texts)


class EzyVetAuthError(EzyVetError):
    """The credentials were refused (wrong secret, partner, site) or a fresh token was."""


class EzyVetScopeError(EzyVetError):
    """The token lacks a scope the call needs: the integration record must enable it."""


class EzyVetUnavailable(EzyVetError):
    """ezyVet could not be reached or kept failing (5xx, timeouts) after every retry."""


class EzyVetRateLimited(EzyVetUnavailable):
    """ezyVet kept answering 429 after every retry; try again after ``retry_after`` seconds."""

    def __init__(self, message: str, *, retry_after: float, status: int = 429) -> None:
        super().__init__(message, status=status)
        self.retry_after = retry_after


class EzyVetRequestError(EzyVetError):
    """ezyVet refused the request itself (4xx): retrying the same request will not help."""


class EzyVetProtocolError(EzyVetError):
    """ezyVet answered, but not in the shape v1 documents."""


class _AmbiguousWrite(EzyVetUnavailable):
    """A write may or may not have been applied: its answer was lost or was a 5xx."""


def write_may_have_landed(exc: BaseException) -> bool:
    """Whether ``exc`` came after a write whose answer was lost (the lookup that followed it
    failed too): the write may be in ezyVet, so the next try looks before writing again."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, _AmbiguousWrite):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


# -- rate limiting --------------------------------------------------------------------------


class SlidingWindowLimiter:
    """At most ``limit`` calls in any ``window`` seconds, as the server counts them.

    A token bucket refilled at limit/window would allow up to twice the limit in one window
    after an idle spell, which a sliding-window server answers with 429s. Each slot is held
    until ``window`` seconds after its call *finished*: the server saw the call no later
    than that, so latency can never make two calls look closer together to it than to us.
    """

    def __init__(self, limit: int, window: float) -> None:
        self.limit = limit
        self.window = window
        self.slots: list[list[float]] = []

    def delay(self, now: float) -> float:
        self.slots = [slot for slot in self.slots if slot[0] > now - self.window]
        if self.limit <= 0 or len(self.slots) < self.limit:
            return 0.0
        stamps = sorted(slot[0] for slot in self.slots)
        return stamps[len(stamps) - self.limit] + self.window - now

    def take(self, now: float) -> list[float]:
        slot = [now]
        self.slots.append(slot)
        return slot


class RateLimiter:
    """The site-wide and per-endpoint limits together; ``acquire`` waits until both allow."""

    def __init__(
        self,
        *,
        rate: int,
        endpoint_rate: int,
        window: float,
        clock: Callable[[], float],
        sleep: Callable[[float], None],
    ) -> None:
        self.rate = rate
        self.endpoint_rate = endpoint_rate
        self.window = window
        self.clock = clock
        self.sleep = sleep
        self.site = SlidingWindowLimiter(rate, window)
        self.endpoints: dict[str, SlidingWindowLimiter] = {}
        self.lock = threading.Lock()
        self.waited = 0.0

    def acquire(self, endpoint: str) -> tuple[list[float], list[float]]:
        limiter = self.endpoints.setdefault(
            endpoint, SlidingWindowLimiter(self.endpoint_rate, self.window)
        )
        while True:
            with self.lock:
                now = self.clock()
                wait = max(self.site.delay(now), limiter.delay(now))
                if wait <= 0:
                    return self.site.take(now), limiter.take(now)
            self.waited += wait
            self.sleep(wait)

    def finish(self, slots: tuple[list[float], list[float]]) -> None:
        with self.lock:
            now = self.clock()
            for slot in slots:
                slot[0] = now


# -- results --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ScopeCheck:
    scope: str
    ok: bool
    detail: str = ""


@dataclass(frozen=True, slots=True)
class ConnectionCheck:
    """What onboarding shows after the credentials upload: token, then each scope."""

    ok: bool
    token_ok: bool
    error: str = ""
    scopes: tuple[ScopeCheck, ...] = ()

    @property
    def missing_scopes(self) -> tuple[str, ...]:
        return tuple(check.scope for check in self.scopes if not check.ok)


@dataclass(frozen=True, slots=True)
class EzyVetVet:
    """A user who may prescribe: ``user_id`` is what ``prescribing_vet_user_id`` takes."""

    user_id: str
    title: str
    first_name: str
    last_name: str
    email: str


@dataclass(frozen=True, slots=True)
class EzyVetConsult:
    """A clinical record an external prescription can be attached to (``consult_id``)."""

    consult_id: str
    animal_id: str
    vet_user_id: str
    date: dt.datetime | None


# -- the client -----------------------------------------------------------------------------


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
    return [int(i) if i.isdigit() else i for i in ids]


def _chunks(items: Sequence[str], size: int = ID_BATCH) -> Iterator[list[str]]:
    for start in range(0, len(items), size):
        yield list(items[start : start + size])


class TokenStore(Protocol):
    """Where processes share a site's access token: ezyVet keeps one live token per set of
    credentials, so two workers each fetching their own would keep revoking each other's."""

    def get(self) -> tuple[str, float] | None:
        """The token and its expiry (wall-clock epoch seconds), if one is stored."""

    def put(self, token: str, expires_at: float) -> None: ...

    def discard(self, token: str) -> None:
        """Forget ``token`` (refused by ezyVet) unless another process replaced it already."""


class EzyVetClient:
    """One ezyVet site over HTTP: tokens, limits, retries, paging, the pull and writeback."""

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
    ) -> None:
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
        self.limiter = RateLimiter(
            rate=rate_per_minute,
            endpoint_rate=endpoint_rate_per_minute,
            window=window_seconds,
            clock=clock,
            sleep=sleep,
        )
        self._token: str | None = None
        self._token_expires = 0.0
        self.token_store = token_store
        self.calls = 0  # API calls sent, the token endpoint excluded
        self.calls_by_endpoint: Counter[str] = Counter()
        self.token_requests = 0
        self.last_server_time: dt.datetime | None = None

    def close(self) -> None:
        self.session.close()

    def __enter__(self) -> EzyVetClient:
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
        if header:
            try:
                return max(0.0, float(header))
            except ValueError:
                try:
                    when = parsedate_to_datetime(header)
                except (TypeError, ValueError):
                    when = None
                if when is not None:
                    return max(0.0, (when - dt.datetime.now(dt.UTC)).total_seconds())
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
        endpoint = path.split("/", 1)[0]
        url = f"{self.base_url}/v1/{path}"
        query = {key: _filter(value) for key, value in (params or {}).items()}
        attempt = 0
        rate_limited = 0
        reauthenticated = False
        while True:
            headers = {"Authorization": f"Bearer {self.access_token()}"}
            slots = self.limiter.acquire(endpoint)
            try:
                response = self.session.request(
                    method,
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
                self.calls += 1
                self.calls_by_endpoint[endpoint] += 1
                if not idempotent:
                    raise _AmbiguousWrite(f"No answer to {method} v1/{path}: {exc}") from exc
                attempt += 1
                if attempt >= self.max_attempts:
                    raise EzyVetUnavailable(
                        f"ezyVet at {self.base_url} could not be reached after {attempt} "
                        f"attempts: {exc}"
                    ) from exc
                self._backoff(attempt)
                continue
            finally:
                self.limiter.finish(slots)
            self.calls += 1
            self.calls_by_endpoint[endpoint] += 1
            status = response.status_code
            if status == 401:
                if reauthenticated:
                    raise EzyVetAuthError(
                        "ezyVet refused a freshly issued access token: "
                        + " ".join(_texts(response)),
                        status=401,
                        texts=_texts(response),
                    )
                # Expired, or revoked by a newer token for the same credentials: once.
                self._token_refused()
                reauthenticated = True
                continue
            if status == 403:
                scope = (
                    "write-externalprescription"
                    if endpoint == "externalprescription"
                    else f"read-{endpoint}"
                )
                raise EzyVetScopeError(
                    f"The ezyVet integration lacks the {scope} scope; enable it on the "
                    "integration record and download the credentials again.",
                    status=403,
                    texts=_texts(response),
                )
            if status == 429:
                rate_limited += 1
                wait = self._retry_after(response, rate_limited)
                if rate_limited > self.max_rate_limited:
                    raise EzyVetRateLimited(
                        f"ezyVet kept answering 429 to {method} v1/{path}.", retry_after=wait
                    )
                self.sleep(wait)
                continue
            if status >= 500:
                if not idempotent:
                    raise _AmbiguousWrite(f"HTTP {status} from {method} v1/{path}", status=status)
                attempt += 1
                if attempt >= self.max_attempts:
                    raise EzyVetUnavailable(
                        f"ezyVet kept failing {method} v1/{path} (HTTP {status}) after "
                        f"{attempt} attempts.",
                        status=status,
                        texts=_texts(response),
                    )
                self._backoff(attempt)
                continue
            if status >= 400:
                texts = _texts(response)
                raise EzyVetRequestError(
                    " ".join(texts) or f"ezyVet refused {method} v1/{path} (HTTP {status}).",
                    status=status,
                    texts=texts,
                )
            body = _json_body(response)
            if not isinstance(body, dict):
                raise EzyVetProtocolError(f"{method} v1/{path} did not answer a JSON object.")
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

    def check_connection(self, scopes: Sequence[str] = REQUIRED_SCOPES) -> ConnectionCheck:
        """Get a token, then read one record per scope VetSync needs; never raises."""
        try:
            self._token = None
            self.access_token()
        except EzyVetError as exc:
            return ConnectionCheck(ok=False, token_ok=False, error=str(exc))
        checks = []
        for scope in scopes:
            resource = SCOPE_PROBES.get(scope, scope.split("-", 1)[-1])
            try:
                self.request("GET", resource, params={"limit": 1})
            except EzyVetScopeError:
                checks.append(ScopeCheck(scope, False, "not granted to this integration"))
            except EzyVetError as exc:
                checks.append(ScopeCheck(scope, False, str(exc)))
            else:
                checks.append(ScopeCheck(scope, True))
        failed = [c.scope for c in checks if not c.ok]
        error = f"Missing or failing scopes: {', '.join(failed)}." if failed else ""
        return ConnectionCheck(ok=not failed, token_ok=True, error=error, scopes=tuple(checks))

    # -- the pull --

    def pull(
        self,
        modified_since: dt.datetime | None = None,
        *,
        overlap: dt.timedelta = dt.timedelta(minutes=5),
    ) -> EzyVetPull:
        """A pull of clients and their patients: everything (``modified_since=None``) or
        what changed since then. Iterate it for ``PimsBatch`` pages; afterwards
        ``watermark`` is what to pass as ``modified_since`` next time."""
        return EzyVetPull(self, modified_since=modified_since, overlap=overlap)

    # -- prescribers and consults --

    def list_vets(self) -> list[EzyVetVet]:
        """Active users whose contact is a vet: the only valid prescribers."""
        users = list(self.iter_records("user", {"active": "1"}))
        vet_contacts = {
            c["id"]
            for c in self.iter_by_ids(
                "contact", "id", [_text(u.get("contact_id")) for u in users], {"is_vet": "1"}
            )
        }
        return [
            EzyVetVet(
                user_id=_text(u.get("id")),
                title=_text(u.get("title")),
                first_name=_text(u.get("first_name")),
                last_name=_text(u.get("last_name")),
                email=_text(u.get("email")),
            )
            for u in users
            if _text(u.get("contact_id")) in vet_contacts
        ]

    def list_consults(self, animal_id: str) -> list[EzyVetConsult]:
        """An animal's consults, newest first, for attaching a prescription to one."""
        consults = [
            EzyVetConsult(
                consult_id=_text(c.get("id")),
                animal_id=_text(c.get("animal_id")),
                vet_user_id=_text(c.get("vet_id")),
                date=_epoch_datetime(c.get("date")),
            )
            for c in self.iter_records("consult", {"animal_id": str(animal_id), "active": "1"})
        ]
        oldest = dt.datetime.min.replace(tzinfo=dt.UTC)
        return sorted(consults, key=lambda c: c.date or oldest, reverse=True)

    # -- external prescriptions --

    def externalprescription_find(self, external_reference: str) -> dict[str, Any] | None:
        """The prescription VetSync posted under ``external_reference``, if ezyVet has it."""
        # Always a JSON comparator: a reference that starts with "{" must not read as one.
        for record in self.iter_records(
            "externalprescription", {"external_reference": {"eq": external_reference}}
        ):
            return record
        return None

    def externalprescription_get(self, prescription_id: str) -> dict[str, Any] | None:
        for record in self.iter_records("externalprescription", {"id": str(prescription_id)}):
            return record
        return None

    def externalprescription_create(
        self, payload: Mapping[str, Any], *, look_first: bool = False
    ) -> dict[str, Any]:
        """POST a prescription; returns ezyVet's record (keep its ``id`` for PATCH).

        ezyVet has no idempotency key, so a lost answer or a 5xx is resolved by looking the
        ``external_reference`` up before posting again. Pass ``look_first=True`` when an
        earlier delivery of the same prescription may have reached ezyVet.
        """
        reference = str(payload.get("external_reference") or "")
        if not reference:
            raise ValueError("external_reference is required: it is how a lost answer is found.")
        if look_first:
            existing = self.externalprescription_find(reference)
            if existing is not None:
                return existing
        attempt = 0
        while True:
            try:
                body = self.request(
                    "POST", "externalprescription", payload=dict(payload), idempotent=False
                )
            except _AmbiguousWrite as exc:
                attempt += 1
                self._backoff(attempt)
                existing = self.externalprescription_find(reference)
                if existing is not None:
                    return existing
                if attempt >= self.max_attempts:
                    raise EzyVetUnavailable(
                        f"Could not post prescription {reference}: {exc}", status=exc.status
                    ) from exc
                continue
            return _single(body, "externalprescription")

    def externalprescription_update(
        self, prescription_id: str, payload: Mapping[str, Any]
    ) -> dict[str, Any]:
        """PATCH a prescription (a dispense, or an end status); returns the updated record.

        After a lost answer the record is read back: if it already shows what the PATCH
        asked for, the PATCH was applied and is not sent again (a second "decline" would be
        refused, since the item is no longer Pending).
        """
        path = f"externalprescription/{prescription_id}"
        attempt = 0
        while True:
            try:
                body = self.request("PATCH", path, payload=dict(payload), idempotent=False)
            except _AmbiguousWrite as exc:
                attempt += 1
                self._backoff(attempt)
                current = self.externalprescription_get(prescription_id)
                if current is not None and patch_applied(current, payload):
                    return current
                if attempt >= self.max_attempts:
                    raise EzyVetUnavailable(
                        f"Could not update prescription {prescription_id}: {exc}",
                        status=exc.status,
                    ) from exc
                continue
            return _single(body, "externalprescription")


def patch_applied(record: Mapping[str, Any], payload: Mapping[str, Any]) -> bool:
    """Whether ``record`` already shows every status and dispense ``payload`` asks for."""
    items = {_text(i.get("external_product_reference")): i for i in record.get(ITEMS_KEY) or []}
    root_dispense = payload.get("date_of_lastdispense")
    wanted = payload.get(ITEMS_KEY)
    if wanted is None:
        wanted = [
            {"external_product_reference": ref}
            for ref, item in items.items()
            if _text(item.get("status")) in {"PENDING", "CURRENT"} or root_dispense
        ]
    for change in wanted:
        item = items.get(_text(change.get("external_product_reference")))
        if item is None:
            return False
        status = _text(change.get("status"))
        if status:
            if _text(item.get("status")) != status or _epoch_text(
                item.get("status_date")
            ) != _epoch_text(change.get("status_date")):
                return False
            continue
        dispense = change.get("date_of_lastdispense") or root_dispense
        if dispense and _epoch_text(item.get("date_of_lastdispense")) != _epoch_text(dispense):
            return False
        # Two dispenses at the same time differ in what is left: compare the numbers too.
        for key in ("qty", "remaining"):
            if key in change and _number_text(item.get(key)) != _number_text(change[key]):
                return False
    return True


def _number_text(value: object) -> str:
    """A v1 number as comparable text: ``"30"``, ``30`` and ``30.0`` are the same."""
    text = _text(value)
    try:
        number = Decimal(text)
    except InvalidOperation:
        return text
    return format(number.normalize(), "f")


class EzyVetPull:
    """One pull. Iterate for ``PimsBatch`` pages (one per 200 clients); when iteration
    completes, ``watermark`` is set.

    ``watermark`` is ezyVet's clock at the pull's first call, not the newest ``modified_at``
    seen: a record edited mid-pull, after its page was read, is newer than the watermark and
    so is found by the next delta, while "newest seen" could already be past it.
    ``overlap`` re-reads a margin before ``modified_since`` for same-second edits and
    commits that become visible late; the sync engine sees those records as unchanged.

    Clients are contacts with ``is_customer`` "1" (staff and suppliers are contacts too);
    each comes with all its animals, active or not, so the engine sees the whole household.
    """

    def __init__(
        self, client: EzyVetClient, *, modified_since: dt.datetime | None, overlap: dt.timedelta
    ) -> None:
        self.client = client
        self.modified_since = modified_since
        self.overlap = overlap
        self.full = modified_since is None
        self.started_at: dt.datetime | None = None
        self.watermark: dt.datetime | None = None
        self.max_modified_at: dt.datetime | None = None
        self.complete = False
        self.calls = 0
        self.clients = 0
        self.patients = 0
        self.quarantined = 0
        self._pages = 0
        self._detail_types: dict[str, str] = {}
        self._names: dict[str, dict[str, str]] = {"species": {}, "breed": {}, "sex": {}}

    def __iter__(self) -> Iterator[PimsBatch]:
        client = self.client
        calls_before = client.calls
        try:
            self._detail_types = {
                _text(t.get("id")): _text(t.get("name"))
                for t in client.iter_records("contactdetailtype")
            }
            self.started_at = client.last_server_time
            if self.full:
                for page in client.pages("contact", {"is_customer": "1"}):
                    if page:
                        yield self._batch(page, [])
            else:
                yield from self._delta()
            self.watermark = self.started_at
            self.complete = True
        finally:
            self.calls = client.calls - calls_before

    def _delta(self) -> Iterator[PimsBatch]:
        client = self.client
        assert self.modified_since is not None
        since = self.modified_since - self.overlap
        changed = {"modified_at": {"gt": int(since.timestamp())}}
        contacts: dict[str, dict[str, Any]] = {}
        for contact in client.iter_records("contact", {**changed, "is_customer": "1"}):
            contacts[_text(contact.get("id"))] = contact
        owners: set[str] = set()
        for animal in client.iter_records("animal", changed):
            self._see(animal)
            owners.add(_text(animal.get("contact_id")))
        for detail in client.iter_records("contactdetail", changed):
            self._see(detail)
            owners.add(_text(detail.get("contact_id")))
        # An address names no contact; contacts name their addresses, so ask the other way.
        address_ids = [_text(a.get("id")) for a in client.iter_records("address", changed)]
        if address_ids:
            for field_name in ("address_physical", "address_postal"):
                for contact in client.iter_by_ids(
                    "contact", field_name, address_ids, {"is_customer": "1"}
                ):
                    contacts[_text(contact.get("id"))] = contact
        missing = owners - set(contacts) - {"", "0"}
        orphans: list[QuarantinedRecord] = []
        if missing:
            found = {_text(c.get("id")): c for c in client.iter_by_ids("contact", "id", missing)}
            for owner in sorted(missing, key=_id_order):
                owner_record = found.get(owner)
                if owner_record is None:
                    orphans.append(
                        QuarantinedRecord(
                            kind="client",
                            pims_id=owner,
                            reason=f"contact {owner} owns changed records but does not exist",
                            raw={"id": owner},
                        )
                    )
                elif _flag(owner_record.get("is_customer")):
                    contacts[owner] = owner_record
                # A changed pet of a non-customer contact (staff, supplier) is not a client's.
        ordered = sorted(contacts.values(), key=lambda c: _id_order(_text(c.get("id"))))
        if not ordered and orphans:
            yield self._make_batch([], orphans)
        for start in range(0, len(ordered), PAGE_LIMIT):
            yield self._batch(ordered[start : start + PAGE_LIMIT], orphans if start == 0 else [])

    def _see(self, record: Mapping[str, Any]) -> dt.datetime | None:
        stamp = _epoch_datetime(record.get("modified_at"))
        if stamp is not None and (self.max_modified_at is None or stamp > self.max_modified_at):
            self.max_modified_at = stamp
        return stamp

    def _batch(
        self, contacts: list[dict[str, Any]], quarantined: list[QuarantinedRecord]
    ) -> PimsBatch:
        """Related records for one page of contacts in a few ``in`` calls, then records."""
        client = self.client
        contact_ids = [_text(c.get("id")) for c in contacts]
        # Postal addresses only for contacts without a usable physical one: asking for both
        # would spill most pages' ids over one 200-id call for a few PO boxes.
        physical = {_text(c.get("address_physical")) for c in contacts}
        addresses = {_text(a.get("id")): a for a in client.iter_by_ids("address", "id", physical)}
        postal = {
            _text(c.get("address_postal"))
            for c in contacts
            if _address_of(addresses.get(_text(c.get("address_physical")))).is_empty()
        }
        addresses.update(
            {
                _text(a.get("id")): a
                for a in client.iter_by_ids("address", "id", postal - set(addresses))
            }
        )
        details: dict[str, list[dict[str, Any]]] = {}
        for detail in client.iter_by_ids(
            "contactdetail", "contact_id", contact_ids, {"active": "1"}
        ):
            details.setdefault(_text(detail.get("contact_id")), []).append(detail)
        animals: dict[str, list[dict[str, Any]]] = {}
        for animal in client.iter_by_ids("animal", "contact_id", contact_ids):
            animals.setdefault(_text(animal.get("contact_id")), []).append(animal)
        self._resolve_names([a for group in animals.values() for a in group])

        clients: list[PimsClient] = []
        held = list(quarantined)
        for contact in contacts:
            contact_id = _text(contact.get("id"))
            patients: list[PimsPatient] = []
            for animal in animals.get(contact_id, []):
                try:
                    patients.append(self._patient(animal))
                except (ValueError, TypeError, KeyError, ArithmeticError) as exc:
                    held.append(
                        QuarantinedRecord(
                            kind="patient",
                            pims_id=_text(animal.get("id")),
                            reason=str(exc),
                            raw=dict(animal),
                            client_pims_id=contact_id,
                        )
                    )
            try:
                clients.append(
                    self._client(contact, addresses, details.get(contact_id, []), patients)
                )
            except (ValueError, TypeError, KeyError, ArithmeticError) as exc:
                held.append(
                    QuarantinedRecord(
                        kind="client", pims_id=contact_id, reason=str(exc), raw=dict(contact)
                    )
                )
        return self._make_batch(clients, held)

    def _make_batch(
        self, clients: list[PimsClient], quarantined: list[QuarantinedRecord]
    ) -> PimsBatch:
        self._pages += 1
        self.clients += len(clients)
        self.patients += sum(len(c.patients) for c in clients)
        self.quarantined += len(quarantined)
        started = int(self.started_at.timestamp()) if self.started_at else 0
        return PimsBatch(
            source=Source.EZYVET,
            batch_id=f"ezyvet-{self.client.credentials.site_uid}-{started}-{self._pages:05d}",
            sent_at=self.client.last_server_time,
            full=self.full,
            clients=tuple(clients),
            quarantined=tuple(quarantined),
        )

    def _resolve_names(self, animals: list[dict[str, Any]]) -> None:
        """Species, breed and sex names for these animals, fetching only ids not yet known."""
        for resource in ("species", "breed", "sex"):
            known = self._names[resource]
            wanted = {_text(a.get(f"{resource}_id")) for a in animals} - set(known) - {"", "0"}
            for record in self.client.iter_by_ids(resource, "id", wanted):
                known[_text(record.get("id"))] = _text(record.get("name"))

    def _client(
        self,
        contact: Mapping[str, Any],
        addresses: Mapping[str, Mapping[str, Any]],
        details: list[dict[str, Any]],
        patients: list[PimsPatient],
    ) -> PimsClient:
        contact_id = _text(contact.get("id"))
        if not contact_id:
            raise ValueError("contact has no id")
        first, last = _text(contact.get("first_name")), _text(contact.get("last_name"))
        business = _text(contact.get("business_name"))
        if not first and not last:
            if not business:
                raise ValueError("contact has no first name, last name or business name")
            last = business  # a kennel or farm is its own client
        stamps = [self._see(contact)]
        address = PimsAddress()
        for key in ("address_physical", "address_postal"):
            record = addresses.get(_text(contact.get(key)))
            if record is None:
                continue
            candidate = _address(record)
            if not candidate.is_empty():
                address = candidate
                stamps.append(self._see(record))
                break
        email = phone = ""
        ranked = sorted(
            details,
            key=lambda d: (not _flag(d.get("preferred")), _id_order(_text(d.get("id")))),
        )
        for detail in ranked:
            kind = (
                self._detail_types.get(_text(detail.get("contact_detail_type_id")))
                or _text(detail.get("name"))
            ).lower()
            value = _text(detail.get("value"))
            if not value:
                continue
            stamps.append(self._see(detail))
            if "email" in kind and not email:
                email = value
        for wanted in ("mobile", "phone", "home", "work", "after hours"):
            for detail in ranked:
                kind = (
                    self._detail_types.get(_text(detail.get("contact_detail_type_id")))
                    or _text(detail.get("name"))
                ).lower()
                if wanted in kind and "fax" not in kind and _text(detail.get("value")):
                    phone = _text(detail.get("value"))
                    break
            if phone:
                break
        known = [s for s in stamps if s is not None]
        return PimsClient(
            pims_id=contact_id,
            first_name=first,
            last_name=last,
            email=email,
            phone=phone,
            address=address,
            active=_flag(contact.get("active"), default=True),
            modified_at=max(known) if known else None,
            patients=tuple(patients),
        )

    def _patient(self, animal: Mapping[str, Any]) -> PimsPatient:
        animal_id = _text(animal.get("id"))
        if not animal_id:
            raise ValueError("animal has no id")
        name = _text(animal.get("name"))
        if not name:
            raise ValueError(f"animal {animal_id} has no name")
        zone = self.client.zone
        weight, unit = _weight(animal.get("weight"), animal.get("weight_unit"))
        names = self._names
        return PimsPatient(
            pims_id=animal_id,
            name=name,
            species=names["species"].get(_text(animal.get("species_id")), ""),
            breed=names["breed"].get(_text(animal.get("breed_id")), ""),
            sex=names["sex"].get(_text(animal.get("sex_id")), ""),
            birth_date=_date(animal.get("date_of_birth"), zone, "date_of_birth"),
            weight=weight,
            weight_unit=unit,
            deceased=_flag(animal.get("is_dead")),
            deceased_on=_date(animal.get("date_of_death"), zone, "date_of_death"),
            microchip=_text(animal.get("microchip_number")),
            active=_flag(animal.get("active"), default=True),
            modified_at=self._see(animal),
        )


# -- wire format ----------------------------------------------------------------------------


def _text(value: object) -> str:
    """Any v1 scalar as the string ezyVet means (v1 sends strings; be lenient with others)."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value).strip()


def _flag(value: object, *, default: bool = False) -> bool:
    text = _text(value).lower()
    if text in {"1", "true", "yes"}:
        return True
    if text in {"0", "false", "no"}:
        return False
    return default


def _id_order(value: str) -> tuple[int, str]:
    return (int(value), "") if value.isdigit() else (1 << 62, value)


def _epoch_text(value: object) -> str:
    text = _text(value)
    try:
        return str(int(float(text)))
    except ValueError:
        return text


def _epoch_datetime(value: object) -> dt.datetime | None:
    text = _text(value)
    if not text or text == "0":
        return None
    try:
        return dt.datetime.fromtimestamp(int(float(text)), dt.UTC)
    except (ValueError, OverflowError, OSError):
        return None


def _date(value: object, zone: dt.tzinfo, name: str) -> dt.date | None:
    """A v1 date: epoch seconds (local midnight at the site) or ``YYYY-MM-DD``; "" is none."""
    text = _text(value)
    if not text or text in {"0", "0000-00-00"}:
        return None
    if text.lstrip("-").isdigit():
        try:
            return dt.datetime.fromtimestamp(int(text), zone).date()
        except (OverflowError, OSError, ValueError) as exc:
            raise ValueError(f"{name} {text!r} is not a date") from exc
    try:
        return dt.date.fromisoformat(text[:10])
    except ValueError as exc:
        raise ValueError(f"{name} {text!r} is not a date") from exc


_UNITS = {
    "kg": (WeightUnit.KG, Decimal(1)),
    "kgs": (WeightUnit.KG, Decimal(1)),
    "kilograms": (WeightUnit.KG, Decimal(1)),
    "g": (WeightUnit.KG, Decimal("0.001")),
    "grams": (WeightUnit.KG, Decimal("0.001")),
    "lb": (WeightUnit.LB, Decimal(1)),
    "lbs": (WeightUnit.LB, Decimal(1)),
    "pounds": (WeightUnit.LB, Decimal(1)),
    "oz": (WeightUnit.LB, Decimal(1) / Decimal(16)),
}


def _weight(value: object, unit: object) -> tuple[Decimal | None, WeightUnit]:
    """Weight and unit; grams and ounces become kg and lb. "" or 0 means not weighed."""
    unit_text = _text(unit).lower() or "kg"  # ezyVet's default unit
    if unit_text not in _UNITS:
        raise ValueError(f"weight unit {_text(unit)!r} is not one VetSync knows")
    target, factor = _UNITS[unit_text]
    text = _text(value)
    if not text:
        return None, target
    try:
        weight = Decimal(text)
    except InvalidOperation as exc:
        raise ValueError(f"weight {text!r} is not a number") from exc
    if not weight.is_finite() or weight < 0:
        raise ValueError(f"weight {text!r} is not a weight")
    if weight == 0:
        return None, target
    return (weight * factor).normalize() if factor != 1 else weight, target


def _address_of(record: Mapping[str, Any] | None) -> PimsAddress:
    return PimsAddress() if record is None else _address(record)


def _address(record: Mapping[str, Any]) -> PimsAddress:
    street_2 = _text(record.get("street_2"))
    suburb, city = _text(record.get("suburb")), _text(record.get("city"))
    if suburb and city and suburb != city:
        # Where suburbs are used (NZ, AU), the suburb belongs on the address, under the street.
        street_2 = ", ".join(p for p in (street_2, suburb) if p)
    return PimsAddress(
        line1=_text(record.get("street_1")),
        line2=street_2,
        city=city or suburb,
        state=_text(record.get("state")) or _text(record.get("region")),
        postcode=_text(record.get("post_code")),
        # country_id is an id into ezyVet's own country table, which no scope here reads.
        country="",
    )


def _unwrap(item: object, resource: str) -> dict[str, Any]:
    """``{"contact": {...}}`` -> ``{...}``."""
    if isinstance(item, dict):
        inner = item.get(resource)
        if isinstance(inner, dict):
            return inner
        if len(item) == 1:
            (only,) = item.values()
            if isinstance(only, dict):
                return only
    raise EzyVetProtocolError(f"v1/{resource} sent an item that is not {{{resource!r}: {{…}}}}.")


def _single(body: Mapping[str, Any], resource: str) -> dict[str, Any]:
    items = body.get("items") or []
    if not items:
        raise EzyVetProtocolError(f"v1/{resource} answered without the record.")
    return _unwrap(items[0], resource)


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
