"""workers.redact: what is kept and what is masked, in logs, dead letters and output."""

from __future__ import annotations

import string

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from workers.redact import mask_password, register_secrets, scrub

TOKEN_CHARS = string.ascii_letters + string.digits + "-._~+/"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            'HTTP Request: POST https://hooks.slack.com/services/T1/B2/xyz "HTTP/1.1 200 OK"',
            'HTTP Request: POST https://hooks.slack.com/*** "HTTP/1.1 200 OK"',
        ),
        ("http://user:pw@vendor.example:8443/v1?key=1", "http://vendor.example:8443/***"),
        ("https://vendor.example", "https://vendor.example"),
        ("postgresql://app:s3cret@db:5432/app", "postgresql://db:5432/app"),
        ("postgresql://app@db/app?password=s3cret", "postgresql://db/app?***"),
        ("Authorization: Bearer abcdefgh12345", "Authorization: ***"),
        ('{"authorization": "Bearer abcdefgh12345"}', '{"authorization": "***"}'),
        ("'Authorization': 'Basic dXNlcjpwYXNz'", "'Authorization': '***'"),
        ("sent Bearer abcdefgh12345 twice", "sent Bearer *** twice"),
        ("api_key=abc123&page=2", "api_key=***&page=2"),
        ('{"password": "hunter22"}', '{"password": "***"}'),
        # Ordinary prose stays as it is.
        ("token expired; the bearer of bad news", "token expired; the bearer of bad news"),
        ("VendorRejected: 401 unauthorized", "VendorRejected: 401 unauthorized"),
    ],
)
def test_scrub_keeps_scheme_and_host_and_masks_the_rest(text: str, expected: str) -> None:
    assert scrub(text) == expected


def test_registered_secrets_are_masked_wherever_they_appear() -> None:
    register_secrets(
        ["https://hooks.example/services/T9/B9/unit-secret-path", "sk-unit-abcdef", None]
    )
    assert scrub("echo of sk-unit-abcdef in a body") == "echo of *** in a body"
    # The webhook's secret part is masked even when echoed without its host.
    assert scrub("no_service for /services/T9/B9/unit-secret-path") == "no_service for ***"
    register_secrets(["abc"])  # too short to mask without masking ordinary words
    assert scrub("abc") == "abc"
    # A database URL's password is a secret; its database name is not.
    register_secrets(["postgresql://app:unit-db-pw@db:5432/unit_app_db"])
    assert (
        scrub("auth failed for unit-db-pw on /unit_app_db") == "auth failed for *** on /unit_app_db"
    )


@given(st.text(TOKEN_CHARS, min_size=8, max_size=64))
def test_a_bearer_token_never_survives(token: str) -> None:
    # A token that is itself a word of the surrounding text would be found in what survives.
    assume(all(token not in word for word in ("Authorization", "headers", "request failed")))
    for shape in (
        f"Authorization: Bearer {token}",
        f'{{"headers": {{"Authorization": "Bearer {token}"}}}}',
        f"request failed (Bearer {token})",
    ):
        assert token not in scrub(shape)


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("postgresql://app:s3cret@db:5432/app", "postgresql://app:***@db:5432/app"),
        (
            "postgresql://app@db/app?password=s3cret&sslmode=require",
            "postgresql://app@db/app?password=***&sslmode=require",
        ),
        ("postgresql://app@db/app", "postgresql://app@db/app"),
    ],
)
def test_mask_password_keeps_where_the_database_is(url: str, expected: str) -> None:
    assert mask_password(url) == expected
