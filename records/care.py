"""Pet Owner Care: one lookup over every clinic, owner-requested changes, and their audit trail.

The lookup reads what the caller gives and picks the keys it can be: a phone number in any
format (matched on ``Client.phone_normalized``), an email, a postcode, a name (typo-tolerant:
pg_trgm similarity on PostgreSQL, a prefix-then-rapidfuzz fallback on SQLite), and whatever
the registered lookups recognise (order and prescription numbers, once the prescriptions app
registers them). Each result says why it matched. Every search and every client opened is
written to the audit log; ``care_log`` reads that log back for Pet Owner Care leads.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, cast

from django import forms
from django.db import connection, transaction
from django.db.models import F, Prefetch, Q, QuerySet, TextField
from django.db.models.functions import Cast, Greatest, Lower
from django.db.models.lookups import In
from django.http import HttpRequest
from django.utils import timezone
from rapidfuzz import fuzz

from clinics.audit import audit_log
from clinics.models import AuditEvent
from records.fields import HELD_CLIENT_FIELDS, client_held_values
from records.history import CARE_PREFIX
from records.matching import normalize_phone, normalize_text
from records.models import (
    CareLogEntry,
    Client,
    ManualUpdate,
    Patient,
    _prefix,
    changed_fields_error,
)

RESULT_LIMIT = 50
SEARCH_ACTION = f"{CARE_PREFIX}search"
OPENED_ACTION = f"{CARE_PREFIX}client_opened"
OWNER_CHANGE_ACTION = f"{CARE_PREFIX}owner_change"
CARE_ACTIONS = {
    SEARCH_ACTION: "Search",
    OPENED_ACTION: "Client opened",
    OWNER_CHANGE_ACTION: "Owner-requested change",
}
# The SQLite fallback scores this many prefix candidates in Python at most.
FALLBACK_CANDIDATES = 2000
FALLBACK_MIN_SCORE = 75.0

_PHONE = re.compile(r"^\+?[\d\s().\-/]+$")
_POSTCODE = re.compile(r"^(?=.*\d)[A-Za-z0-9\-]{3,10}$")


# --- lookups other apps register (order and prescription numbers) -------------------------


@dataclass(frozen=True)
class CareHit:
    """A client found by a registered lookup, and why (shown to the caller's agent)."""

    client_id: int
    reason: str


@dataclass(frozen=True)
class CareLookup:
    """A key Pet Owner Care can search by that records does not own (e.g. order number).

    ``find(query)`` returns the clients whose key matches the query as typed, with one
    indexed query at most; it returns nothing for queries that cannot be its key.
    """

    key: str
    label: str
    find: Callable[[str], Iterable[CareHit]]


_lookups: dict[str, CareLookup] = {}


def register_care_lookup(lookup: CareLookup) -> CareLookup:
    """Called from a higher app's ``AppConfig.ready`` (records never imports it)."""
    _lookups[lookup.key] = lookup
    return lookup


def unregister_care_lookup(key: str) -> None:
    _lookups.pop(key, None)


def care_lookups() -> list[CareLookup]:
    return list(_lookups.values())


# --- reading the query ---------------------------------------------------------------------


@dataclass
class CareQuery:
    """What the typed query can be: one of phone or email, or name words and postcodes."""

    text: str
    phones: list[str] = field(default_factory=list)
    email: str = ""
    postcodes: list[str] = field(default_factory=list)
    words: list[str] = field(default_factory=list)

    @property
    def keys(self) -> list[str]:
        keys = []
        if self.phones:
            keys.append("phone")
        if self.email:
            keys.append("email")
        if self.words:
            keys.append("name")
        if self.postcodes:
            keys.append("postcode")
        return keys


def parse_query(text: str) -> CareQuery:
    text = " ".join(text.split())[:200]
    query = CareQuery(text=text)
    if not text:
        return query
    digits = "".join(ch for ch in text if ch.isdigit())
    if _PHONE.match(text) and len(digits) >= 7:
        full = normalize_phone(text)
        query.phones = sorted({p for p in (full, digits, "+" + digits) if p})
        return query
    if "@" in text:
        query.email = text.replace(" ", "").lower()
        return query
    for token in text.split():
        if _POSTCODE.match(token):
            query.postcodes.append(token.upper())
        else:
            query.words.extend(w for w in normalize_text(token).split() if len(w) >= 2)
    return query


# --- the search ----------------------------------------------------------------------------


@dataclass
class CareResult:
    client: Client
    reasons: list[str]
    score: float = 0.0

    @property
    def pets(self) -> list[Patient]:
        return list(self.client.patients.all())


@dataclass
class CareSearch:
    query: CareQuery
    results: list[CareResult]
    more: bool = False  # more matched than are shown: the caller should narrow the search

    @property
    def count(self) -> int:
        return len(self.results)


# How many of the closest names a typed word stands for. A single typo leaves the real name
# among the closest few; more would bring back the thousands of cousins of a common surname.
CLOSE_NAMES = 2
# A close name much further from the word than the closest one is a different name ("thomas"
# for "thomddale", next to "thomdale"): it is dropped, with its thousands of clients.
CLOSE_NAME_SPREAD = 0.75
# A word of this length or more may be the start of a surname being typed ("whitf").
PREFIX_MIN = 4
PREFIX_NAMES = 20


@dataclass(frozen=True)
class NameTokens:
    """The dictionary's names a typed word stands for, with their similarity to it, and how
    many clients have them (which word of a query is the rarest)."""

    word: str
    similarity: dict[str, float]
    clients: int


def _close_name_tokens(word: str) -> NameTokens | None:
    """The dictionary's names closest to ``word`` and, for a longer word, the names it starts
    (PostgreSQL); with the word itself. None while the dictionary is empty."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT token, similarity(token, %s), clients FROM care_name_tokens "
            "WHERE token %% %s ORDER BY 2 DESC, token LIMIT %s",
            [word, word, CLOSE_NAMES],
        )
        close = cursor.fetchall()
        if close:
            floor = close[0][1] * CLOSE_NAME_SPREAD
            close = [row for row in close if row[1] >= floor]
        if len(word) >= PREFIX_MIN:
            cursor.execute(
                "SELECT token, similarity(token, %s), clients FROM care_name_tokens "
                "WHERE token LIKE %s ESCAPE '!' ORDER BY clients DESC, token LIMIT %s",
                [word, _like_prefix(word), PREFIX_NAMES],
            )
            close += cursor.fetchall()
        if not close:
            # Nothing like it: only the word as typed (a name newer than the dictionary), unless
            # the dictionary is still empty (a new site), where the slower search stands in.
            cursor.execute("SELECT EXISTS (SELECT 1 FROM care_name_tokens)")
            if not cursor.fetchone()[0]:
                return None
            return NameTokens(word=word, similarity={word: 1.0}, clients=0)
    counts = {token: count for token, _, count in close}
    similarity = {token: float(sim) for token, sim, _ in close}
    # The word as typed always counts: a name added since the last refresh is found exactly.
    similarity.setdefault(word, 1.0)
    return NameTokens(word=word, similarity=similarity, clients=sum(counts.values()))


def _like_prefix(word: str) -> str:
    return word.replace("!", "!!").replace("%", "!%").replace("_", "!_") + "%"


def _ranked_by_dictionary(
    base: QuerySet[Client], names: Sequence[NameTokens]
) -> list[tuple[int, float]]:
    """Clients whose first or last name is one of each word's names, best first.

    The candidates are the clients of the rarest word's names, taken first (a materialized
    CTE, so PostgreSQL does not start from the 16,000 namesakes of a first name); the other
    words filter them, and the rank adds up each word's best name similarity."""
    driver = min(names, key=lambda n: n.clients)
    tokens = list(driver.similarity)
    candidates = (
        base.filter(Q(In(Lower("first_name"), tokens)) | Q(In(Lower("last_name"), tokens)))
        .order_by()
        .values("id", "first_name", "last_name")
    )
    inner, inner_params = candidates.query.sql_with_params()
    rank = " + ".join(
        "GREATEST(COALESCE((%s::jsonb ->> lower(c.first_name))::float, 0), "
        "COALESCE((%s::jsonb ->> lower(c.last_name))::float, 0))"
        for _ in names
    )
    others = [name for name in names if name is not driver]
    where = " AND ".join(
        "(lower(c.first_name) = ANY(%s) OR lower(c.last_name) = ANY(%s))" for _ in others
    )
    # Only placeholders and fixed SQL are put together here; every value is a parameter.
    sql = (
        f"WITH c AS MATERIALIZED ({inner}) SELECT c.id, {rank} AS rank FROM c "  # noqa: S608
        f"WHERE {where or 'TRUE'} ORDER BY rank DESC, c.last_name, c.first_name, c.id LIMIT %s"
    )
    params: list[Any] = list(inner_params)
    for name in names:
        params += [json.dumps(name.similarity)] * 2
    for name in others:
        params += [list(name.similarity)] * 2
    with connection.cursor() as cursor:
        cursor.execute(sql, [*params, RESULT_LIMIT + 1])
        return [(pk, float(score) * 100 / len(names)) for pk, score in cursor.fetchall()]


