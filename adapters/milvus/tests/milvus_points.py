"""The kit's synthetic chunks for the Milvus adapter's own tests, with some documents lacking ``lang``.

Every 10th document has no ``lang``, so ``lang != x`` must keep it (as Qdrant's
``must_not`` does), which Milvus's plain ``!=`` would not.
"""

from __future__ import annotations

from splare_connect.backends import CollectionSpec, PointRecord
from splare_connect.testing.conformance import brute_force
from splare_connect.testing.points import DIM, FINGERPRINT, random_queries
from splare_connect.testing.points import make_points as kit_points

__all__ = ["DENSE", "DIM", "FINGERPRINT", "brute_force", "make_points", "random_queries", "spec"]

DENSE = 8


def spec(name: str = "docs", **overrides: object) -> CollectionSpec:
    settings: dict = {"sparse_dim": DIM, "fingerprint": FINGERPRINT, "dense_dim": DENSE, "indexed_fields": ("lang",)}
    settings.update(overrides)
    return CollectionSpec(name, **settings)


def make_points(count: int, seed: int = 0) -> list[PointRecord]:
    """The kit's ``count`` one-chunk documents, every 10th (from the 8th) without ``lang``."""
    points = kit_points(count, seed, dense_dim=DENSE)
    for i, point in enumerate(points):
        if i % 10 == 7:
            del point.payload["metadata"]["lang"]  # type: ignore[attr-defined]
    return points
