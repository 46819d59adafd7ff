"""Read a BEIR-layout dataset: ``corpus.jsonl``, queries and qrels.

Two query layouts are accepted:

- several query sets: ``queries/<name>.jsonl`` with ``qrels/<name>.tsv`` (the man-page
  collection: ``en-dev``, ``de-dev`` ...);
- classic BEIR: ``queries.jsonl`` with ``qrels/<split>.tsv``, one set per split.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path

from splare_connect.errors import ConfigError


@dataclass(frozen=True)
class QuerySet:
    """One set of queries with their relevance judgements."""

    name: str
    queries: dict[str, str]
    qrels: dict[str, dict[str, int]]


@dataclass(frozen=True)
class BeirDataset:
    """Documents (id -> text, title prepended) and the query sets that judge them."""

    path: Path
    doc_ids: list[str]
    doc_texts: list[str]
    query_sets: list[QuerySet]


def load_beir(path: str | Path, query_sets: list[str] | None = None) -> BeirDataset:
    """Load a dataset; ``query_sets`` picks some of them by name (default: all).

    Raises:
        ConfigError: The layout isn't BEIR's, or a requested query set is missing.
    """
    root = Path(path)
    corpus_file = root / "corpus.jsonl"
    if not corpus_file.is_file():
        raise ConfigError(f"{root}: not a BEIR dataset (corpus.jsonl is missing)")
    doc_ids, doc_texts = [], []
    with corpus_file.open(encoding="utf-8") as lines:
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            record = json.loads(line)
            if "_id" not in record or not isinstance(record.get("text"), str):
                raise ConfigError(f"{corpus_file}:{number}: a corpus record needs _id and text")
            title = record.get("title") or ""
            doc_ids.append(str(record["_id"]))
            doc_texts.append(f"{title}\n{record['text']}" if title else record["text"])
    sets = read_query_sets(root)
    if query_sets:
        missing = sorted(set(query_sets) - {s.name for s in sets})
        if missing:
            raise ConfigError(f"{root}: no query set {missing}; available: {sorted(s.name for s in sets)}")
        sets = [s for s in sets if s.name in query_sets]
    if not sets:
        raise ConfigError(f"{root}: no queries with qrels found")
    return BeirDataset(root, doc_ids, doc_texts, sets)


def read_query_sets(root: Path) -> list[QuerySet]:
    """The query sets under ``root`` with their judgements.

    ``queries/NAME.jsonl`` with ``qrels/NAME.tsv``, or one ``queries.jsonl`` with a qrels file per set.
    """
    qrels_dir = root / "qrels"
    if (root / "queries").is_dir():
        names = sorted(p.stem for p in (root / "queries").glob("*.jsonl") if (qrels_dir / f"{p.stem}.tsv").is_file())
        return [
            QuerySet(n, _read_queries(root / "queries" / f"{n}.jsonl"), _read_qrels(qrels_dir / f"{n}.tsv"))
            for n in names
        ]
    if (root / "queries.jsonl").is_file():
        queries = _read_queries(root / "queries.jsonl")
        sets = []
        for qrels_file in sorted(qrels_dir.glob("*.tsv")):
            qrels = _read_qrels(qrels_file)
            sets.append(QuerySet(qrels_file.stem, {q: t for q, t in queries.items() if q in qrels}, qrels))
        return sets
    return []


def _read_queries(file: Path) -> dict[str, str]:
    with file.open(encoding="utf-8") as lines:
        return {str(r["_id"]): r["text"] for r in (json.loads(line) for line in lines if line.strip())}


def _read_qrels(file: Path) -> dict[str, dict[str, int]]:
    qrels: dict[str, dict[str, int]] = {}
    with file.open(encoding="utf-8") as handle:
        for row in csv.DictReader(handle, delimiter="\t"):
            qrels.setdefault(row["query-id"], {})[row["corpus-id"]] = int(row["score"])
    return qrels
