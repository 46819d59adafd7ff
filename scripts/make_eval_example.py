"""Build examples/eval-mini: a small BEIR dataset to try ``splare-connect eval`` on at once.

The full man-page collection (``data/manpages``, built as BENCHMARKS.md says) is 6,000
pages and not part of the repository. This takes 40 of its dev queries in five languages,
the pages they judge, each page's neighbours in the collection's sorted order (related
commands: ``git-*``, ``gcloud_*``, the same library's functions, which make the ranking
harder than random pages would) and pages picked by a hash of their id, up to 300 pages.

    python scripts/make_eval_example.py data/manpages --out examples/eval-mini

Only dev queries are read, and only train and dev pages are taken (those the dev qrels or
the training pairs name): the collection also holds the pages of its test split, which stay
out, so nothing held out leaks into the example. The choice is a hash of each id, so the
same collection always gives the same files.
"""

from __future__ import annotations

import argparse
import hashlib
import json
from pathlib import Path

# Queries per dev set: English has most dev queries; the others as many as they can spare.
QUERY_SETS = {"en-dev": 16, "de-dev": 8, "fr-dev": 6, "es-dev": 5, "ru-dev": 5}
DOCUMENTS = 300
NEIGHBOURS = 2  # pages on each side of a judged page, in sorted id order


def hashed(key: str) -> str:
    """An order that looks random but is the same on every run."""
    return hashlib.sha1(key.encode()).hexdigest()


def read_jsonl(path: Path) -> list[dict]:
    with path.open(encoding="utf-8") as lines:
        return [json.loads(line) for line in lines if line.strip()]


def read_qrels(path: Path) -> dict[str, dict[str, int]]:
    qrels: dict[str, dict[str, int]] = {}
    with path.open(encoding="utf-8") as lines:
        next(lines)  # header: query-id, corpus-id, score
        for line in lines:
            query, document, score = line.rstrip("\n").split("\t")
            qrels.setdefault(query, {})[document] = int(score)
    return qrels


def pick_queries(source: Path, name: str, count: int) -> tuple[list[dict], dict[str, dict[str, int]]]:
    """``count`` queries of dev set ``name`` that judge some page, and their qrels."""
    if not name.endswith("-dev"):
        raise SystemExit(f"{name}: only dev query sets go into the example, never a test split")
    qrels = read_qrels(source / "qrels" / f"{name}.tsv")
    queries = [q for q in read_jsonl(source / "queries" / f"{name}.jsonl") if qrels.get(q["_id"])]
    chosen = sorted(queries, key=lambda q: hashed(q["_id"]))[:count]
    return sorted(chosen, key=lambda q: q["_id"]), {q["_id"]: qrels[q["_id"]] for q in chosen}


def train_and_dev_pages(source: Path) -> set[str]:
    """The pages of the train and dev splits: judged by a dev query set or named by a training pair."""
    pages = {
        doc for qrels in source.glob("qrels/*-dev.tsv") for relevant in read_qrels(qrels).values() for doc in relevant
    }
    pairs = source / "train" / "pairs.jsonl"
    if pairs.is_file():
        pages.update(pair["doc_id"] for pair in read_jsonl(pairs))
    return pages


def pick_documents(corpus: list[dict], judged: set[str], total: int, neighbours: int, allowed: set[str]) -> list[dict]:
    """The judged pages, their neighbours, then pages by hash up to ``total``, all from ``allowed``; in corpus order."""
    ids = sorted(record["_id"] for record in corpus if record["_id"] in allowed)
    position = {doc_id: i for i, doc_id in enumerate(ids)}
    missing = judged - position.keys()
    if missing:
        raise SystemExit(f"qrels name pages the corpus lacks: {sorted(missing)[:5]}")
    keep = set(judged)
    for doc_id in sorted(judged):
        at = position[doc_id]
        keep.update(ids[max(0, at - neighbours) : at + neighbours + 1])
    for doc_id in sorted(ids, key=hashed):
        if len(keep) >= total:
            break
        keep.add(doc_id)
    return [record for record in corpus if record["_id"] in keep]


def write(out: Path, corpus: list[dict], sets: dict[str, tuple[list[dict], dict[str, dict[str, int]]]]) -> None:
    (out / "queries").mkdir(parents=True, exist_ok=True)
    (out / "qrels").mkdir(exist_ok=True)
    with (out / "corpus.jsonl").open("w", encoding="utf-8") as lines:
        lines.writelines(json.dumps(record, ensure_ascii=False) + "\n" for record in corpus)
    for name, (queries, qrels) in sets.items():
        with (out / "queries" / f"{name}.jsonl").open("w", encoding="utf-8") as lines:
            lines.writelines(json.dumps(query, ensure_ascii=False) + "\n" for query in queries)
        with (out / "qrels" / f"{name}.tsv").open("w", encoding="utf-8") as lines:
            lines.write("query-id\tcorpus-id\tscore\n")
            for query in queries:
                lines.writelines(f"{query['_id']}\t{doc}\t{score}\n" for doc, score in qrels[query["_id"]].items())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("source", type=Path, nargs="?", default=Path("data/manpages"), help="the man-page collection")
    parser.add_argument("--out", type=Path, default=Path("examples/eval-mini"))
    args = parser.parse_args()
    sets = {name: pick_queries(args.source, name, count) for name, count in QUERY_SETS.items()}
    judged = {doc for _, qrels in sets.values() for relevant in qrels.values() for doc in relevant}
    allowed = train_and_dev_pages(args.source)
    corpus = pick_documents(read_jsonl(args.source / "corpus.jsonl"), judged, DOCUMENTS, NEIGHBOURS, allowed)
    write(args.out, corpus, sets)
    queries = sum(len(queries) for queries, _ in sets.values())
    print(f"{args.out}: {queries} queries in {len(sets)} dev sets, {len(corpus)} pages ({len(judged)} judged)")


if __name__ == "__main__":
    main()
