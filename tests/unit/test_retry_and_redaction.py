"""What the server paths share, without a server: redaction, the retry helper, URL checks.

The fault scenarios that need a (fake) server are in the conformance kit,
splare_connect.testing.fault_server, which each adapter's tests run with its own
server's answers.
"""

from __future__ import annotations

import base64
import time

import pytest

from splare_connect import BackendError
from splare_connect.backends.retrying import parse_retry_after, retry_call
from splare_connect.backends.urls import check_url
from splare_connect.redaction import redact, safe_message, secret_env_vars


def test_check_url_returns_good_urls_stripped() -> None:
    assert check_url(" https://db.example:6333/prefix ") == "https://db.example:6333/prefix"
    assert check_url("http://[::1]:9200") == "http://[::1]:9200"


# ------------------------------------------------------------------ redact() itself
@pytest.mark.parametrize(
    ("text", "secret", "kept"),
    [
        ("http://user:pw123@host:99999/x", "pw123", "http://***@host:99999/x"),
        ("see https://a:p@ss@db.example/x?mail=a@b", "p@ss", "https://***@db.example/x?mail=a@b"),
        ("http://u:p/w0rd@host:9200", "p/w0rd", "http://***@host:9200"),
        ('{"api-key": "abc123", "host": "h"}', "abc123", '{"api-key": "***", "host": "h"}'),
        ('{"x-api-key":"zz-top"}', "zz-top", '{"x-api-key":"***"}'),
        ("api-key: abc123\r\nAccept: */*", "abc123", "api-key: ***\r\nAccept: */*"),
        ("Authorization: Basic dXNlcjpwdw==", "dXNlcjpwdw==", "Authorization: Basic ***"),
        ("'authorization': 'Basic dXNlcjpwdw=='", "dXNlcjpwdw==", "'authorization': 'Basic ***'"),
        ('"Authorization": "Bearer eyJ.a.b"', "eyJ.a.b", '"Authorization": "Bearer ***"'),
        ("authorization: ApiKey a2V5LTEyMw==", "a2V5LTEyMw==", "authorization: ApiKey ***"),
        ("password=hunter22&user=bob", "hunter22", "password=***&user=bob"),
        ('{"passwd": "hunter22", "client_secret": "s3"}', "hunter22", '{"passwd": "***", "client_secret": "***"}'),
        ("access_token: t0k3n-x", "t0k3n-x", "access_token: ***"),
        ('b\'{"h": "{\\\\"api-key\\\\": \\\\"abc123\\\\"}"}\'', "abc123", "api-key"),
    ],
)
def test_redact_masks_credentials_and_keeps_the_rest(text: str, secret: str, kept: str) -> None:
    masked = redact(text)
    assert secret not in masked and kept in masked, masked


def test_redact_masks_secret_environment_values_anywhere(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every installed backend's secret variables (and basic-auth pairs), in every form they travel in."""
    secrets, pairs = secret_env_vars()
    values = {name: f"secret-{i}-raw-1234" for i, name in enumerate(secrets)}
    encoded = []
    for user_env, password_env in pairs:
        values[user_env], values[password_env] = "admin", "pw with space"
        encoded.append(base64.b64encode(b"admin:pw with space").decode())
    for name, value in values.items():
        monkeypatch.setenv(name, value)
    hidden = [v for v in values.values() if v != "admin"] + encoded
    hidden += [v.replace(" ", "%20") for v in hidden if " " in v]
    masked = redact("echo " + ", ".join(hidden))
    for secret in hidden:
        assert secret not in masked
    monkeypatch.setenv(secrets[0], "ab")  # too short to mask literally: "ab" stays in "tab"
    assert redact("a tab") == "a tab"


def test_redact_leaves_ordinary_text_alone() -> None:
    for text in (
        '"query_tokens": {"7": 64.0}',
        "security_exception: missing authentication credentials for REST request [/_count]",
        "collection 'docs' does not exist",
        "http://db.example:6333/collections",
        '"password": ""',
    ):
        assert redact(text) == text
    assert safe_message("a\n  b\tc") == "a b c" and len(safe_message("x" * 5000)) == 600


# ------------------------------------------------------------- the retry helper itself
def test_retry_call_gives_up_at_once_when_retry_after_passes_the_deadline() -> None:
    calls: list[float] = []

    def busy() -> None:
        calls.append(time.monotonic())
        raise RuntimeError("429")

    started = time.monotonic()
    with pytest.raises(BackendError, match=r"gave up after 1 attempt in .*the server asked to wait 30 s"):
        retry_call(
            "upserting", busy, is_retryable=lambda e: True, retry_after=lambda e: 30.0, max_attempts=5, deadline=5
        )
    assert len(calls) == 1 and time.monotonic() - started < 1


def test_parse_retry_after() -> None:
    from datetime import datetime, timedelta, timezone
    from email.utils import format_datetime

    assert parse_retry_after("2") == 2.0 and parse_retry_after(" 1.5 ") == 1.5
    assert parse_retry_after(None) is None and parse_retry_after("soon") is None
    assert parse_retry_after("-3") == 0.0
    later = format_datetime(datetime.now(timezone.utc) + timedelta(seconds=30), usegmt=True)
    assert 25 < parse_retry_after(later) <= 31  # type: ignore[operator]


def test_redaction_keeps_the_shape_of_records_whose_formatter_reads_their_arguments(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """uvicorn's access log formats ``record.args`` as a tuple: a redacted record must still be one."""
    import logging

    from uvicorn.logging import AccessFormatter

    from splare_connect.redaction import RedactingFilter

    monkeypatch.setenv("SPLARE_API_KEY", "k3y-that-must-not-show")
    formatter = AccessFormatter('%(client_addr)s - "%(request_line)s" %(status_code)s', use_colors=False)
    for path in ("/healthz", "/encode?api_key=k3y-that-must-not-show"):
        record = logging.LogRecord(
            "uvicorn.access",
            logging.INFO,
            __file__,
            1,
            '%s - "%s %s HTTP/%s" %d',
            ("127.0.0.1:5000", "GET", path, "1.1", 200),
            None,
        )
        RedactingFilter().filter(record)
        line = formatter.format(record)
        assert line.startswith('127.0.0.1:5000 - "GET /') and line.endswith(" 200 OK")
        assert "k3y-that-must-not-show" not in line
