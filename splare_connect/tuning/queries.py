"""The queries ``tune`` measures with: the user's labelled ones, or known items made from the collection.

Labelled queries come in the BEIR layout ``splare-connect eval`` reads (``queries/NAME.jsonl``
and ``qrels/NAME.tsv``, one set per language or kind; no corpus needed: the collection is
the corpus). Without any, known-item queries are made from the collection itself: the
first sentence of a sampled document, asked against all of them, with that document the
one relevant answer. They measure something narrower than real questions (the query's
words are in its document, which favours sparse matching, and each has one answer), and
the report says so.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from splare_connect.backends.schema import payload_value
from splare_connect.errors import ConfigError

__all__ = ["QuerySet", "held_out", "known_item_queries", "labelled_queries", "sample"]

# A sentence ends at . ! ? or a line break; a known-item query keeps its first words.
_SENTENCE_END = re.compile(r"[.!?\n]+")
MIN_WORDS, MAX_WORDS = 3, 16


@dataclass(frozen=True)
class QuerySet:
    """Queries with graded judgements (``qrels[query][doc_id] = grade``); ``known_item`` says how they were made."""

    name: str
    queries: dict[str, str]
    qrels: dict[str, dict[str, int]]
    known_item: bool = False


def labelled_queries(path: str | Path, names: list[str] | None = None) -> list[QuerySet]:
    """The query sets under ``path`` (BEIR layout), or those named.

    Raises:
        ConfigError: No queries with judgements there, or a named set missing.
    """
    from splare_connect.evaluation.dataset import read_query_sets

    root = Path(path)
    found = [QuerySet(s.name, dict(s.queries), dict(s.qrels)) for s in read_query_sets(root)]
    if names:
        missing = sorted(set(names) - {s.name for s in found})
        if missing:
            raise ConfigError(f"{root}: no query set {missing}; available: {sorted(s.name for s in found)}")
        found = [s for s in found if s.name in names]
    found = [QuerySet(s.name, {q: t for q, t in s.queries.items() if s.qrels.get(q)}, s.qrels) for s in found]
    found = [s for s in found if s.queries]
    if not found:
        raise ConfigError(f"{root}: no queries with judgements (queries/NAME.jsonl and qrels/NAME.tsv)")
    return found


def known_item_queries(backend: Any, collection: str, *, count: int, seed: int) -> QuerySet:
    """``count`` known-item queries from the collection's stored text (the same for the same seed).

    Raises:
        ConfigError: The collection keeps no text to make queries from.
    """
    spec = backend.describe_collection(collection)
    if spec is None:
        from splare_connect.errors import CollectionNotFoundError

        raise CollectionNotFoundError(f"collection {collection!r} does not exist")
    text_field = spec.text_field or "text"
    doc_field = spec.doc_id_field if spec.attached else "doc_id"
    fields = [f for f in (text_field, doc_field, None if spec.attached else "chunk_index") if f]
    first_texts: dict[str, str] = {}
    for point_id, payload in backend.iter_payloads(collection, [f.split(".")[0] for f in fields]):
        if not spec.attached and payload.get("chunk_index", 0) != 0:
            continue
        text = payload_value(payload, text_field)
        doc_id = str(payload_value(payload, doc_field) if doc_field else point_id)
        query = _first_sentence(text) if isinstance(text, str) else None
        if query and doc_id not in first_texts:
            first_texts[doc_id] = query
    if not first_texts:
        raise ConfigError(
            f"collection {collection!r} keeps no text to make known-item queries from (ingested with "
            "--no-store-text?): bring labelled queries with --queries"
        )
    chosen = random.Random(seed).sample(sorted(first_texts), min(count, len(first_texts)))
    queries = {f"known:{doc_id}": first_texts[doc_id] for doc_id in chosen}
    return QuerySet("known-item", queries, {f"known:{doc_id}": {doc_id: 1} for doc_id in chosen}, known_item=True)


def _first_sentence(text: str) -> str | None:
    """The first sentence of at least ``MIN_WORDS`` words, cut to ``MAX_WORDS``; None when there is none."""
    for sentence in _SENTENCE_END.split(text):
        words = sentence.split()
        if len(words) >= MIN_WORDS:
            return " ".join(words[:MAX_WORDS])
    return None


def sample(query_set: QuerySet, limit: int, seed: int) -> QuerySet:
    """At most ``limit`` of the set's queries, the same ones for the same seed."""
    if len(query_set.queries) <= limit:
        return query_set
    kept = random.Random(seed).sample(sorted(query_set.queries), limit)
    return QuerySet(query_set.name, {q: query_set.queries[q] for q in kept}, query_set.qrels, query_set.known_item)


def held_out(query_set: QuerySet, seed: int) -> tuple[QuerySet, QuerySet]:
    """The set split in two halves at random (the same for the same seed): one to choose on, one to judge."""
    ids = sorted(query_set.queries)
    random.Random(seed).shuffle(ids)
    half = len(ids) // 2

    def part(chosen: list[str]) -> QuerySet:
        return QuerySet(
            query_set.name, {q: query_set.queries[q] for q in chosen}, query_set.qrels, query_set.known_item
        )

    return part(ids[:half]), part(ids[half:])
