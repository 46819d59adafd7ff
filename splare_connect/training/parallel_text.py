"""Parallel text for the cross-lingual side of fine-tuning: Debian's translated message catalogs.

Every program translated for Debian installs ``/usr/share/locale/<lang>/LC_MESSAGES/*.mo``:
compiled gettext catalogs pairing each English message with its translation (``"No such
file or directory"`` / ``"Datei oder Verzeichnis nicht gefunden"``). They are real,
human-translated text about the same software the man pages describe, so they teach the
encoder that a German message and its English original should light up the same features.

Catalogs are read with polib (a maintained gettext reader); nothing is executed. Entries
that are not sentence-like text are skipped: untranslated or fuzzy ones, plurals, format-
heavy strings (``"%s: %s"``), very short or very long ones, and any whose text equals an
evaluation query on either side (so that no dev query is ever trained on).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from splare_connect.errors import MissingDependencyError

LOGGER = logging.getLogger(__name__)

DEFAULT_LOCALE_DIR = Path("/usr/share/locale")
_PLACEHOLDER = re.compile(r"%[-#0-9.*lhzjt]*[a-zA-Z%]|\{[^}]*\}|<[^>]+>")
# A menu accelerator marks a word's first letter ("_Open", "&Save"); "no_proxy" is left alone.
_MNEMONIC = re.compile(r"(?<![\w_])_(?=\w)|&(?=\w)")


@dataclass(frozen=True)
class ParallelPair:
    """One English message and its translation."""

    english: str
    translation: str
    lang: str


def normalize(text: str) -> str:
    """Lower-cased, single-spaced text: how evaluation queries are compared with catalog entries."""
    return " ".join(text.lower().split())


def clean_message(text: str) -> str:
    """Drop menu mnemonics (``_Open``, ``&Save``) and fold whitespace."""
    return " ".join(_MNEMONIC.sub("", text).split())


def is_sentence_like(text: str, min_chars: int, max_chars: int) -> bool:
    """Long enough to carry meaning, short enough to be one message, mostly words, not format codes."""
    if not min_chars <= len(text) <= max_chars:
        return False
    if len(_PLACEHOLDER.findall(text)) > 2:
        return False
    letters = sum(character.isalpha() for character in text)
    return letters >= 0.6 * len(text) and len(text.split()) >= 3


def read_message_catalogs(
    languages: Sequence[str],
    *,
    locale_dir: Path = DEFAULT_LOCALE_DIR,
    exclude: Iterable[str] = (),
    min_chars: int = 15,
    max_chars: int = 300,
    max_pairs_per_language: int | None = None,
) -> list[ParallelPair]:
    """English/translation pairs from the gettext catalogs of ``languages``.

    Args:
        languages: Locale directory names, e.g. ``["de", "fr"]``.
        locale_dir: Where ``<lang>/LC_MESSAGES/*.mo`` live.
        exclude: Texts never to return, on either side (compared after :func:`normalize`).
        min_chars / max_chars: Length bounds on both sides.
        max_pairs_per_language: Keep at most this many per language (the first ones, in
            catalog file name order, so that a run is repeatable).

    Returns:
        Pairs, de-duplicated per language on the English text.
    """
    polib = require_polib()
    excluded = {normalize(text) for text in exclude}
    pairs: list[ParallelPair] = []
    for lang in languages:
        catalog_dir = locale_dir / lang / "LC_MESSAGES"
        files = sorted(catalog_dir.glob("*.mo"))
        if not files:
            LOGGER.warning("no message catalogs for %r under %s", lang, catalog_dir)
        seen: set[str] = set()
        kept = 0
        for file in files:
            try:
                catalog = polib.mofile(str(file))
            except (OSError, ValueError) as exc:
                LOGGER.warning("skipping unreadable catalog %s: %s", file, exc)
                continue
            for entry in catalog:
                if entry.msgid_plural or not entry.msgstr or entry.obsolete or "fuzzy" in entry.flags:
                    continue
                english, translation = clean_message(entry.msgid), clean_message(entry.msgstr)
                key = normalize(english)
                translated_key = normalize(translation)
                if key in seen or key in excluded or translated_key in excluded or translated_key == key:
                    continue
                if not all(is_sentence_like(text, min_chars, max_chars) for text in (english, translation)):
                    continue
                seen.add(key)
                pairs.append(ParallelPair(english, translation, lang))
                kept += 1
                if max_pairs_per_language is not None and kept >= max_pairs_per_language:
                    break
            if max_pairs_per_language is not None and kept >= max_pairs_per_language:
                break
    return pairs


def require_polib() -> Any:
    """The polib module, or an error saying how to install it (it is the ``training`` extra)."""
    try:
        import polib
    except ImportError as exc:
        raise MissingDependencyError(
            "parallel text (parallel_languages) reads message catalogs with polib: "
            "pip install 'splare-connect[training]'"
        ) from exc
    return polib
