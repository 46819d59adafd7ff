"""Is one arithmetic within 1 % of another? Two ``splare-connect eval`` results, side by side.

The issue's rule: for each system (sparse, dense, hybrid...), the mean over the collection's
query sets of ``candidate / reference`` is within 1 %, and no single set is more than 2 % below
(the small sets are noisy). The headline measure is nDCG@10 for English sets and MRR@10 for
the others, as the quality goals read them.

    python benchmarks/precision_parity.py .bench/eval-manpages-fp32.json .bench/eval-manpages-bf16.json

Not a test: no figure is asserted; it prints PASS or MISS per system.
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path


def headline(query_set: str, scores: dict[str, float]) -> tuple[str, float]:
    measure = "nDCG@10" if query_set.startswith("en") else "RR@10"
    return measure, scores[measure]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("reference", type=Path)
    parser.add_argument("candidate", type=Path)
    parser.add_argument("--mean-within", type=float, default=0.01)
    parser.add_argument("--worst-within", type=float, default=0.02)
    args = parser.parse_args()
    reference, candidate = (json.loads(path.read_text(encoding="utf-8")) for path in (args.reference, args.candidate))
    print(
        f"reference: {reference['runtime']} {reference['precision']}; "
        f"candidate: {candidate['runtime']} {candidate['precision']}"
    )
    systems = sorted({system for scores in reference["scores"].values() for system in scores})
    for system in systems:
        ratios = {}
        for query_set, scores in reference["scores"].items():
            if system not in scores or system not in candidate["scores"].get(query_set, {}):
                continue
            measure, value = headline(query_set, scores[system])
            ratios[query_set] = candidate["scores"][query_set][system][measure] / value if value else 1.0
        if not ratios:
            continue
        mean = statistics.fmean(ratios.values())
        worst_set = min(ratios, key=ratios.__getitem__)
        passed = abs(mean - 1) <= args.mean_within and ratios[worst_set] >= 1 - args.worst_within
        cells = ", ".join(f"{name} {ratio:.4f}" for name, ratio in sorted(ratios.items()))
        print(f"{system:12} mean {mean:.4f}, worst {worst_set} {ratios[worst_set]:.4f}: {'PASS' if passed else 'MISS'}")
        print(f"{'':12} {cells}")


if __name__ == "__main__":
    main()