def care_name_tokens_refresh() -> None:
    """Rebuild the name dictionary (PostgreSQL) without blocking searches meanwhile."""
    if connection.vendor != "postgresql":
        return
    with connection.cursor() as cursor:
        cursor.execute("REFRESH MATERIALIZED VIEW CONCURRENTLY care_name_tokens")


def _current() -> QuerySet[Client]:
    return Client.objects.filter(merged_into__isnull=True)


def _name_matches(words: Sequence[str], postcodes: Sequence[str]) -> list[tuple[int, float]]:
    """(client id, score) of clients whose names are close to every word, best first."""
    base = _current()
    if postcodes:
        base = base.filter(_any_postcode(postcodes))
    if connection.vendor == "postgresql":
        from django.contrib.postgres.lookups import TrigramSimilar
        from django.contrib.postgres.search import TrigramSimilarity

        known = [_close_name_tokens(word) for word in words]
        if all(name is not None for name in known):
            return _ranked_by_dictionary(base, cast(list[NameTokens], known))
        # A word the dictionary knows nothing like (or a new site before its first refresh):
        # search the clients' names by trigram directly.
        rank: Any = None
        for word in words:
            first, last = Lower("first_name"), Lower("last_name")
            close = Q(TrigramSimilar(first, word)) | Q(TrigramSimilar(last, word))
            if len(word) >= PREFIX_MIN:  # a surname being typed: "whitf" is far from "whitfield"
                close |= _prefix(last, word)
            base = base.filter(close)
            best = Greatest(TrigramSimilarity(first, word), TrigramSimilarity(last, word))
            rank = best if rank is None else rank + best
        rows = base.annotate(rank=rank).order_by("-rank", "last_name", "first_name", "id")
        return [
            (pk, float(score) * 100 / len(words))
            for pk, score in rows.values_list("pk", "rank")[: RESULT_LIMIT + 1]
        ]
    # SQLite: candidates whose first or last name starts like each word (a typo is seldom in
    # the first two letters), scored in Python.
    for word in words:
        head = word[:2]
        base = base.filter(_prefix(Lower("first_name"), head) | _prefix(Lower("last_name"), head))
    candidates = base.values_list("pk", "first_name", "last_name")[:FALLBACK_CANDIDATES]
    scored = []
    for pk, first_name, last_name in candidates:
        names = normalize_text(f"{first_name} {last_name}").split()
        score = sum(_word_score(word, names) for word in words) / len(words)
        if score >= FALLBACK_MIN_SCORE:
            scored.append((pk, score))
    scored.sort(key=lambda row: -row[1])
    return scored[: RESULT_LIMIT + 1]


