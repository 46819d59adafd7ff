"""Make text from data or a server safe to print on a terminal.

A stored document, a record id, a feature label or a server's answer can hold control
characters that a terminal obeys: ``ESC ] 0 ; title BEL`` renames the window, ``ESC [ 2J``
clears the screen, the 8-bit ``CSI`` (U+009B) does the same on some terminals, and the
bidirectional overrides (U+202A-U+202E, U+2066-U+2069) reorder what the reader sees.
Everything the CLI prints that it did not write itself goes through :func:`printable`
(or :func:`printable_json` for ``--json``), so those characters show as visible escapes
(``\\x1b``, ``\\u202e``) and never act.

Rich markup (``[bold]``) is a separate matter: callers still escape it with
``rich.markup.escape`` or print with ``markup=False``.
"""

from __future__ import annotations

import json
from typing import Any

__all__ = ["printable", "printable_json"]

# C0 controls, DEL and the C1 controls (U+0080-U+009F; U+0085, NEL, is one too).
_CONTROLS = [*range(0x00, 0x20), 0x7F, *range(0x80, 0xA0)]
# Bidi overrides and isolates, the marks that also reorder text (LRM, RLM, ALM), and the
# line and paragraph separators some terminals break lines at.
_BIDI = [*range(0x202A, 0x202F), *range(0x2066, 0x206A), 0x200E, 0x200F, 0x061C, 0x2028, 0x2029]


def _visible(code: int) -> str:
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


_PRINTABLE = {code: _visible(code) for code in (*_CONTROLS, *_BIDI)}
# json.dumps already escapes C0 inside strings; its raw newlines are the layout's and stay.
_JSON_ESCAPES = {code: f"\\u{code:04x}" for code in (*_CONTROLS, *_BIDI) if code >= 0x20}


def printable(text: str) -> str:
    """``text`` with every terminal control character, newlines and tabs included, shown as an escape (``\\x1b``)."""
    return text.translate(_PRINTABLE)


def printable_json(data: Any, *, default: Any = None) -> str:
    """``data`` as JSON that is safe on a terminal and still decodes to ``data`` exactly.

    ``json.dumps(..., ensure_ascii=False)`` writes DEL, C1 controls and bidi characters
    as they are; here they become ``\\u`` escapes, which only occur inside JSON strings,
    so a script reading the output gets the same strings back.
    """
    return json.dumps(data, indent=2, ensure_ascii=False, default=default).translate(_JSON_ESCAPES)
