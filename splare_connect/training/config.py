"""Training settings, read from a JSON file (``splare-connect train CONFIG``)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from splare_connect.config_files import read_settings, reject_unknown_keys
from splare_connect.errors import ConfigError

LEARNING_RATE_DECAYS = ("constant", "linear")


@dataclass(frozen=True)
class TrainingSource:
    """One genre of training data: a corpus and the (query, document) pairs into it.

    Args:
        dataset: BEIR-layout directory whose ``corpus.jsonl`` holds the documents the
            pairs point to; its evaluation queries are kept out of every source's pairs.
        pairs: JSONL of ``{"query", "doc_id", "lang"}`` training pairs.
        weight: Share of each batch's queries drawn from this source, relative to the other
            sources' weights (so a small genre is not drowned by a large one).
        languages: Only the pairs in these languages (all when empty): with the same
            dataset listed twice, one language can get a share of its own.
    """

    dataset: str
    pairs: str
    weight: float = 1.0
    languages: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not isinstance(self.languages, tuple) or not all(isinstance(lang, str) for lang in self.languages):
            raise ConfigError(f"training source {self.dataset}: 'languages' must be a list of language codes")


@dataclass(frozen=True)
class TrainConfig:
    """How to fine-tune an encoder the SPLARE way.

    Args:
        output_dir: Where the fine-tuned model directory is written.
        dataset / pairs: The training data when it is one genre (see ``TrainingSource``).
        sources: The training data when it is several genres; give either ``sources`` or
            ``dataset`` and ``pairs``.
        initial_adapter: A fine-tuned model (name or directory) over ``base_model`` whose LoRA
            adapter training continues from, instead of a fresh one; its rank, alpha and
            target modules then come from that adapter. The teacher stays the base model.
        base_model: Model name or directory to start from (the zero-shot model if omitted: the
            default model already carries an adapter).
        name: Name of the fine-tuned model.
        steps: Optimiser steps.
        batch_size: Queries per step.
        hard_negatives: Teacher-mined negatives per query (from its top ``mine_depth``).
        mine_depth: How deep in the teacher's ranking negatives are drawn.
        learning_rate: AdamW learning rate for the LoRA weights.
        learning_rate_decay: After the warm-up (the first tenth of the steps), ``"constant"``
            keeps the rate; ``"linear"`` lowers it to nearly 0 by the last step, so the weights a run
            ends with are not one noisy step of a full-rate walk (the usual schedule for
            fine-tuning transformers). Measured (v21, 200 steps): it did not narrow the
            seed-to-seed spread and cost English sparse 0.01-0.02 nDCG@10.
        lora_rank / lora_alpha / lora_dropout / lora_targets: The peft LoRA adapter.
        teacher_temperature: Teacher scores are cosine / this.
        lambda_query / lambda_document: FLOPS regularisation weights.
        lambda_dense: Weight of keeping the dense embedding at the teacher's (so one
            pass still yields a good dense vector for hybrid search).
        max_document_tokens: Documents are truncated to this many tokens in training.
        language_sampling_exponent: Each query's source is drawn by the sources' weights, then
            its language with probability proportional to (the source's pairs in that
            language) ** exponent; 1 is proportional, 0 even, 0.5 in between (English 46 % of
            the man-page pairs instead of 73 % or 20 %). ``None``: a shuffled pass over all
            pairs, sources and languages as they come.
        parallel_languages: Languages whose Debian message catalogs add parallel text
            (English message / translation pairs, see ``training.parallel_text``); empty: none.
        parallel_locale_dir: Where the catalogs live.
        parallel_pairs_per_language: Catalog pairs drawn (at random) per language.
        parallel_batch_size: Parallel pairs per step, beside the query batch.
        lambda_parallel: Weight of the parallel-text loss: each translation, encoded as a
            query, should score the batch's English messages as the teacher scores the
            English original against them.
        lambda_labels: Weight of a contrastive loss on the pairs' own labels: cross-entropy
            of the relevant document among each query's candidates (raw student scores).
            Distillation alone can at best copy the teacher; the labels let the student
            rank a page first where the teacher does not. 0 turns it off.
        lambda_dense_labels: Weight of the same label loss on the model's own dense
            embedding (cosine / ``teacher_temperature``). The hybrid fuses the sparse
            ranking with this embedding; where the labels lift only the sparse side, a
            weak dense ranking can pull the fused one below sparse alone. 0 turns it off.
        dense_labels_languages: Apply that term only to the queries in these languages (all
            when empty; the mean stays over the whole batch). Globally the term lifts dense
            past sparse in most languages before it moves Chinese (v13 to v15); this aims it
            at the languages whose dense side lags. Measured (v22, v23: 2.0 on Chinese, with
            and without Dutch): the lift still spreads to Japanese, Korean and Danish, and
            with ~30 Chinese queries a run the seed moves Chinese dense as much as the term.
        lambda_dense_from_sparse: Weight of distilling the sparse student's ranking of each
            query's candidates into the dense embedding (``KL(softmax(sparse) ||
            softmax(dense))``, sparse scores held fixed), meant to pull the hybrid's two parts
            together where they disagree. Measured (experiments/fine-tuning/runs.md, v16 and v18):
            it lifts the dense side in most languages, past sparse at 0.3, less at 0.1. 0
            turns it off.
        dense_from_sparse_where_sparse_leads: Apply that term only to the queries where the
            sparse student gives the labelled document a higher probability among the
            candidates than the dense embedding does: the dense side learns from sparse where
            it lags, and stops once it has caught up, meant to keep it from being pulled past
            sparse in languages where it already leads (v16: Korean, Czech, Danish, Russian).
            Measured (v19, at 0.3): it does not; dense still passed sparse in Danish, Korean
            and others. Sparse leads on about three in four training queries (``train``
            reports the share), so the gate seldom closes.
        dense_from_sparse_languages: Apply that term only to the queries in these languages
            (all when empty): for a language whose dense side lags its sparse one while the
            others' do not (Chinese in v11, v18, v19), the global term lifts dense past
            sparse elsewhere before it closes that language's gap. Measured (v20, 1.0 on
            Chinese queries, Chinese oversampled): Chinese dense did not rise.
        lambda_sparse_from_dense: The other direction: the dense embedding's ranking (held
            fixed) distilled into the sparse student, beside the frozen teacher's. With
            both, each part of the hybrid learns from the other (mutual distillation). 0
            turns it off.
        seed: Random seed (sampling and LoRA initialisation).
        device: ``"cpu"``, ``"cuda"``; default: CUDA when available.
    """

    output_dir: str
    dataset: str | None = None
    pairs: str | None = None
    sources: tuple[TrainingSource, ...] = ()
    base_model: str | None = None
    initial_adapter: str | None = None
    name: str = "splare-finetuned"
    steps: int = 200
    batch_size: int = 16
    hard_negatives: int = 3
    mine_depth: int = 30
    learning_rate: float = 3e-4
    learning_rate_decay: str = "constant"
    lora_rank: int = 8
    lora_alpha: int = 16
    lora_dropout: float = 0.05
    lora_targets: tuple[str, ...] = ("query", "key", "value", "dense")
    teacher_temperature: float = 0.02
    lambda_query: float = 1e-3
    lambda_document: float = 3e-4
    lambda_dense: float = 1.0
    max_document_tokens: int = 256
    language_sampling_exponent: float | None = None
    parallel_languages: tuple[str, ...] = ()
    parallel_locale_dir: str = "/usr/share/locale"
    parallel_pairs_per_language: int = 2000
    parallel_batch_size: int = 16
    lambda_parallel: float = 1.0
    lambda_labels: float = 0.0
    lambda_dense_labels: float = 0.0
    dense_labels_languages: tuple[str, ...] = ()
    lambda_dense_from_sparse: float = 0.0
    dense_from_sparse_where_sparse_leads: bool = False
    dense_from_sparse_languages: tuple[str, ...] = ()
    lambda_sparse_from_dense: float = 0.0
    seed: int = 13
    device: str | None = None

    @classmethod
    def load(cls, path: str | Path) -> TrainConfig:
        """Read a JSON config; unknown keys are an error naming them."""
        file = Path(path)
        data = read_settings(file, cls)
        for key in ("lora_targets", "parallel_languages"):
            if key in data:
                data[key] = tuple(data[key])
        for key in ("dense_labels_languages", "dense_from_sparse_languages"):
            if key in data:
                data[key] = _languages(data[key], f"{file}: {key}")
        base = file.parent

        def located(path: str) -> str:
            return path if Path(path).is_absolute() else str(base / path)

        for key in ("dataset", "pairs", "output_dir"):
            if key in data:
                data[key] = located(data[key])
        if data.get("initial_adapter") and (base / data["initial_adapter"]).is_dir():
            data["initial_adapter"] = located(data["initial_adapter"])  # a directory; else a model name
        if "sources" in data:
            sources = []
            for number, source in enumerate(data["sources"], 1):
                reject_unknown_keys(TrainingSource, source, f"{file}: source {number}")
                if not {"dataset", "pairs"} <= set(source):
                    raise ConfigError(
                        f"{file}: source {number} needs 'dataset' and 'pairs' (and optionally 'weight', 'languages')"
                    )
                sources.append(
                    TrainingSource(
                        located(source["dataset"]),
                        located(source["pairs"]),
                        float(source.get("weight", 1.0)),
                        _languages(source.get("languages", []), f"{file}: source {number}"),
                    )
                )
            data["sources"] = tuple(sources)
        return cls(**data)

    def __post_init__(self) -> None:
        single = self.dataset is not None or self.pairs is not None
        if single == bool(self.sources) or (single and (self.dataset is None or self.pairs is None)):
            raise ConfigError("training data: give either 'dataset' and 'pairs', or 'sources'")
        if any(source.weight <= 0 for source in self.sources):
            raise ConfigError("training data: every source's 'weight' must be above 0")
        if self.learning_rate_decay not in LEARNING_RATE_DECAYS:
            raise ConfigError(
                f"learning_rate_decay {self.learning_rate_decay!r}: expected one of {', '.join(LEARNING_RATE_DECAYS)}"
            )

    @property
    def training_sources(self) -> tuple[TrainingSource, ...]:
        """The training data as sources, whichever way the config gave it."""
        if self.sources:
            return self.sources
        assert self.dataset is not None and self.pairs is not None
        return (TrainingSource(self.dataset, self.pairs),)

    def to_dict(self) -> dict[str, Any]:
        """The config as JSON values (every tuple field, nested ones included, as a list)."""
        return _as_json(asdict(self))


def _as_json(value: Any) -> Any:
    """``value`` with its tuples turned into lists, at any depth, as ``json.loads`` would give them back."""
    if isinstance(value, dict):
        return {key: _as_json(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_as_json(item) for item in value]
    return value


def _languages(value: Any, where: str) -> tuple[str, ...]:
    """Language codes from JSON (a source's ``languages``, or the languages a loss term is limited
    to): a list of codes (a bare string would read as letters)."""
    if not isinstance(value, list) or not all(isinstance(lang, str) for lang in value):
        raise ConfigError(f"{where}: 'languages' must be a list of language codes, e.g. [\"en\"]")
    return tuple(value)
