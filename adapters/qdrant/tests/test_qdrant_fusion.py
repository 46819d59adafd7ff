"""The evaluation harness's fusions against Qdrant's own."""

from __future__ import annotations

import numpy as np
import pytest
from qdrant_client.http import models
from qdrant_client.hybrid.fusion import distribution_based_score_fusion

from splare_connect.evaluation.systems import dbsf


def test_dbsf_fuses_as_qdrant_does() -> None:
    """The eval's DBSF against qdrant-client's own (what its local mode runs): the same fused
    scores, so the same ranking, on runs shaped like a sparse and a dense top-100."""
    generator = np.random.default_rng(7)
    docs = [f"d{i}" for i in range(150)]

    def run(scores: np.ndarray) -> dict[str, dict[str, float]]:
        picked = generator.choice(docs, len(scores), replace=False)
        return {"q": {str(d): float(s) for d, s in zip(picked, scores, strict=True)}}

    sparse, dense = run(generator.gamma(2, 3, 100)), run(generator.normal(0.8, 0.03, 100))
    fused = dbsf([sparse, dense], depth=150)["q"]
    expected = distribution_based_score_fusion(
        [[models.ScoredPoint(id=i, version=0, score=s) for i, s in run["q"].items()] for run in (sparse, dense)],
        limit=150,
    )
    assert len(fused) == len(expected) > 100
    assert fused == pytest.approx({point.id: point.score for point in expected}, abs=1e-9)
    assert list(fused)[:20] == [point.id for point in expected[:20]]
