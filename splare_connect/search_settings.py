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

__all__ = ["NO_FUSION", "ResolvedSearch", "SearchSettings"]

NO_FUSION = "none"  # ``hybrid="none"``: plain sparse, even where the collection's setting is a hybrid
DEFAULT_RRF_K = 60
EQUAL_WEIGHTS = (1.0, 1.0)


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
        if self.query_top_k is not None and (
            isinstance(self.query_top_k, bool) or not isinstance(self.query_top_k, int) or self.query_top_k < 1
        ):
            raise ConfigError(
                f"search setting query_top_k must be a whole number of at least 1, got {self.query_top_k!r}"
            )
        if self.hybrid is not None and self.hybrid != NO_FUSION:
            try:
                object.__setattr__(self, "hybrid", str(Fusion(self.hybrid)))
            except ValueError:
                choices = ", ".join([*(str(f) for f in Fusion), "none"])
                raise ConfigError(f"search setting hybrid must be one of {choices}, got {self.hybrid!r}") from None
        if self.weights is not None:
            weights = tuple(float(w) for w in self.weights)
            if len(weights) != 2 or any(w < 0 or w != w or w == float("inf") for w in weights) or not any(weights):
                raise ConfigError(
                    f"search setting weights must be two non-negative numbers, not both 0: {self.weights!r}"
                )
            object.__setattr__(self, "weights", weights)
        if self.rrf_k is not None and (
            isinstance(self.rrf_k, bool) or not isinstance(self.rrf_k, int) or self.rrf_k < 1
        ):
            raise ConfigError(f"search setting rrf_k must be a whole number of at least 1, got {self.rrf_k!r}")

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
    ) -> ResolvedSearch:
        """The options of one search: the call's where given, else these settings, else the defaults.

        A caller's own dense vector with no fusion asked for fuses by the setting's fusion,
        else RRF; ``hybrid="none"`` is plain sparse whatever the setting.
        """
        if hybrid == NO_FUSION:
            fusion = None
        elif hybrid is not None:
            fusion = Fusion(hybrid)
        else:
            fusion = self.fusion or (Fusion.RRF if dense_given else None)
        chosen_k = query_top_k if query_top_k is not None else self.query_top_k
        if chosen_k is not None and (isinstance(chosen_k, bool) or not isinstance(chosen_k, int) or chosen_k < 1):
            raise ConfigError(f"query_top_k must be a whole number of at least 1, got {chosen_k!r}")
        return ResolvedSearch(
            fusion=fusion,
            weights=tuple(weights) if weights is not None else (self.weights or EQUAL_WEIGHTS),  # type: ignore[arg-type]
            rrf_k=rrf_k if rrf_k is not None else (self.rrf_k or DEFAULT_RRF_K),
            query_top_k=chosen_k,
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
