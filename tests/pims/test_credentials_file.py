"""Reading the ``client_credentials.txt`` a clinic downloads from ezyVet."""

from __future__ import annotations

import pytest

from vetsync.pims.ezyvet import REQUIRED_SCOPES, parse_credentials_file


def test_colon_lines_as_ezyvet_writes_them() -> None:
    creds = parse_credentials_file(
        "Partner ID: vs-partner\n"
        "Client ID: abc123\n"
        "Client Secret: s3cr:et=value==\n"
        "Site UID: 9f1c-site\n"
        "Scope: read-contact,read-animal write-externalprescription\n"
    )

    assert creds.partner_id == "vs-partner"
    assert creds.client_id == "abc123"
    assert creds.client_secret == "s3cr:et=value=="
    assert creds.site_uid == "9f1c-site"
    assert creds.scopes == ("read-contact", "read-animal", "write-externalprescription")


def test_equals_lines_any_case_and_spacing_comments_and_crlf() -> None:
    text = (
        "\ufeff# downloaded from ezyVet\r\n"
        "PARTNER_ID = vs-partner\r\n"
        "  client_id=abc123  \r\n"
        "\r\n"
        "clientSecret='quoted-secret'\r\n"
        "site uid = site-1\r\n"
        "Grant Type = client_credentials\r\n"
    )

    creds = parse_credentials_file(text)

    assert (creds.partner_id, creds.client_id, creds.client_secret, creds.site_uid) == (
        "vs-partner",
        "abc123",
        "quoted-secret",
        "site-1",
    )
    assert creds.scopes == REQUIRED_SCOPES  # no scope line: ask for what VetSync needs


def test_label_on_its_own_line_with_the_value_below() -> None:
    creds = parse_credentials_file(
        "Partner ID\nvs-partner\nClient ID\nabc\nClient Secret\nxyz\nSite UID\nsite-9\n"
    )

    assert (creds.partner_id, creds.client_id, creds.client_secret, creds.site_uid) == (
        "vs-partner",
        "abc",
        "xyz",
        "site-9",
    )


def test_json_file() -> None:
    creds = parse_credentials_file(
        '{"partner_id": "p", "client_id": "c", "client_secret": "s", "site_uid": "u",'
        ' "scope": "read-contact read-animal"}'
    )

    assert creds.scopes == ("read-contact", "read-animal")


def test_the_secret_stays_out_of_repr() -> None:
    creds = parse_credentials_file("partner_id=p\nclient_id=c\nclient_secret=hunter2\nsite_uid=u")

    assert "hunter2" not in repr(creds)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "empty"),
        ("   \n\n", "empty"),
        ("Partner ID: p\nClient ID: c\n", "missing Client Secret and Site UID"),
        ("Client ID: c\nClient Secret: s\nSite UID: u\n", "missing Partner ID"),
        ("Partner ID: p\nClient ID: c\nClient Secret:\nSite UID: u\n", "missing Client Secret"),
        ("hello world", "missing Partner ID, Client ID, Client Secret and Site UID"),
        ("Partner ID: p\nPartner ID: q\n", "two different values for Partner ID"),
        ("{not json", "not valid JSON"),
        ("[1, 2]", "missing Partner ID"),
    ],
)
def test_bad_files_say_what_is_wrong(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_credentials_file(text)
