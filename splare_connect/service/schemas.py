"""The service's request and response bodies, as pydantic models.

They are the API's contract: FastAPI validates requests against them (unknown fields
are refused, ``extra="forbid"``, so a misspelt option is an error rather than silently
ignored) and publishes them in ``/openapi.json``. Size limits that depend on the
server's settings (texts per request, characters per text) are checked after parsing,
in :mod:`splare_connect.service.limits`; the bounds here are the ones every server shares.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

Role = Literal["query", "document"]
# The collection names every backend accepts (the embedded Qdrant engine's rule): checked here, so a
# name the database would refuse is a 422 that says so, not a database failure.
COLLECTION_NAME = r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class EncodeRequest(_Strict):
    """``POST /encode``: texts to encode, as queries or documents."""

    texts: list[str] = Field(
        min_length=1, description="Texts to encode, in order (at most the server's max_texts, 256 by default)."
    )
    role: Role = Field("document", description="query or document: picks the model's prefix and pruning.")
    sparse: bool = Field(True, description="Return the sparse vectors.")
    dense: bool = Field(False, description="Return the dense embeddings (models that define one).")


class SparseVectorBody(BaseModel):
    """One sparse vector: latent ids in increasing order and their positive weights."""

    indices: list[int]
    values: list[float]


class EncodeResponse(BaseModel):
    """The vectors, in the order of the request's texts, and what identifies the model.

    A client that stores vectors should compare ``fingerprint_digest`` with the one its
    collection was built with: vectors from another model are meaningless there.
    """

    model: str = Field(description="The model's name.")
    fingerprint_digest: str = Field(description="The encoder fingerprint's digest: equal digests, equal vectors.")
    dim: int = Field(description="Width of the sparse vectors (the SAE's number of latents).")
    dense_dim: int | None = Field(description="Width of the dense embeddings, or null when the model has none.")
    sparse: list[SparseVectorBody] | None = Field(description="One vector per text, or null when not asked for.")
    dense: list[list[float]] | None = Field(description="One L2-normalised row per text, or null when not asked for.")
    truncated: list[bool] = Field(description="True where a text was longer than the model's window and cut.")


class SearchRequest(_Strict):
    """``POST /search``: one query against one collection."""

    query: str = Field(description="The query text (at most the server's max_query_chars, 2000 by default).")
    collection: str | None = Field(
        None,
        max_length=128,
        pattern=COLLECTION_NAME,
        description="Collection name (letters, digits, '_', '-', '.', starting with a letter or digit); "
        "default: the server's --collection.",
    )
    k: int = Field(10, ge=1, le=1000, description="Number of results.")
    filter: list[str] = Field(
        default_factory=list,
        max_length=64,
        description="Metadata conditions, ANDed, as the CLI's --filter: key=value, key!=value, key>=number, "
        "'key in a,b'.",
    )
    hybrid: Literal["rrf", "dbsf", "weighted", "none"] | None = Field(
        None,
        description="Fuse with the dense ranking (rrf, dbsf or weighted, where the backend runs it), or none for "
        "plain sparse; default: the collection's setting, else plain sparse.",
    )
    weights: tuple[float, float] | None = Field(
        None, description="(sparse, dense) fusion weights; default: the collection's setting, else equal."
    )
    rrf_k: int | None = Field(None, ge=1, le=10_000, description="RRF's k; default: the collection's, else 60.")
    query_top_k: int | None = Field(
        None, ge=1, le=100_000, description="Query weights kept; default: the collection's, else the model's."
    )
    explain: bool = Field(False, description="Return each hit's matched features and their contributions.")
    documents: bool = Field(False, description="One result per document (its best chunk), not per chunk.")


class FeatureBody(BaseModel):
    """One matched latent feature: its contribution to the score, and its label when the model has one."""

    feature: int
    weight: float
    label: str | None = None


class SearchHitBody(BaseModel):
    """One result, as :class:`splare_connect.retriever.SearchHit`."""

    id: str
    doc_id: str
    score: float
    text: str | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)
    chunk_index: int = 0
    features: list[FeatureBody] | None = None


class HealthResponse(BaseModel):
    """``GET /healthz``: the model served and whether the server takes requests."""

    status: Literal["ok", "starting"]
    ready: bool
    model: str
    fingerprint_digest: str
    dim: int
    dense_dim: int | None
    search: bool = Field(description="Whether /search is available (the server has a database).")
    runtime: str = Field(description="What runs the encoder: openvino (the compiled graph) or torch.")
    precision: str = Field(description="The encoder's arithmetic: fp32, bf16 (same vector space) or int8.")


class ErrorBody(BaseModel):
    """Every error: one line, no traceback, secrets masked."""

    detail: str
