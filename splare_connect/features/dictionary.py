"""A model's feature dictionary: what each SAE latent means, and the evidence for it.

SPLARE's vectors are weights over SAE latents, and a latent is only useful to a reader
with a name. A dictionary gives each latent a short label taken from the words that make
it fire (``copy / kopieren / コピー``), the evidence (those words with their languages,
a few snippets where it fires strongest) and how often it fires. It is built from a
corpus by :mod:`splare_connect.features.builder` and stored as gzip-compressed JSON
beside the model. It carries the encoder fingerprint it was built with, and is never
shown for another model.

Labels say how sure they are: a latent whose words disagree is ``mixed: a · b · c``, one
that fired on too few texts is ``rare: ...``, and one that never fired is ``dead``.
"""

from __future__ import annotations

import gzip
import json
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

from splare_connect.errors import ConfigError

DICTIONARY_FILE = "feature_dictionary.json.gz"
FORMAT_VERSION = 1

Status = Literal["labelled", "mixed", "rare", "dead"]


@dataclass(frozen=True)
class WordEvidence:
    """One word that makes a feature fire.

    Attributes:
        word: The whole word, case-folded (for scripts without spaces, the token's text).
        languages: Languages of the texts it fired in, most frequent first.
        activation: The strongest activation seen on it.
        count: Tokens of this word the feature fired on.
        total: Sum of those activations: how much of the feature this word accounts for.
    """

    word: str
    languages: tuple[str, ...]
    activation: float
    count: int
    total: float


@dataclass(frozen=True)
class FeatureEntry:
    """What one latent means.

    Attributes:
        feature: The latent's index.
        label: A short name a reader can check against ``words``.
        status: ``labelled``, ``mixed`` (its words disagree), ``rare`` (fired on too
            few texts to say) or ``dead`` (never fired in the labelling corpus).
        words: Its strongest words, strongest first.
        examples: Snippets where it fired strongest, strongest first.
        document_frequency: Share of the labelling texts it fired in.
    """

    feature: int
    label: str
    status: Status
    words: tuple[WordEvidence, ...] = ()
    examples: tuple[str, ...] = ()
    document_frequency: float = 0.0