def _word_score(word: str, names: Sequence[str]) -> float:
    """How well one typed word matches the best of the client's names, 0 to 100."""
    best = 0.0
    for name in names:
        if name.startswith(word):
            return 100.0
        best = max(best, float(fuzz.ratio(word, name)))
    return best


def _any_postcode(postcodes: Sequence[str]) -> Q:
    condition = Q()
    for code in postcodes:
        condition |= _prefix(F("postcode"), code)
    return condition


def clients_find(text: str) -> CareSearch:
    """Clients of every clinic matching what the caller gave, each with why it matched."""
    query = parse_query(text)
    found: dict[int, list[str]] = {}
    scores: dict[int, float] = {}
    more = False
    order: list[int] = []

    def add(ids: Iterable[int], reason: str, score: float = 100.0) -> None:
        for pk in ids:
            if pk not in found:
                found[pk] = []
                order.append(pk)
            if reason not in found[pk]:
                found[pk].append(reason)
            scores[pk] = max(scores.get(pk, 0.0), score)

    if query.phones:
        ids = list(
            _current()
            .filter(phone_normalized__in=query.phones)
            .order_by("last_name", "first_name", "id")
            .values_list("pk", flat=True)[: RESULT_LIMIT + 1]
        )
        add(ids, "phone")
    elif query.email:
        ids = list(
            _current()
            .filter(_prefix(Lower("email"), query.email))
            .order_by("last_name", "first_name", "id")
            .values_list("pk", flat=True)[: RESULT_LIMIT + 1]
        )
        add(ids, "email")
    elif query.words:
        for pk, score in _name_matches(query.words, query.postcodes):
            add([pk], "name", score)
            if query.postcodes:
                add([pk], "postcode")
    elif query.postcodes:
        ids = list(
            _current()
            .filter(_any_postcode(query.postcodes))
            .order_by("last_name", "first_name", "id")
            .values_list("pk", flat=True)[: RESULT_LIMIT + 1]
        )
        add(ids, "postcode")
    if len(order) > RESULT_LIMIT:
        more = True
        order = order[:RESULT_LIMIT]
    extra: dict[int, list[str]] = {}
    for lookup in care_lookups():
        for hit in lookup.find(query.text):
            extra.setdefault(hit.client_id, []).append(hit.reason)
    # A registered key (an order number) is exact: those results come first.
    ordered = [pk for pk in extra if pk not in found] + order
    clients = {
        c.pk: c
        for c in Client.objects.filter(pk__in=ordered, merged_into__isnull=True)
        .select_related("clinic")
        .prefetch_related(
            Prefetch(
                "patients",
                queryset=Patient.objects.only(
                    "id", "client_id", "name", "species", "is_deceased"
                ).order_by("name", "id"),
            )
        )
    }
    results = []
    for pk in ordered:
        client = clients.get(pk)
        if client is None:
            continue
        reasons = [*extra.get(pk, [])]
        reasons += [_explain(key, client, query, scores.get(pk, 0.0)) for key in found.get(pk, [])]
        results.append(CareResult(client=client, reasons=reasons, score=scores.get(pk, 100.0)))
    return CareSearch(query=query, results=results, more=more)


