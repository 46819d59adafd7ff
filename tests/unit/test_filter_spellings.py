"""How an equality's value is spelled for the engines, which compare stored values by type."""

from __future__ import annotations

from splare_connect.filters import spellings


def test_only_ascii_digit_strings_also_match_as_integers() -> None:
    """A string of other scripts' digits ("٣٣") is matched as the string alone, never as the integer 33."""
    assert spellings("33") == ["33", 33]
    assert spellings("\u0663\u0663") == ["\u0663\u0663"]
