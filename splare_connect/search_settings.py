"""How a collection is searched by default: the settings kept with it, and where they came from.

Retrieval quality moves with the query's top-k, plain sparse or hybrid, the fusion and its
weights and RRF ``k``, and the best choice differs between collections and languages. So a
collection keeps its own choice in its spec (``CollectionSpec.search``,
:func:`splare_connect.backends.settings.keep_search_settings`): the
:class:`~splare_connect.retriever.Retriever`, ``splare-connect search`` and ``serve`` use it
whenever a call does not say otherwise, and an explicit argument always wins. These are
search-time settings only: they never change the encoder's fingerprint, so a collection
accepts the same model at any of them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from splare_connect.choices import Fusion
from splare_connect.errors import ConfigError

__all__ = ["NO_FUSION", "ResolvedSearch", "SearchSettings", "check_count", "check_weights"]

NO_FUSION = "none"  # ``hybrid="none"``: plain sparse, even where the collection's setting is a hybrid
DEFAULT_RRF_K = 60
EQUAL_WEIGHTS = (1.0, 1.0)


def check_count(value: Any, name: str) -> int:
    """``value`` if it is a whole number of at least 1 (not a bool).

    Raises:
        ConfigError: Naming ``name`` and the value.
    """
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"{name} must be a whole number of at least 1, got {value!r}")
    return value


def check_weights(weights: Any, name: str) -> tuple[float, float]:
    """``(sparse, dense)`` fusion weights as floats: two finite, non-negative numbers, not both 0.

    Raises:
        ConfigError: Naming ``name`` and the value.
    """
    try:
        pair = tuple(float(w) for w in weights)
    except (TypeError, ValueError):
        pair = ()
    if len(pair) != 2 or any(w < 0 or w != w or w == float("inf") for w in pair) or not any(pair):
        raise ConfigError(f"{name} must be two non-negative numbers, not both 0 (sparse, dense): {weights!r}")
    return pair  # type: ignore[return-value]  # two floats, checked above


@dataclass(frozen=True)
class ResolvedSearch:
    """What one search runs: each option from the call, else the collection's setting, else the default."""

    fusion: Fusion | None
    weights: tuple[float, float]
    rrf_k: int
    query_top_k: int | None  # None: the model's


@dataclass(frozen=True)
class SearchSettings:
    """A collection's default search settings; every field None means "the built-in default".

    Attributes:
        query_top_k: Query weights kept (None: the model's ``query_top_k``).
        hybrid: The fusion with the dense ranking (``"rrf"``, ``"dbsf"``, ``"weighted"``),
            ``"none"`` for plain sparse, or None (plain sparse unless a dense query is given).
        weights: ``(sparse, dense)`` fusion weights (None: equal).
        rrf_k: RRF's rank constant (None: 60).
        using: The app's dense field a hybrid fuses with (an attached collection's, whose
            query vectors the caller passes as ``dense=``); None: the collection's own.
        source: Where the choice came from, in words (``"tune, 2026-12-07, 40 labelled
            queries"``, ``"set by hand"``), shown by ``collections info``.
        measured: What the choice was measured to give, for the record (free-form, JSON).
    """

    query_top_k: int | None = None
    hybrid: str | None = None
    weights: tuple[float, float] | None = None
    rrf_k: int | None = None
    using: str | None = None
    source: str = "set by hand"
    measured: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.query_top_k is not None:
            check_count(self.query_top_k, "search setting query_top_k")
        if self.hybrid is not None and self.hybrid != NO_FUSION:
            try:
                object.__setattr__(self, "hybrid", str(Fusion(self.hybrid)))
            except ValueError:
                choices = ", ".join([*(str(f) for f in Fusion), "none"])
                raise ConfigError(f"search setting hybrid must be one of {choices}, got {self.hybrid!r}") from None
        if self.weights is not None:
            object.__setattr__(self, "weights", check_weights(self.weights, "search setting weights"))
        if self.rrf_k is not None:
            check_count(self.rrf_k, "search setting rrf_k")

    @property
    def fusion(self) -> Fusion | None:
        """The fusion to run, or None for plain sparse."""
        return None if self.hybrid in (None, NO_FUSION) else Fusion(self.hybrid)

    def resolve(
        self,
        hybrid: Fusion | str | None,
        weights: tuple[float, float] | None,
        rrf_k: int | None,
        query_top_k: int | None,
        *,
        dense_given: bool,
        own_dense: bool,
    ) -> ResolvedSearch:
        """The options of one search: the call's where given, else these settings, else the defaults.

        ``hybrid="none"`` is plain sparse whatever the setting. With no fusion asked for, the
        setting's fusion runs where this search has a dense vector: the caller's
        (``dense_given``), or the collection's own (``own_dense``); a setting that fuses
        with an app's vectors can't apply to a query without one, which then searches
        sparse. A caller's dense vector with no fusion asked or kept fuses by RRF.
        """
        if hybrid == NO_FUSION:
            fusion = None
        elif hybrid is not None:
            fusion = Fusion(hybrid)
        else:
            kept = self.fusion if dense_given or own_dense else None
            fusion = kept or (Fusion.RRF if dense_given else None)
        chosen_k = query_top_k if query_top_k is not None else self.query_top_k
        return ResolvedSearch(
            fusion=fusion,
            weights=tuple(weights) if weights is not None else (self.weights or EQUAL_WEIGHTS),  # type: ignore[arg-type]
            rrf_k=rrf_k if rrf_k is not None else (self.rrf_k or DEFAULT_RRF_K),
            query_top_k=None if chosen_k is None else check_count(chosen_k, "query_top_k"),
        )

    def with_source(self, source: str, measured: Mapping[str, Any] | None = None) -> SearchSettings:
        return replace(self, source=source, measured=dict(measured or {}))

    def to_dict(self) -> dict[str, Any]:
        """JSON form, kept in the collection's spec."""
        return {
            "query_top_k": self.query_top_k,
            "hybrid": self.hybrid,
            "weights": None if self.weights is None else list(self.weights),
            "rrf_k": self.rrf_k,
            "using": self.using,
            "source": self.source,
            "measured": dict(self.measured),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SearchSettings:
        """Inverse of :meth:`to_dict`.

        Raises:
            ConfigError: A stored value that is not a valid setting (named).
        """
        weights = data.get("weights")
        return cls(
            query_top_k=data.get("query_top_k"),
            hybrid=data.get("hybrid"),
            weights=None if weights is None else (float(weights[0]), float(weights[1])),
            rrf_k=data.get("rrf_k"),
            using=None if data.get("using") is None else str(data["using"]),
            source=str(data.get("source", "")),
            measured=dict(data.get("measured") or {}),
        )

    def describe(self) -> str:
        """One line for ``collections info``: the settings that differ from the defaults."""
        parts = []
        if self.query_top_k is not None:
            parts.append(f"query top-k {self.query_top_k}")
        parts.append("sparse" if self.fusion is None else f"hybrid {self.fusion}")
        if self.weights is not None:
            parts.append(f"weights {self.weights[0]:g}/{self.weights[1]:g}")
        if self.rrf_k is not None:
            parts.append(f"RRF k {self.rrf_k}")
        if self.using is not None:
            parts.append(f"with the app's {self.using!r} vectors")
        return ", ".join(parts) + (f" ({self.source})" if self.source else "")
