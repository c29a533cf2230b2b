"""Property-based: whatever JSON body, query string or form values arrive, the agent API, the
list views and the account forms (login, password reset, the second factor) answer with a 2xx,
3xx or 4xx (JSON for agents), never a 500 (Hypothesis)."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote

import pytest
from django.test import Client as HttpClient
from django.urls import reverse
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from clinics.models import Connector
from clinics.services import integration_issue_agent_token
from tests.conftest import World, login
from tests.records.batches import batch, ingest, owner

PROPERTY_SETTINGS = settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**30), max_value=10**30)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=30)
)
json_values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4)
    ),
    max_leaves=25,
)
# Bodies an agent might send: a batch's shape with any values in it, or anything at all.
client_entries = st.fixed_dictionaries(
    {},
    optional={
        "pims_id": json_values,
        "first_name": json_values,
        "last_name": json_values,
        "email": json_values,
        "phone": json_values,
        "address": json_values,
        "active": json_values,
        "modified_at": json_values,
        "patients": st.lists(
            st.fixed_dictionaries(
                {},
                optional={
                    "pims_id": json_values,
                    "name": json_values,
                    "weight": json_values,
                    "weight_unit": json_values,
                    "birth_date": json_values,
                    "deceased": json_values,
                },
            ),
            max_size=3,
        ),
    },
)
batches = st.fixed_dictionaries(
    {"source": st.sampled_from(["syncvet", "ezyvet", ""]) | json_values},
    optional={
        "batch_id": st.text(max_size=20) | json_values,
        "full": json_values,
        "sent_at": json_values,
        "clients": st.lists(client_entries, max_size=4) | json_values,
    },
)
raw_texts = st.text(max_size=200) | st.sampled_from(["NaN", "[1e999]", '{"a": -Infinity}'])
# What a browser or agent can put in a URL (a lone surrogate cannot be encoded: its bytes come
# as percent escapes, in the raw query strings below).
url_text = st.text(st.characters(exclude_categories=("Cs",)), max_size=40)
# The last code point ends a prefix no character can follow (the client search's 500).
query_values = url_text | st.sampled_from(
    ["²", "9" * 5000, "-1", "%00", "\x00", "z\U0010ffff", "\U0010ffff" * 3, "\uffff"]
)
raw_queries = st.sampled_from(["after=%ED%A0%80", "after=%FF%FE", "after=1&after=2", "after"])


def agent(token: str) -> HttpClient:
    return HttpClient(HTTP_AUTHORIZATION=f"Bearer {token}", raise_request_exception=False)


def assert_no_500(response: Any, *, json_errors: bool) -> None:
    assert response.status_code < 500, response.content[:500]
    if json_errors and response.status_code >= 400:
        assert response["Content-Type"].startswith("application/json")
        assert response.json()["error"]


@pytest.fixture
def tokens(world: World) -> tuple[str, str]:
    feed = world.b.clinic.integration
    feed.connector = Connector.SYNCVET
    feed.save()
    return (
        integration_issue_agent_token(integration=world.a.clinic.integration),
        integration_issue_agent_token(integration=feed),
    )


@PROPERTY_SETTINGS
@given(body=batches)
def test_any_batch_shaped_body_is_answered_without_a_500(tokens, body: dict[str, Any]) -> None:
    text = json.dumps(body, allow_nan=False)
    response = agent(tokens[0]).post(
        "/api/agent/v1/batches", data=text, content_type="application/json"
    )
    assert_no_500(response, json_errors=True)


@PROPERTY_SETTINGS
@given(text=raw_texts)
def test_any_text_as_a_batch_or_an_ack_is_answered_without_a_500(tokens, text: str) -> None:
    data = text.encode("utf-8", "surrogatepass")
    for token, url in (
        (tokens[0], "/api/agent/v1/batches"),
        (tokens[1], "/api/agent/v1/writebacks/1/ack"),
    ):
        response = agent(token).post(url, data=data, content_type="application/json")
        assert_no_500(response, json_errors=True)


@PROPERTY_SETTINGS
@given(after=query_values, batch_id=query_values, raw=raw_queries)
def test_any_query_string_on_the_agent_api_is_answered_without_a_500(
    tokens, after: str, batch_id: str, raw: str
) -> None:
    feed = agent(tokens[1]).get("/api/agent/v1/writebacks", {"after": after})
    assert_no_500(feed, json_errors=True)
    raw_feed = agent(tokens[1]).get("/api/agent/v1/writebacks", QUERY_STRING=raw)
    assert_no_500(raw_feed, json_errors=True)
    status = agent(tokens[0]).get("/api/agent/v1/batches/" + batch_id.replace("/", "")[:200])
    assert_no_500(status, json_errors=True)


LIST_VIEWS = [
    ("records:client-list", ["q", "filter", "sort", "page"]),
    ("prescriptions:prescription-list", ["q", "state", "patient", "client", "page"]),
    ("prescriptions:order-list", ["q", "status", "patient", "client", "page"]),
    ("prescriptions:rx-request-list", ["q", "status", "page"]),
    ("prescriptions:writeback-monitor", ["q", "status", "kind", "page"]),
    ("records:run-list", ["page"]),
    ("records:update-queue", ["kind", "page"]),
    ("prescriptions:prescription-new", ["patient", "q"]),
    ("prescriptions:order-new", ["patient", "q"]),
]


@pytest.fixture
def staff(world: World) -> HttpClient:
    client = login(world.a.staff)
    client.raise_request_exception = False
    return client


@PROPERTY_SETTINGS
@given(values=st.lists(query_values, min_size=5, max_size=5))
def test_any_query_string_on_the_list_views_is_answered_without_a_500(
    staff: HttpClient, values: list[str]
) -> None:
    for name, params in LIST_VIEWS:
        query = dict(zip(params, values, strict=False))
        response = staff.get(reverse(name, args=["alder"]), query)
        assert_no_500(response, json_errors=False)


@PROPERTY_SETTINGS
@given(values=st.lists(query_values, min_size=3, max_size=3))
def test_any_search_of_a_runs_records_or_of_care_is_answered_without_a_500(
    world: World, staff: HttpClient, values: list[str]
) -> None:
    run = ingest(world.a.clinic, batch(owner()))
    q, outcome, page = values
    response = staff.get(run.get_absolute_url(), {"q": q, "outcome": outcome, "page": page})
    assert_no_500(response, json_errors=False)
    care = login(world.care)
    care.raise_request_exception = False
    assert_no_500(care.get(reverse("care:search"), {"q": q}), json_errors=False)


# --- the account forms: logging in, password resets, the second factor --------------------

form_values = st.lists(query_values, min_size=4, max_size=4)
# A reset link's two parts as a mail client might mangle them (any text, quoted into the path).
link_parts = st.text(st.characters(exclude_categories=("Cs",)), min_size=1, max_size=40)


TWO_FACTOR_FORMS = {
    "two-factor-verify": ("token", "next"),
    "two-factor-enrol": ("token",),
    "two-factor-reset": ("password", "token"),
    "account-email": ("email", "password", "token"),
    "two-factor-recovery-codes": ("password",),
}


@PROPERTY_SETTINGS
@given(values=form_values, uidb64=link_parts, token=link_parts)
def test_any_values_in_the_account_forms_are_answered_without_a_500(
    world: World, values: list[str], uidb64: str, token: str
) -> None:
    anonymous = HttpClient(raise_request_exception=False)
    posted = [
        (anonymous, reverse("login"), ("username", "password", "next")),
        (anonymous, reverse("password_reset"), ("email",)),
        (
            anonymous,
            reverse("password_reset_confirm", args=["u", "t"]).replace(
                "/u/t/", f"/{quote(uidb64, safe='')}/{quote(token, safe='')}/"
            ),
            ("new_password1", "new_password2"),
        ),
    ]
    staff = login(world.a.staff)
    staff.raise_request_exception = False
    posted.append(
        (staff, reverse("password_change"), ("old_password", "new_password1", "new_password2"))
    )
    posted += [(staff, reverse(name), fields) for name, fields in TWO_FACTOR_FORMS.items()]
    for client, url, fields in posted:
        response = client.post(url, dict(zip(fields, values, strict=False)))
        assert_no_500(response, json_errors=False)
        assert client.get(url).status_code < 500
