"""Render ``splare-connect eval -o`` JSON files as markdown tables (for README / BENCHMARKS).

python benchmarks/eval_table.py .bench/eval_zeroshot.json .bench/eval_finetuned.json
python benchmarks/eval_table.py --by-language eval.json    # one row per query set (many languages)
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

SETS = ("en-dev", "de-dev", "fr-dev", "es-dev", "ru-dev")


def table(result: dict) -> str:
    scores = result["scores"]
    sets = [s for s in SETS if s in scores] + [s for s in scores if s not in SETS]
    systems = list(next(iter(scores.values())))
    head = ["system", *(f"{s} nDCG@10 / MRR@10" for s in sets)]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for system in systems:
        cells = [f"{scores[s][system]['nDCG@10']:.3f} / {scores[s][system]['RR@10']:.3f}" for s in sets]
        lines.append(f"| {system} | " + " | ".join(cells) + " |")
    sparsity = result["sparsity"]
    lines.append("")
    lines.append(
        f"Model `{result['model']}`: queries {sparsity['query_nnz_mean']:.1f} non-zeros, documents "
        f"{sparsity['document_nnz_mean']:.1f} (at 200: {sparsity.get('document_nnz_mean@200', float('nan')):.1f}, "
        f"at 100: {sparsity.get('document_nnz_mean@100', float('nan')):.1f})."
    )
    return "\n".join(lines)


BY_LANGUAGE = ("sparse", "baseline-dense", "bm25", "dense", "hybrid", "hybrid-dbsf")
HYBRIDS = ("hybrid", "hybrid-dbsf")


def table_by_language(result: dict) -> str:
    """One row per query set: the fine-tuned sparse run against the teacher (``baseline-dense``,
    with ``--baseline``) and BM25 in nDCG@10 / MRR@10, the sparse/teacher MRR@10 ratio, and the
    hybrids against their two parts; for collections with many languages."""
    scores = result["scores"]
    systems = [s for s in BY_LANGUAGE if s in next(iter(scores.values()))]
    hybrids = [s for s in HYBRIDS if s in systems]
    head = ["query set", *systems, "sparse / teacher MRR@10", *(f"{h} > both parts" for h in hybrids)]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for query_set in [s for s in SETS if s in scores] + sorted(s for s in scores if s not in SETS):
        row = scores[query_set]
        cells = [f"{row[system]['nDCG@10']:.3f} / {row[system]['RR@10']:.3f}" for system in systems]
        teacher = row.get("baseline-dense", {}).get("RR@10")
        cells.append(f"{row['sparse']['RR@10'] / teacher:.2f}" if teacher else "–")
        parts = max(row["sparse"]["nDCG@10"], row["dense"]["nDCG@10"])
        cells += ["yes" if row[hybrid]["nDCG@10"] > parts else "no" for hybrid in hybrids]
        lines.append(f"| {query_set} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("files", nargs="+", type=Path, help="JSON files written by `splare-connect eval -o`")
    parser.add_argument("--by-language", action="store_true", help="one row per query set (many languages)")
    args = parser.parse_args()
    render = table_by_language if args.by_language else table
    for file in args.files:
        try:
            result = json.loads(file.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as error:
            parser.exit(2, f"{file}: not a readable eval result ({error})\n")
        print(f"\n{file.name}\n")
        print(render(result))


if __name__ == "__main__":
    main()
