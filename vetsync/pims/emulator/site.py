"""One emulated ezyVet site: auth, lists, external prescriptions, rate limits and faults.

HTTP-agnostic: ``EzyVetSite.handle`` takes a parsed request and returns a ``Reply`` with the
body already serialised, so every read of shared state happens under one lock and the HTTP
layer only writes bytes. The control methods (``mutate``, ``inject_fault``, ``state``, …) are
what ``/_emulator/*`` exposes, callable directly from in-process tests.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import random
import secrets
import threading
import time
import uuid
from collections import Counter, deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from vetsync.pims.emulator.auth import (
    MISSING_PARAMETER,
    EmulatorCredentials,
    Token,
    _requested_scopes,
)
from vetsync.pims.emulator.data import DataGenerator, Record, SiteData, site_zone
from vetsync.pims.emulator.edits import ClinicEdits
from vetsync.pims.emulator.errors import ApiError
from vetsync.pims.emulator.faults import FAULT_KINDS, Fault, _due_fault, _fault_reply
from vetsync.pims.emulator.prescriptions import PrescriptionBook
from vetsync.pims.emulator.query import (
    QueryError,
    narrow,
    parse_conditions,
    parse_paging,
    select,
)
from vetsync.pims.emulator.reply import Reply, _error_reply, _json
from vetsync.pims.emulator.schema import ALL_SCOPES, COMMON_FIELDS, FIELDS, LIST_FIELDS, SCOPE_FOR

__all__ = ["ALL_SCOPES", "EmulatorCredentials", "EzyVetSite", "Reply"]


class SlidingWindow:
    """At most ``limit`` requests in any ``window`` seconds: the strictest reading of "N/min"."""

    def __init__(self, limit: int, window: float) -> None:
        self.limit = limit
        self.window = window
        self.stamps: deque[float] = deque()

    def wait(self, now: float) -> float:
        """Seconds until one more request fits (0 when it fits now)."""
        while self.stamps and self.stamps[0] <= now - self.window:
            self.stamps.popleft()
        if self.limit <= 0 or len(self.stamps) < self.limit:
            return 0.0
        return self.stamps[len(self.stamps) - self.limit] + self.window - now


@dataclass(slots=True)
class SiteContent:
    """A site's data and what changes it: the heavy part, which a fleet keeps compressed
    while the site is idle."""

    data: SiteData
    generator: DataGenerator
    edits: ClinicEdits
    book: PrescriptionBook


class EzyVetSite:
    """The whole site's state behind one lock, with ezyVet's behaviour and the test controls."""

    def __init__(
        self,
        *,
        clients: int = 500,
        seed: int = 1,
        rate_per_minute: int = 180,
        endpoint_rate_per_minute: int = 60,
        window_seconds: float = 60.0,
        token_lifetime: int = 43200,
        credentials: EmulatorCredentials | None = None,
        scopes: tuple[str, ...] = ALL_SCOPES,
        timezone: str = "America/Chicago",
        consults_per_animal: tuple[int, int] = (0, 3),
        clock: Callable[[], float] = time.time,
        log_size: int = 50_000,
    ) -> None:
        self.lock = threading.RLock()
        self.log_size = log_size
        self.clients = clients
        self.seed = seed
        self.rate_per_minute = rate_per_minute
        self.endpoint_rate_per_minute = endpoint_rate_per_minute
        self.window_seconds = window_seconds
        self.token_lifetime = token_lifetime
        self.credentials = credentials or EmulatorCredentials()
        self.scopes = tuple(scopes)
        self.zone = site_zone(timezone)
        self.consults_per_animal = consults_per_animal
        self.clock = clock
        self.reset()

    # -- control -------------------------------------------------------------------------

    def reset(self) -> None:
        """Back to the freshly seeded site: data, prescriptions, tokens, faults, counters."""
        with self.lock:
            self._reset_state()
            self._content: SiteContent | None = self._generate()

    def _reset_state(self) -> None:
        """Everything but the data: tokens, faults, counters, rate windows."""
        self.tokens: dict[str, Token] = {}
        self.current_token: dict[tuple[str, str, str], str] = {}
        self.tokens_issued = 0
        self.faults: list[Fault] = []
        self.request_counts: Counter[str] = Counter()
        self.status_counts: Counter[str] = Counter()
        self.log: deque[dict[str, object]] = deque(maxlen=self.log_size)
        self.windows: dict[tuple[str, ...], SlidingWindow] = {}

    def _generate(self) -> SiteContent:
        """The site's data as its seed makes it, as of now."""
        data = SiteData()
        rng = random.Random(self.seed)
        generator = DataGenerator(data, rng, self.zone)
        now = dt.datetime.fromtimestamp(self.clock(), dt.UTC)
        generator.build(self.clients, now)
        low, high = self.consults_per_animal
        generator.consults(now, lambda: rng.randint(low, high))
        # Mutations draw from their own stream so that they do not depend on how much
        # randomness building the site consumed.
        mutation_rng = random.Random(self.seed * 7919 + 1)
        generator.rng = mutation_rng
        return self._content_of(data, generator)

    def _content_of(self, data: SiteData, generator: DataGenerator) -> SiteContent:
        edits = ClinicEdits(data, generator, generator.rng, self.clock, self.zone)
        return SiteContent(data, generator, edits, PrescriptionBook(data))

    def _loaded(self) -> SiteContent:
        """The site's data (a fleet's site may have to generate or decompress it first)."""
        assert self._content is not None
        return self._content

    @property
    def data(self) -> SiteData:
        return self._loaded().data

    @property
    def generator(self) -> DataGenerator:
        return self._loaded().generator

    @property
    def edits(self) -> ClinicEdits:
        return self._loaded().edits

    @property
    def book(self) -> PrescriptionBook:
        return self._loaded().book

    def configure(
        self,
        *,
        token_lifetime: int | None = None,
        rate_per_minute: int | None = None,
        endpoint_rate_per_minute: int | None = None,
        window_seconds: float | None = None,
        scopes: tuple[str, ...] | list[str] | None = None,
    ) -> None:
        """Change limits, token lifetime or granted scopes; counting windows start afresh."""
        with self.lock:
            if token_lifetime is not None:
                self.token_lifetime = int(token_lifetime)
            if rate_per_minute is not None:
                self.rate_per_minute = int(rate_per_minute)
            if endpoint_rate_per_minute is not None:
                self.endpoint_rate_per_minute = int(endpoint_rate_per_minute)
            if window_seconds is not None:
                self.window_seconds = float(window_seconds)
            if scopes is not None:
                self.scopes = tuple(scopes)
            self.windows.clear()

    def expire_tokens(self) -> int:
        """Expire every issued token now (as if 12 h had passed); returns how many."""
        with self.lock:
            now = self.clock()
            for token in self.tokens.values():
                token.expires_at = min(token.expires_at, now - 1)
            return len(self.tokens)

    def inject_fault(
        self,
        kind: str,
        count: int = 1,
        *,
        endpoint: str | None = None,
        retry_after: int = 1,
        status: int = 500,
        seconds: float = 1.0,
        for_seconds: float | None = None,
    ) -> None:
        """Misbehave on the next ``count`` matching requests (or on every one for the next
        ``for_seconds``, e.g. a site down for half an hour).

        ``rate_limit`` answers 429 with ``Retry-After: retry_after``; ``server_error`` answers
        ``status``; ``delay`` answers after ``seconds``; ``drop`` closes the connection without
        an answer; ``lost_write`` applies an externalprescription POST/PATCH, then drops the
        connection. ``endpoint`` ("contact", "oauth", …) narrows it; by default every ``/v1``
        call but the token endpoint matches.
        """
        if kind not in FAULT_KINDS:
            raise ValueError(f"Unknown fault {kind!r}; use one of {', '.join(FAULT_KINDS)}.")
        if kind == "server_error" and not 500 <= status <= 599:
            raise ValueError("A server_error status must be 5xx.")
        with self.lock:
            self.faults.append(
                Fault(
                    kind,
                    int(count),
                    endpoint=endpoint,
                    retry_after=int(retry_after),
                    status=int(status),
                    seconds=float(seconds),
                    until=None if for_seconds is None else self.clock() + float(for_seconds),
                )
            )

    def clear_faults(self) -> None:
        with self.lock:
            self.faults.clear()

    def state(self) -> dict[str, Any]:
        """What a test asserts on: writes received, products made, calls counted, tokens."""
        with self.lock:
            tables = self.data.tables
            return json.loads(
                _json(
                    {
                        "externalprescriptions": list(
                            tables.get("externalprescription", {}).values()
                        ),
                        "product_groups": list(tables.get("productgroup", {}).values()),
                        "products": list(tables.get("product", {}).values()),
                        "request_counts": dict(self.request_counts),
                        "status_counts": dict(self.status_counts),
                        "requests_total": sum(self.request_counts.values()),
                        "tokens_issued": self.tokens_issued,
                        "tokens_active": len(self.tokens),
                        "records": {name: len(tables[name]) for name in FIELDS if name in tables},
                        "faults": [f.as_dict() for f in self.faults if f.active(self.clock())],
                        "config": {
                            "rate_per_minute": self.rate_per_minute,
                            "endpoint_rate_per_minute": self.endpoint_rate_per_minute,
                            "window_seconds": self.window_seconds,
                            "token_lifetime": self.token_lifetime,
                            "scopes": list(self.scopes),
                        },
                    }
                )
            )

    def request_log(self) -> list[dict[str, object]]:
        """Every ``/v1`` request seen: ``t`` (epoch float), method, path, endpoint, status."""
        with self.lock:
            return [dict(entry) for entry in self.log]

    def reset_counters(self) -> None:
        with self.lock:
            self.request_counts.clear()
            self.status_counts.clear()
            self.log.clear()

    def record(self, resource: str, record_id: str) -> dict[str, Any]:
        """A copy of one stored record, for assertions."""
        with self.lock:
            return json.loads(_json(self.data.tables[resource][str(record_id)]))

    def records(self, resource: str) -> list[dict[str, Any]]:
        """Copies of every stored record of a resource, in id order."""
        with self.lock:
            return json.loads(_json(list(self.data.tables.get(resource, {}).values())))

    def customer_ids(self) -> list[str]:
        with self.lock:
            return self.edits.customer_ids()

    def update_record(
        self, resource: str, record_id: str, fields: Mapping[str, object]
    ) -> dict[str, Any]:
        """Set fields on one record and bump its ``modified_at``, as an edit in ezyVet does."""
        with self.lock:
            return self.edits.update_record(resource, record_id, fields)

    def add_clients(self, count: int) -> list[str]:
        """New pet owners (with address, details and pets) created now; their contact ids."""
        with self.lock:
            return self.edits.add_clients(count)

    def add_animal(self, contact_id: str, **fields: object) -> dict[str, Any]:
        """A new pet for an existing contact, created now; ``fields`` override generated ones."""
        with self.lock:
            return self.edits.add_animal(contact_id, **fields)

    def mutate_random(self, count: int) -> list[dict[str, str]]:
        """``count`` plausible edits a clinic makes in a day; each bumps ``modified_at``."""
        with self.lock:
            return self.edits.mutate_random(count)

    def mutate(self, spec: Mapping[str, Any]) -> dict[str, Any]:
        """The ``/_emulator/mutate`` body: ``count``, or ``resource``+``id``+``fields``,
        and/or ``add_clients``, ``add_animals`` (+ optional ``contact_id``)."""
        with self.lock:
            return self.edits.mutate(spec)

    # -- requests ------------------------------------------------------------------------

    def handle(
        self,
        method: str,
        path: str,
        query: Mapping[str, str],
        headers: Mapping[str, str],
        body: bytes,
    ) -> Reply:
        """Answer one HTTP request (``path`` without the query string)."""
        if path.startswith("/_emulator/"):
            return self._control(method, path.removeprefix("/_emulator/").strip("/"), body)
        parts = [p for p in path.split("/") if p]
        if len(parts) < 2 or parts[0] != "v1":
            return _error_reply(
                ApiError(404, f"No such endpoint: {path}", kind="NotFoundException")
            )
        endpoint = "oauth" if parts[1] == "oauth" else parts[1]
        with self.lock:
            fault = _due_fault(self.faults, method, endpoint, self.clock())
            if fault is not None and fault.kind not in {"delay", "lost_write"}:
                fault.spend()
                reply = _fault_reply(fault)
            else:
                try:
                    reply = self._answer(method, parts, dict(query), headers, body)
                except ApiError as error:
                    reply = _error_reply(error)
                if fault is not None and fault.kind == "delay":
                    fault.spend()
                    reply.delay = fault.seconds  # the HTTP layer sleeps, outside the lock
                elif fault is not None and reply.status == 200:
                    # lost_write: the write is stored, but its answer never arrives.
                    fault.spend()
                    reply = Reply(0, drop=True)
            self.request_counts[f"{method} {endpoint}"] += 1
            self.status_counts[str(reply.status or "dropped")] += 1
            self.log.append(
                {
                    "t": self.clock(),
                    "method": method,
                    "path": path,
                    "endpoint": endpoint,
                    "status": reply.status,
                }
            )
            return reply

    def _answer(
        self,
        method: str,
        parts: list[str],
        query: dict[str, str],
        headers: Mapping[str, str],
        body: bytes,
    ) -> Reply:
        resource = parts[1]
        if resource == "oauth":
            if parts[2:] != ["access_token"]:
                raise ApiError(404, "No such endpoint.", kind="NotFoundException")
            if method != "POST":
                raise ApiError(405, "Use POST for the access token.", kind="MethodNotAllowed")
            return self._issue_token(headers, body)
        if resource not in FIELDS:
            raise ApiError(404, f"No such endpoint: v1/{resource}", kind="NotFoundException")
        token = self._authenticate(headers)
        self._throttle(token, resource)
        scope = SCOPE_FOR[resource]
        if scope not in token.scopes:
            raise ApiError(
                403,
                f"The access token does not have the scope this call needs: {scope}.",
                kind="AccessDeniedException",
            )
        record_id = parts[2] if len(parts) > 2 else None
        if len(parts) > 3:
            raise ApiError(404, "No such endpoint.", kind="NotFoundException")
        now = int(self.clock())
        if method == "GET":
            if record_id is not None:
                query = {**query, "id": record_id}
            return self._list(resource, query, single=record_id is not None)
        if resource != "externalprescription":
            raise ApiError(405, f"v1/{resource} is read-only.", kind="MethodNotAllowed")
        payload = self._json_body(body)
        if method == "POST" and record_id is None:
            record = self.book.create(
                partner_id=token.owner[0],
                partner_name=self.credentials.partner_name,
                payload=payload,
                now=now,
            )
        elif method == "PATCH" and record_id is not None:
            record = self.book.update(prescription_id=record_id, payload=payload, now=now)
        else:
            raise ApiError(
                405,
                "Use POST v1/externalprescription or PATCH v1/externalprescription/{id}.",
                kind="MethodNotAllowed",
            )
        return Reply(200, _json(self._envelope(resource, [record], 1, 1, 1, 1)))

    @staticmethod
    def _json_body(body: bytes) -> object:
        try:
            return json.loads(body or b"null")
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise ApiError(400, "The request body is not valid JSON.") from exc

    def _issue_token(self, headers: Mapping[str, str], body: bytes) -> Reply:
        requested = _requested_scopes(headers, body, self.credentials)
        creds = self.credentials
        owner = (creds.partner_id, creds.client_id, creds.site_uid)
        previous = self.current_token.pop(owner, None)
        if previous is not None:
            # ezyVet keeps one live token per credentials: a new one expires the old.
            self.tokens.pop(previous, None)
        value = secrets.token_urlsafe(32)
        self.tokens[value] = Token(
            value,
            owner,
            frozenset(requested) & frozenset(self.scopes),
            self.clock() + self.token_lifetime,
        )
        self.current_token[owner] = value
        self.tokens_issued += 1
        return Reply(
            200,
            _json(
                {"access_token": value, "token_type": "Bearer", "expires_in": self.token_lifetime}
            ),
        )

    def _authenticate(self, headers: Mapping[str, str]) -> Token:
        scheme, _, value = headers.get("Authorization", "").strip().partition(" ")
        if scheme.lower() != "bearer" or not value.strip():
            raise ApiError(401, MISSING_PARAMETER.format("access token"), fields=())
        token = self.tokens.get(value.strip())
        if token is None:
            raise ApiError(401, "The access token provided is invalid.", fields=())
        if token.expires_at <= self.clock():
            raise ApiError(401, "The access token provided has expired.", fields=())
        return token

    def _throttle(self, token: Token, resource: str) -> None:
        partner, _, site = token.owner
        now = self.clock()
        site_window = self.windows.setdefault(
            (partner, site), SlidingWindow(self.rate_per_minute, self.window_seconds)
        )
        endpoint_window = self.windows.setdefault(
            (partner, site, resource),
            SlidingWindow(self.endpoint_rate_per_minute, self.window_seconds),
        )
        wait = max(site_window.wait(now), endpoint_window.wait(now))
        if wait > 0:
            raise ApiError(
                429,
                "Too many requests. Please wait before trying again.",
                kind="TooManyRequestsException",
                headers={"Retry-After": str(max(1, math.ceil(wait)))},
            )
        site_window.stamps.append(now)
        endpoint_window.stamps.append(now)

    def _list(self, resource: str, query: dict[str, str], *, single: bool) -> Reply:
        try:
            page, limit = parse_paging(query)
            filterable = [f for f in COMMON_FIELDS + FIELDS[resource] if f not in LIST_FIELDS]
            conditions = parse_conditions(query, filterable)
        except QueryError as error:
            raise ApiError(400, error.text, fields=(error.field,) if error.field else ()) from error
        candidates, conditions = narrow(self.data, resource, conditions)
        items, total = select(candidates, conditions, page, limit)
        if single and not items:
            raise ApiError(
                404, f"{resource} {query.get('id')} not found.", kind="NotFoundException"
            )
        pages = math.ceil(total / limit)
        return Reply(200, _json(self._envelope(resource, items, page, pages, limit, total)))

    def _envelope(
        self, resource: str, items: list[Record], page: int, pages: int, size: int, total: int
    ) -> dict[str, object]:
        return {
            "meta": {
                "timestamp": str(int(self.clock())),
                "items_page": str(page),
                "items_page_total": str(pages),
                "items_page_size": str(size),
                "items_total": str(total),
                "transaction_id": uuid.uuid4().hex,
            },
            "items": [{resource: item} for item in items],
            "messages": [],
        }

    def _control(self, method: str, action: str, body: bytes) -> Reply:
        try:
            spec = json.loads(body or b"{}")
            if not isinstance(spec, dict):
                raise ValueError("The body must be a JSON object.")
            result: object
            if method == "GET" and action == "state":
                result = self.state()
            elif method == "POST" and action == "mutate":
                result = self.mutate(spec)
            elif method == "POST" and action == "faults":
                if spec.get("clear"):
                    self.clear_faults()
                for fault in spec.get("faults") or ([spec] if spec.get("kind") else []):
                    self.inject_fault(
                        str(fault["kind"]),
                        int(fault.get("count", 1)),
                        endpoint=fault.get("endpoint"),
                        retry_after=int(fault.get("retry_after", 1)),
                        status=int(fault.get("status", 500)),
                        seconds=float(fault.get("seconds", 1.0)),
                        for_seconds=(
                            None
                            if fault.get("for_seconds") is None
                            else float(fault["for_seconds"])
                        ),
                    )
                result = {"faults": self.state()["faults"]}
            elif method == "POST" and action == "reset":
                self.reset()
                result = {"reset": True}
            elif method == "POST" and action == "expire-tokens":
                result = {"expired": self.expire_tokens()}
            elif method == "POST" and action == "config":
                self.configure(**spec)
                result = self.state()["config"]
            else:
                return Reply(404, _json({"error": f"No control endpoint {method} {action}."}))
        except (ValueError, KeyError, TypeError) as exc:
            return Reply(400, _json({"error": str(exc)}))
        return Reply(200, _json(result))


def _is_int(value: object) -> bool:
    try:
        int(str(value))
    except ValueError:
        return False
    return True
