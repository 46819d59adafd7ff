"""How readable the default model's feature labels are, measured with no human in the loop.

1. Translation pairs held out of labelling (``heldout_pairs.jsonl`` from
   ``labelling_corpus.py``): both sides encoded as queries; among the features in the top
   10 of both sides, does the strongest shared one (and does any) carry a label with a
   word of either side?
2. Man-page dev queries: each query's best page by the sparse score over the whole corpus
   (the evaluation's cached document vectors); does the top contributing feature's label
   hold a word of the query or of that page?

A label word counts when it is one of the text's words (case-folded, NFKC), or, for
scripts written without spaces, when it occurs in the text.

    python experiments/features/label_quality.py --pairs .bench/features/heldout_pairs.jsonl \
        --json .bench/features/label_quality.json
"""

from __future__ import annotations

import argparse
import json
import re
from collections import defaultdict
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from splare_connect import SplareEncoder
from splare_connect.evaluation import load_beir
from splare_connect.evaluation.corpus_cache import encode_corpus
from splare_connect.features.dictionary import normalize_word
from splare_connect.models import cache_dir

_WORD = re.compile(r"\w+")
_PREFIXES = ("mixed: ", "rare: ")


def label_words(label: str) -> list[str]:
    for prefix in _PREFIXES:
        label = label.removeprefix(prefix)
    return [normalize_word(part) for part in re.split(r" / | · ", label) if part.strip()]


def mentions(label: str | None, *texts: str) -> bool:
    if not label or label == "dead":
        return False
    normalized = [normalize_word(text) for text in texts]
    words = {word for text in normalized for word in _WORD.findall(text)}
    for word in label_words(label):
        if word in words or (not word.isascii() and any(word in text for text in normalized)):
            return True
    return False


def top_features(vector, count: int) -> list[int]:  # type: ignore[no-untyped-def]
    order = np.argsort(-vector.values, kind="stable")[:count]
    return [int(vector.indices[i]) for i in order]


def pairs_check(encoder: SplareEncoder, pairs_file: Path) -> dict[str, object]:
    pairs = [json.loads(line) for line in pairs_file.open(encoding="utf-8")]
    english = encoder.encode_queries([p["english"] for p in pairs], batch_size=64)
    translated = encoder.encode_queries([p["translation"] for p in pairs], batch_size=64)
    dictionary = encoder.feature_dictionary
    assert dictionary is not None
    per_language: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0, 0])  # pairs, shared, strongest ok, any ok
    for pair, en_vector, tr_vector in zip(pairs, english, translated, strict=True):
        counts = per_language[pair["lang"]]
        counts[0] += 1
        en_top, tr_top = top_features(en_vector, 10), top_features(tr_vector, 10)
        shared = [f for f in en_top if f in tr_top]
        if not shared:
            continue
        counts[1] += 1
        weights = dict(zip(en_vector.indices.tolist(), en_vector.values.tolist(), strict=True))
        other = dict(zip(tr_vector.indices.tolist(), tr_vector.values.tolist(), strict=True))
        strongest = max(shared, key=lambda f: min(weights[f], other[f]))
        texts = (pair["english"], pair["translation"])
        counts[2] += mentions(dictionary.label(strongest), *texts)
        counts[3] += any(mentions(dictionary.label(f), *texts) for f in shared)
    total = [sum(c[i] for c in per_language.values()) for i in range(4)]
    return {
        "pairs": total[0],
        "pairs_with_a_shared_top10_feature": total[1],
        "strongest_shared_label_has_a_word_of_the_pair": round(total[2] / max(total[1], 1), 3),
        "any_shared_label_has_a_word_of_the_pair": round(total[3] / max(total[1], 1), 3),
        "per_language": {
            lang: {"pairs": c[0], "shared": c[1], "strongest_ok": round(c[2] / max(c[1], 1), 3)}
            for lang, c in sorted(per_language.items())
        },
    }


def manpages_check(encoder: SplareEncoder, dataset_dir: Path) -> dict[str, object]:
    dataset = load_beir(dataset_dir)
    corpus = encode_corpus(encoder, dataset.doc_ids, dataset.doc_texts, cache_dir() / "eval")
    rows, cols, vals = [], [], []
    for row, vector in enumerate(corpus.sparse):
        rows += [row] * vector.nnz
        cols += vector.indices.tolist()
        vals += vector.values.tolist()
    matrix = sp.csr_matrix((vals, (rows, cols)), shape=(len(corpus.sparse), encoder.dim), dtype=np.float32)
    dictionary = encoder.feature_dictionary
    assert dictionary is not None
    results: dict[str, object] = {}
    for query_set in dataset.query_sets:
        ids = list(query_set.queries)
        vectors = encoder.encode_queries([query_set.queries[i] for i in ids], batch_size=64)
        good = scored = 0
        for query_id, vector in zip(ids, vectors, strict=True):
            if vector.nnz == 0:
                continue
            scores = matrix[:, vector.indices] @ vector.values
            best = int(np.argmax(scores))
            contributions = vector.contributions(corpus.sparse[best])
            if not contributions:
                continue
            scored += 1
            top_feature = contributions[0][0]
            good += mentions(dictionary.label(top_feature), query_set.queries[query_id], dataset.doc_texts[best])
        results[query_set.name] = {
            "queries": scored,
            "top_label_has_a_word_of_query_or_page": round(good / max(scored, 1), 3),
        }
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pairs", type=Path, required=True)
    parser.add_argument("--manpages", type=Path, default=Path("data/manpages"))
    parser.add_argument("--model", default=None)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    encoder = SplareEncoder.from_pretrained(args.model, device="cpu")
    if encoder.feature_dictionary is None:
        raise SystemExit(f"{encoder.config.name} has no feature dictionary")
    result = {"pairs": pairs_check(encoder, args.pairs), "manpages": manpages_check(encoder, args.manpages)}
    print(json.dumps(result, indent=2, ensure_ascii=False))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
