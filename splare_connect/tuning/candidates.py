"""The settings ``tune`` tries: query top-k, then plain sparse and each hybrid the engine offers.

Query top-k is chosen first on plain sparse (it decides the sparse side of every hybrid
too); the hybrids are then tried at that top-k, with a few weights where the fusion takes
them and a few RRF ``k`` values. A fusion the backend's record does not list is not tried,
and neither are weights on a fusion that takes none (Qdrant's DBSF, Milvus's RRF).
"""

from __future__ import annotations

from splare_connect.backends.descriptor import Capabilities
from splare_connect.choices import Fusion
from splare_connect.search_settings import NO_FUSION, SearchSettings

# Weights tried where a fusion takes them: equal, then leaning to either side.
WEIGHTS = ((1.0, 1.0), (1.0, 0.5), (0.5, 1.0))
RRF_KS = (60, 20)


def query_top_ks(model_top_k: int) -> list[int]:
    """Half, the model's own, and twice it (the model's first: ties go to it)."""
    return list(dict.fromkeys([model_top_k, max(1, model_top_k // 2), model_top_k * 2]))


def sparse_candidates(model_top_k: int) -> list[SearchSettings]:
    return [SearchSettings(query_top_k=k, hybrid=NO_FUSION) for k in query_top_ks(model_top_k)]


def hybrid_candidates(query_top_k: int, capabilities: Capabilities) -> list[SearchSettings]:
    """Every fusion the engine runs, with the weights and RRF ``k`` values it takes."""
    candidates = []
    for fusion in sorted(capabilities.fusions):
        weights = WEIGHTS if fusion in capabilities.weighted_fusions else WEIGHTS[:1]
        rrf_ks: tuple[int | None, ...] = RRF_KS if fusion == Fusion.RRF else (None,)
        for pair in weights:
            for rrf_k in rrf_ks:
                candidates.append(
                    SearchSettings(query_top_k=query_top_k, hybrid=str(fusion), weights=pair, rrf_k=rrf_k)
                )
    return candidates
