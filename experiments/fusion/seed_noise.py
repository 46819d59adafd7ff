"""How much does a query set's score move with the training seed alone?

Issue 15's goals must hold for two seeds of one recipe. This reads pairs of
``splare-connect eval`` result files, each pair the same recipe trained with two seeds, and
estimates per query set the seed-to-seed standard deviation of the sparse nDCG@10 and of the
gap between the hybrid's parts (sparse minus dense): for two draws ``a`` and ``b`` of the
same quantity, ``(a - b)^2 / 2`` estimates its variance, averaged over the pairs. Recipes
differ in their means, not in what a seed does, so pairs from several recipes pool.

    python experiments/fusion/seed_noise.py \\
        .bench/eval-debdesc-v16-seed13.json .bench/eval-debdesc-v16-seed29.json \\
        .bench/eval-debdesc-v18-seed13.json .bench/eval-debdesc-v18-seed29.json

An experiment, not a product benchmark: it reads results, it computes none.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

METRIC = "nDCG@10"


def _scores(path: Path) -> dict[str, tuple[float, float]]:
    """``{query set: (sparse, sparse - dense)}`` of one result file."""
    scores = json.loads(path.read_text(encoding="utf-8"))["scores"]
    return {name: (s["sparse"][METRIC], s["sparse"][METRIC] - s["dense"][METRIC]) for name, s in scores.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results", nargs="+", type=Path, help="eval JSON files, two per recipe (seed pairs)")
    args = parser.parse_args()
    if len(args.results) % 2:
        parser.error("give the result files in pairs: two seeds of one recipe each")
    squares: dict[str, list[tuple[float, float]]] = {}
    for first, second in zip(args.results[::2], args.results[1::2], strict=True):
        a, b = _scores(first), _scores(second)
        for name in sorted(a.keys() & b.keys()):
            squares.setdefault(name, []).append(
                ((a[name][0] - b[name][0]) ** 2 / 2, (a[name][1] - b[name][1]) ** 2 / 2)
            )
    print(f"{len(args.results) // 2} seed pairs; per-seed standard deviation of {METRIC}")
    print("query set  | sparse | sparse - dense")
    for name, pairs in sorted(squares.items()):
        sparse = math.sqrt(sum(p[0] for p in pairs) / len(pairs))
        gap = math.sqrt(sum(p[1] for p in pairs) / len(pairs))
        print(f"{name:10} | {sparse:6.3f} | {gap:6.3f}")


if __name__ == "__main__":
    main()
