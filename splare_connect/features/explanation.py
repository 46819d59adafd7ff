"""Features with their labels: what ``--explain``, ``encoder.explain`` and a miss report show."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, NamedTuple

if TYPE_CHECKING:
    from splare_connect.features.dictionary import FeatureDictionary
    from splare_connect.sparse_vector import SparseVector


class FeatureWeight(NamedTuple):
    """One latent feature with a weight and, when the model has a dictionary, its label.

    Attributes:
        feature: The latent's index.
        weight: Its contribution to a score (``query weight x document weight``), or a
            text's own weight for it.
        label: What the feature means (:class:`~splare_connect.features.FeatureDictionary`),
            or ``None`` when the model has no dictionary.
    """

    feature: int
    weight: float
    label: str | None = None


def labelled(pairs: Iterable[tuple[int, float]], dictionary: FeatureDictionary | None) -> list[FeatureWeight]:
    """``(feature, weight)`` pairs with their labels, in the order given."""
    if dictionary is None:
        return [FeatureWeight(feature, weight) for feature, weight in pairs]
    return [FeatureWeight(feature, weight, dictionary.label(feature)) for feature, weight in pairs]


@dataclass(frozen=True)
class MissExplanation:
    """Why a document scored low (or not at all) for a query: which of the query's features it has.

    Attributes:
        record_id: The stored record compared.
        score: The sparse score, the sum of ``shared`` weights (0 when nothing is shared).
        shared: Query features the document has, with their contributions, largest first.
        missing: Query features the document lacks, with the query's weight, largest first:
            what the document would need to match.
    """

    record_id: str
    score: float
    shared: list[FeatureWeight]
    missing: list[FeatureWeight]


def explain_miss(
    record_id: str, query: SparseVector, document: SparseVector, dictionary: FeatureDictionary | None
) -> MissExplanation:
    """Compare a query's features with a stored document's."""
    shared = query.contributions(document)
    present = {feature for feature, _ in shared}
    missing = sorted(
        ((int(f), float(w)) for f, w in zip(query.indices, query.values, strict=True) if int(f) not in present),
        key=lambda pair: -pair[1],
    )
    return MissExplanation(
        record_id=record_id,
        score=float(sum(weight for _, weight in shared)),
        shared=labelled(shared, dictionary),
        missing=labelled(missing, dictionary),
    )
