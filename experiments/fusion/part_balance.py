"""When does the hybrid beat both of its parts? Tabled by how far apart the parts are.

Issue 15 asks that the hybrid (equal-weight RRF of the model's sparse and dense runs) beat
both parts in every language. This reads ``splare-connect eval`` result files and groups every
query set by the gap between its parts (sparse minus dense nDCG@10): how many query sets fall
in each band, how many of them miss the goal, and the hybrid's mean margin over the better
part. It says how balanced a training recipe must leave the two parts, which is what the
dense-side training terms (``lambda_dense_labels``, ``lambda_dense_from_sparse``) move.

    python experiments/fusion/part_balance.py .bench/eval-debdesc-v14-seed13.json .bench/eval-debdesc-v14-seed29.json

An experiment, not a product benchmark: it reads results, it computes none.
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

BANDS = [(-1.0, -0.08), (-0.08, -0.04), (-0.04, 0.0), (0.0, 0.04), (0.04, 0.08), (0.08, 1.0)]
METRIC = "nDCG@10"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results", nargs="+", type=Path, help="splare-connect eval JSON files")
    args = parser.parse_args()
    gaps: list[tuple[float, float]] = []  # (sparse - dense, hybrid - better part), per query set
    for path in args.results:
        scores = json.loads(path.read_text(encoding="utf-8"))["scores"]
        misses = []
        for query_set, systems in sorted(scores.items()):
            sparse, dense, hybrid = (systems[name][METRIC] for name in ("sparse", "dense", "hybrid"))
            margin = hybrid - max(sparse, dense)
            gaps.append((sparse - dense, margin))
            if margin <= 0:
                misses.append(f"{query_set} ({sparse:.3f} / {dense:.3f} / {hybrid:.3f})")
        print(f"{path.name}: hybrid misses in {len(misses)} of {len(scores)}: {', '.join(misses) or '-'}")
    print(f"\nsparse - dense {METRIC} | query sets | hybrid misses | mean hybrid margin over the better part")
    for low, high in BANDS:
        margins = [margin for gap, margin in gaps if low <= gap < high]
        if margins:
            missed = sum(margin <= 0 for margin in margins)
            print(f"{low:+.2f} to {high:+.2f}      | {len(margins):10} | {missed:13} | {statistics.mean(margins):+.3f}")


if __name__ == "__main__":
    main()
