from __future__ import annotations

import math

import numpy as np
import pytest

from splare_connect import SparseVector


def test_valid_vector_is_frozen_and_typed() -> None:
    vector = SparseVector(np.array([1, 5, 9]), np.array([0.5, 2.0, 1.0]), dim=10)
    assert vector.indices.dtype == np.uint32 and vector.values.dtype == np.float32
    assert vector.nnz == 3 and len(vector) == 3
    with pytest.raises(ValueError):
        vector.indices[0] = 3  # read-only array


@pytest.mark.parametrize(
    ("indices", "values", "message"),
    [
        ([1, 1], [0.5, 0.5], "strictly increasing"),
        ([5, 2], [0.5, 0.5], "strictly increasing"),
        ([1, 2], [0.5], "differ in length"),
        ([1, 2], [0.5, math.nan], "finite and > 0"),
        ([1, 2], [0.5, 0.0], "finite and > 0"),
        ([1, 2], [0.5, -1.0], "finite and > 0"),
        ([-1, 2], [0.5, 1.0], "uint32 range"),
        ([1, 2**32], [0.5, 1.0], "uint32 range"),
        ([1, 12], [0.5, 1.0], "dimension 10"),
    ],
)
def test_invalid_vectors_name_the_problem(indices: list[int], values: list[float], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        SparseVector(np.array(indices), np.array(values), dim=10)


def test_clean_sorts_merges_and_drops_zeros() -> None:
    vector = SparseVector.clean([7, 3, 7, 1], [0.5, 1.0, 2.0, 0.0], dim=10)
    assert vector.to_dict() == {3: 1.0, 7: 2.0}
    summed = SparseVector.clean([7, 3, 7], [0.5, 1.0, 2.0], duplicates="sum")
    assert summed.to_dict() == {3: 1.0, 7: 2.5}
    with pytest.raises(ValueError, match="appears more than once"):
        SparseVector.clean([7, 7], [0.5, 1.0], duplicates="error")
    with pytest.raises(ValueError, match="finite"):
        SparseVector.clean([1], [math.nan])
    with pytest.raises(ValueError, match="differ in length"):
        SparseVector.clean([1, 2], [1.0])
    assert SparseVector.clean((i for i in [2, 1]), (v for v in [1.0, 3.0])).to_dict() == {1: 3.0, 2: 1.0}


def test_top_k_dot_and_contributions() -> None:
    doc = SparseVector.from_pairs({1: 1.0, 4: 3.0, 8: 2.0, 9: 2.0})
    assert doc.top_k(2).to_dict() == {4: 3.0, 8: 2.0}  # tie at 2.0 broken by lower index
    assert doc.top_k(None) is doc
    query = SparseVector.from_pairs({4: 0.5, 9: 1.0, 11: 7.0})
    assert doc.dot(query) == pytest.approx(3.0 * 0.5 + 2.0 * 1.0)
    assert doc.contributions(query) == [(9, 2.0), (4, 1.5)]
    assert SparseVector.empty(16).dot(query) == 0.0


def test_dense_round_trip_and_equality() -> None:
    vector = SparseVector.from_pairs({2: 0.25, 0: 1.5}, dim=4)
    assert vector.to_dense().tolist() == [1.5, 0.0, 0.25, 0.0]
    assert vector == SparseVector(np.array([0, 2]), np.array([1.5, 0.25]), dim=4)
    assert vector != SparseVector(np.array([0, 2]), np.array([1.5, 0.25]), dim=5)
    assert hash(vector) == hash(SparseVector.from_pairs({0: 1.5, 2: 0.25}, dim=4))
