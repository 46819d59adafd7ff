"""Render ``splare-connect eval -o`` JSON files as markdown tables (for README / BENCHMARKS).

python benchmarks/eval_table.py .bench/eval_zeroshot.json .bench/eval_finetuned.json
"""

from __future__ import annotations

import json
import sys
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


def main() -> None:
    for file in sys.argv[1:]:
        print(f"\n{Path(file).name}\n")
        print(table(json.loads(Path(file).read_text(encoding="utf-8"))))


if __name__ == "__main__":
    main()