class FeatureDictionary:
    """The labelled latents of one encoder (one fingerprint).

    Args:
        digest: The encoder fingerprint digest it was built with.
        model: The model's name, for messages.
        width: Number of latents.
        texts: Texts in the labelling corpus.
        sources: What the corpus was (file names), for the record.
        entries: The latents that fired; any other is ``dead``.
    """

    def __init__(
        self,
        *,
        digest: str,
        model: str,
        width: int,
        texts: int,
        sources: list[str],
        entries: dict[int, FeatureEntry],
    ) -> None:
        self.digest = digest
        self.model = model
        self.width = width
        self.texts = texts
        self.sources = sources
        self.entries = entries
        self._by_word: dict[str, list[tuple[int, float]]] | None = None

    def entry(self, feature: int) -> FeatureEntry:
        """The entry of ``feature`` (a ``dead`` one when it never fired)."""
        if not 0 <= feature < self.width:
            raise ConfigError(f"feature {feature} is out of range for {self.model} ({self.width} latents)")
        return self.entries.get(feature) or FeatureEntry(feature, "dead", "dead")

    def label(self, feature: int) -> str:
        """The label of ``feature``."""
        return self.entry(feature).label

    def find(self, word: str, *, limit: int = 10) -> list[tuple[FeatureEntry, WordEvidence]]:
        """The features ``word`` makes fire, strongest first, in any language.

        Matching is on the case-folded, NFKC-normalised word (``Kopieren`` finds
        ``kopieren``), against the words each feature keeps as evidence. Features are
        ranked by how much of their firing the word accounts for, so a feature about
        this word comes before one that fires on everything.
        """
        if self._by_word is None:
            index: dict[str, list[tuple[int, float]]] = {}
            for feature, entry in self.entries.items():
                mass = sum(e.total for e in entry.words) or 1.0
                for evidence in entry.words:
                    index.setdefault(evidence.word, []).append((feature, evidence.total / mass))
            self._by_word = index
        hits = sorted(self._by_word.get(normalize_word(word), []), key=lambda hit: -hit[1])[:limit]
        found = []
        for feature, _ in hits:
            entry = self.entries[feature]
            evidence = next(e for e in entry.words if e.word == normalize_word(word))
            found.append((entry, evidence))
        return found

    def check_encoder(self, fingerprint: dict[str, Any]) -> None:
        """Refuse to describe another encoder's vectors.

        Raises:
            ConfigError: The dictionary was built with another fingerprint.
        """
        if fingerprint.get("digest") != self.digest:
            raise ConfigError(
                f"this feature dictionary was built for {self.model} ({self.digest}), not for "
                f"{fingerprint.get('name')} ({fingerprint.get('digest')}): its labels would name other features"
            )

    # ------------------------------------------------------------------ storage
    def save(self, directory: Path) -> Path:
        """Write ``feature_dictionary.json.gz`` into ``directory``; returns its path."""
        directory.mkdir(parents=True, exist_ok=True)
        document = {
            "format": FORMAT_VERSION,
            "digest": self.digest,
            "model": self.model,
            "width": self.width,
            "texts": self.texts,
            "sources": self.sources,
            "features": [_entry_to_json(self.entries[f]) for f in sorted(self.entries)],
        }
        path = directory / DICTIONARY_FILE
        staging = path.with_name(f".{path.name}.partial")
        # mtime=0: the same dictionary is the same bytes, so a rebuilt one diffs cleanly.
        with gzip.GzipFile(staging, "wb", mtime=0) as out:
            out.write(json.dumps(document, ensure_ascii=False, separators=(",", ":")).encode("utf-8"))
        staging.replace(path)
        return path

    @classmethod
    def load(cls, path: Path) -> FeatureDictionary:
        """Read a dictionary file (or the one in a directory).

        Raises:
            ConfigError: It is missing, not a dictionary, or of a newer format.
        """
        file = path / DICTIONARY_FILE if path.is_dir() else path
        try:
            with gzip.open(file, "rt", encoding="utf-8") as handle:
                document = json.load(handle)
        except (OSError, EOFError, ValueError) as exc:
            raise ConfigError(f"cannot read feature dictionary {file}: {exc}") from None
        if not isinstance(document, dict) or document.get("format") != FORMAT_VERSION:
            raise ConfigError(f"{file} is not a feature dictionary of format {FORMAT_VERSION}")
        try:
            entries = {int(item["feature"]): _entry_from_json(item) for item in document["features"]}
            return cls(
                digest=str(document["digest"]),
                model=str(document["model"]),
                width=int(document["width"]),
                texts=int(document["texts"]),
                sources=[str(source) for source in document["sources"]],
                entries=entries,
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ConfigError(f"{file} is not a well-formed feature dictionary ({exc!r})") from None


def normalize_word(word: str) -> str:
    """How words are compared: NFKC, case-folded, stripped."""
    return unicodedata.normalize("NFKC", word).casefold().strip()


def label_feature(
    words: Iterable[WordEvidence],
    *,
    texts_fired: int,
    min_texts: int,
    language_tokens: Mapping[str, int] | None = None,
) -> tuple[str, Status]:
    """A feature's label and status from its words (strongest first) and how often it fired.

    The label is the strongest word, then the strongest word of up to two other
    languages when the feature fires on it about as readily (a concept shared across
    languages reads ``copy / kopieren / コピー``). Readiness is the word's total activation
    per token of text its language had (``language_tokens``), so a language with little
    labelling text still gets its translation named.

    The evidence is mixed when, among the top eight words of the strongest word's own
    language, that word holds under a quarter of the activation: the feature fires on
    unrelated words, and the label says so (``mixed: a · b · c``). Translations never
    count against a label, since they are agreement, not mixing.
    """
    ranked = list(words)
    if texts_fired == 0 or not ranked:
        return "dead", "dead"
    if texts_fired < min_texts:
        return "rare: " + " · ".join(e.word for e in ranked[:3]), "rare"
    top = ranked[:8]

    def language(evidence: WordEvidence) -> str:
        return evidence.languages[0] if evidence.languages else ""

    def readiness(evidence: WordEvidence) -> float:
        tokens = (language_tokens or {}).get(language(evidence), 0)
        return evidence.total / tokens if tokens else evidence.total

    own = [e for e in top if language(e) == language(top[0])]
    if top[0].total / max(sum(e.total for e in own), 1e-12) < 0.25:
        return "mixed: " + " · ".join(e.word for e in own[:3]), "mixed"
    chosen = [top[0]]
    for evidence in sorted(ranked[1:], key=readiness, reverse=True):
        if language(evidence) not in {language(c) for c in chosen} and readiness(evidence) >= 0.2 * readiness(top[0]):
            chosen.append(evidence)
        if len(chosen) == 3:
            break
    return " / ".join(e.word for e in chosen), "labelled"


def _entry_to_json(entry: FeatureEntry) -> dict[str, Any]:
    item = asdict(entry)
    item["words"] = [
        [e.word, list(e.languages), round(e.activation, 4), e.count, round(e.total, 4)] for e in entry.words
    ]
    item["examples"] = list(entry.examples)
    item["document_frequency"] = round(entry.document_frequency, 6)
    return item


def _entry_from_json(item: dict[str, Any]) -> FeatureEntry:
    words = tuple(
        WordEvidence(str(w), tuple(str(lang) for lang in langs), float(a), int(c), float(t))
        for w, langs, a, c, t in item["words"]
    )
    status = item["status"]
    if status not in ("labelled", "mixed", "rare", "dead"):
        raise ValueError(f"unknown status {status!r}")
    return FeatureEntry(
        feature=int(item["feature"]),
        label=str(item["label"]),
        status=status,
        words=words,
        examples=tuple(str(e) for e in item["examples"]),
        document_frequency=float(item["document_frequency"]),
    )
