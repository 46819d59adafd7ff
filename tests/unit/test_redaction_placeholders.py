"""A hint that names a header with a placeholder is not a credential (issue 33, defect 13).

``redact`` masked the scheme of ``Authorization: Bearer <key>``, so the service's 401 told
clients to "send Authorization: *** <key>". Placeholders stay; real values are masked as before.
"""

from __future__ import annotations

import pytest

from splare_connect.redaction import redact


@pytest.mark.parametrize(
    "hint",
    [
        "send 'Authorization: Bearer <key>' or 'X-API-Key: <key>'",
        "as Authorization: Bearer <key>.",
        "authorization: Basic <credentials>",
        "set Authorization: ApiKey <api key>",
    ],
)
def test_hints_with_placeholders_are_left_as_written(hint: str) -> None:
    assert redact(hint) == hint


@pytest.mark.parametrize(
    ("text", "secret"),
    [
        ("send 'Authorization: Bearer <key>'; got Authorization: Bearer s3cr3t-v4lue", "s3cr3t-v4lue"),
        ("Authorization: Bearer tok-123 <key>", "tok-123"),
        ("Authorization: Bearer <key>x Authorization: bearer abc.def", "abc.def"),
        ("X-API-Key: k-9f8e7d", "k-9f8e7d"),
    ],
)
def test_real_values_next_to_hints_are_still_masked(text: str, secret: str) -> None:
    masked = redact(text)
    assert secret not in masked and "***" in masked, masked