def _explain(key: str, client: Client, query: CareQuery, score: float) -> str:
    if key == "phone":
        return f"Phone {client.phone} is the number given"
    if key == "email":
        if client.email.lower() == query.email:
            return f"Email {client.email} is the address given"
        return f"Email {client.email} starts with “{query.email}”"
    if key == "postcode":
        return f"Postcode {client.postcode}"
    typed = " ".join(query.words)
    names = normalize_text(client.full_name).split()
    if all(any(n == w for n in names) for w in query.words):
        return f"Name {client.full_name} matches “{typed}”"
    if all(any(n.startswith(w) for n in names) for w in query.words):
        return f"Name {client.full_name} starts like “{typed}”"
    return f"Name {client.full_name} is close to “{typed}” (spelling differs, {score:.0f}% alike)"


def clients_find_logged(*, text: str, request: HttpRequest) -> CareSearch:
    """Run a search and log it: the query, who, when, how many results."""
    search = clients_find(text)
    after: dict[str, Any] = {"query": search.query.text, "results": search.count}
    if search.more:
        after["more"] = True
    audit_log(action=SEARCH_ACTION, request=request, after=after)
    return search


def care_client_opened(*, client: Client, request: HttpRequest) -> AuditEvent:
    """Log that Pet Owner Care opened a client's record (shown on the clinic's timeline)."""
    return audit_log(action=OPENED_ACTION, request=request, obj=client)


def client_pending_updates(client: Client) -> list[ManualUpdate]:
    return list(
        ManualUpdate.objects.pending()
        .filter(Q(client=client) | Q(candidate=client))
        .select_related("patient", "client", "candidate")
        .order_by("created_at", "id")
    )


# --- owner-requested changes ---------------------------------------------------------------

OWNER_FIELDS = (
    "first_name",
    "last_name",
    "address_line1",
    "address_line2",
    "city",
    "state",
    "postcode",
    "email",
    "phone",
)


class OwnerChangeForm(forms.Form):
    """The pharmacy's copy as the owner wants it; the verification note is required."""

    first_name = forms.CharField(label="First name (shipping)", max_length=100, required=False)
    last_name = forms.CharField(label="Last name (shipping)", max_length=100, required=False)
    address_line1 = forms.CharField(label="Address line 1", max_length=200, required=False)
    address_line2 = forms.CharField(label="Address line 2", max_length=200, required=False)
    city = forms.CharField(max_length=100, required=False)
    state = forms.CharField(max_length=50, required=False)
    postcode = forms.CharField(max_length=20, required=False)
    email = forms.EmailField(max_length=254, required=False)
    phone = forms.CharField(max_length=40, required=False)
    verification = forms.CharField(
        label="How the caller was verified",
        max_length=300,
        help_text="e.g. “Confirmed pet's name, date of birth and postcode”. Kept on the record.",
        error_messages={"required": "Note how you verified the caller before changing a record."},
    )

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if not (data.get("first_name") or "").strip() and not (data.get("last_name") or "").strip():
            self.add_error("last_name", "A shipping name needs a first or a last name.")
        return data


class OwnerChangeError(Exception):
    """Nothing to change, or the values do not fit; the message is for the agent."""


def owner_change_initial(client: Client) -> dict[str, str]:
    return {name: getattr(client, name) for name in OWNER_FIELDS}


def client_owner_change(
    *,
    client: Client,
    actor: Any,
    values: dict[str, str],
    verification: str,
    request: HttpRequest | None = None,
) -> dict[str, tuple[str, str]]:
    """Apply a change the pet owner asked for to the pharmacy's copy (never the PIMS).

    Returns {field: (before, after)}. Logged as ``care.owner_change`` on the client, which the
    clinic sees on the client's timeline; held PIMS changes now compare with the new values.
    """
    verification = " ".join(verification.split())
    if not verification:
        raise OwnerChangeError("Note how you verified the caller before changing a record.")
    with transaction.atomic():
        locked = Client.objects.select_for_update().get(pk=client.pk)
        wanted = {
            name: " ".join(str(values[name]).split())
            for name in OWNER_FIELDS
            if name in values and values[name] is not None
        }
        if "email" in wanted:
            wanted["email"] = wanted["email"].lower()
        changed = {name: v for name, v in wanted.items() if getattr(locked, name) != v}
        if not changed:
            raise OwnerChangeError("Nothing changed: the record already has these values.")
        before = {name: getattr(locked, name) for name in changed}
        for name, value in changed.items():
            setattr(locked, name, value)
        error = changed_fields_error(locked, changed)
        if error:
            raise OwnerChangeError(error)
        locked.save(update_fields=[*changed, "updated_at"])
        _refresh_held_changes(locked, changed)
        audit_log(
            action=OWNER_CHANGE_ACTION,
            actor=actor,
            request=request,
            obj=locked,
            before=before,
            # "reason" is the timeline's note line; the verification is what the clinic reads.
            after={**changed, "reason": f"Caller verified: {verification}"},
        )
    client.refresh_from_db()
    return {name: (before[name], changed[name]) for name in changed}


def _refresh_held_changes(client: Client, changed: dict[str, str]) -> None:
    """A held PIMS name or address now compares with the owner's new shipping value."""
    now = timezone.now()
    for update in ManualUpdate.objects.pending().filter(
        client=client,
        kind__in=list(HELD_CLIENT_FIELDS),
        patient__isnull=True,
        candidate__isnull=True,
    ):
        if not any(attr in changed for attr in HELD_CLIENT_FIELDS[update.kind].values()):
            continue
        update.current = client_held_values(client, update.kind)
        update.updated_at = now
        update.save(update_fields=["current", "updated_at"])


# --- the care log, for leads ---------------------------------------------------------------


@dataclass
class CareLogFilters:
    who: str = ""
    action: str = ""
    since: dt.date | None = None
    until: dt.date | None = None
    text: str = ""


class CareLogFilterForm(forms.Form):
    who = forms.CharField(label="Who", required=False, max_length=150)
    action = forms.ChoiceField(
        label="Action", required=False, choices=[("", "Any"), *CARE_ACTIONS.items()]
    )
    since = forms.DateField(
        label="From", required=False, widget=forms.DateInput(attrs={"type": "date"})
    )
    until = forms.DateField(
        label="To", required=False, widget=forms.DateInput(attrs={"type": "date"})
    )
    text = forms.CharField(label="Text", required=False, max_length=200)

    def filters(self) -> CareLogFilters:
        if not self.is_valid():
            return CareLogFilters()
        data = self.cleaned_data
        return CareLogFilters(
            who=data["who"].strip(),
            action=data["action"],
            since=data["since"],
            until=data["until"],
            text=data["text"].strip(),
        )


def care_log(filters: CareLogFilters) -> QuerySet[CareLogEntry]:
    """Pet Owner Care's audit events, newest first, narrowed by the lead's filters."""
    events = CareLogEntry.objects.filter(action__startswith=CARE_PREFIX).select_related(
        "clinic", "actor"
    )
    if filters.action:
        events = events.filter(action=filters.action)
    if filters.who:
        events = events.filter(actor_label__iexact=filters.who)
    tz = timezone.get_current_timezone()
    if filters.since:
        start = dt.datetime.combine(filters.since, dt.time.min, tzinfo=tz)
        events = events.filter(created_at__gte=start)
    if filters.until:
        end = dt.datetime.combine(filters.until + dt.timedelta(days=1), dt.time.min, tzinfo=tz)
        events = events.filter(created_at__lt=end)
    if filters.text:
        events = events.annotate(after_text=Cast("after", TextField())).filter(
            Q(object_repr__icontains=filters.text) | Q(after_text__icontains=filters.text)
        )
    return events.order_by("-created_at", "-id")
