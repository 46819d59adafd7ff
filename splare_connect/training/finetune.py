"""SPLARE fine-tuning: LoRA on the backbone, SAE frozen, distilled from a dense teacher.

For each step: a batch of (query, relevant document) pairs, plus hard negatives that the
teacher ranks high, plus every other document of the batch (in-batch negatives). The
loss is

    KL( softmax(teacher / T) || softmax(student) )      over each query's candidates
  + lambda_q * FLOPS(queries) + lambda_d * FLOPS(documents)
  + lambda_dense * (1 - cos(student dense, teacher dense))
  + lambda_parallel * KL over a batch of parallel text (optional)
  + lambda_labels * cross-entropy of the labelled document among the candidates (optional)
  + lambda_dense_labels * the same, scored by the student's dense embedding (optional;
        optionally only for some languages' queries)
  + lambda_dense_from_sparse * KL( softmax(student) || softmax(student dense) )  (optional;
        optionally only for some languages' queries, or where sparse ranks the labelled
        document higher)
  + lambda_sparse_from_dense * KL( softmax(student dense) || softmax(student) )  (optional)

where the student score is the dot product of top-k pruned SAE-latent vectors (the
encoder's own ``forward`` and the inference pruning, ``pooling.top_k_weights``), FLOPS
is ``sum_j (mean_i w_ij)^2`` (SPLADE's sparsity regulariser), and the teacher is the
unmodified backbone's dense embedding (for the default model: multilingual-e5-small).
The last term keeps the fine-tuned backbone's own dense embedding close to the
teacher's, so one forward pass still yields both vectors for hybrid search. The
parallel-text term (Debian's message catalogs, see ``parallel_text``) is translation
distillation: a translated message, encoded as a query, should rank the batch's English
messages as the teacher ranks them for the English original, which teaches other
languages to use English's features.
"""

from __future__ import annotations

import json
import logging
import random
import shutil
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import torch.nn.functional as F  # noqa: N812

from splare_connect.encoding.inputs import Role
from splare_connect.encoding.pooling import top_k_weights
from splare_connect.errors import ConfigError, SplareError
from splare_connect.training.config import TrainConfig
from splare_connect.training.parallel_text import ParallelPair, normalize, read_message_catalogs, require_polib

if TYPE_CHECKING:
    from splare_connect.encoding.encoder import SplareEncoder

LOGGER = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainingPair:
    """A query and its document's row in the training corpus (all sources' documents in a row)."""

    query: str
    doc_index: int
    lang: str
    source: int = 0


@dataclass(frozen=True)
class TrainingData:
    """Every source's pairs and documents, indexed as one corpus.

    Hard negatives are mined within each pair's own source: a package description is no
    negative for a man-page query, it is simply another genre. Sources reading the same
    dataset share its rows, so a document is never its own copy's negative in a batch.
    """

    pairs: list[TrainingPair]
    doc_texts: list[str]
    teacher_docs: np.ndarray
    teacher_queries: np.ndarray
    negatives: list[list[int]]
    evaluation_queries: list[str]


def load_training_data(encoder: SplareEncoder, config: TrainConfig, cache: Path) -> TrainingData:
    """Read every source, keep each source's pairs clear of every source's evaluation queries,
    and compute the teacher's embeddings (documents cached, shared with ``eval``) and
    negatives. ``encoder`` must still be the unmodified base model: it is the teacher."""
    from splare_connect.evaluation.corpus_cache import encode_corpus
    from splare_connect.evaluation.dataset import load_beir

    datasets = [load_beir(source.dataset) for source in config.training_sources]
    evaluation_queries = [
        text for dataset in datasets for query_set in dataset.query_sets for text in query_set.queries.values()
    ]
    pairs: list[TrainingPair] = []
    doc_texts: list[str] = []
    teacher_blocks: list[np.ndarray] = []
    query_blocks: list[np.ndarray] = []
    negatives: list[list[int]] = []
    corpora: dict[Path, tuple[int, np.ndarray]] = {}  # row offset, teacher embeddings: one copy per dataset
    for number, (source, dataset) in enumerate(zip(config.training_sources, datasets, strict=True)):
        doc_index = {doc_id: i for i, doc_id in enumerate(dataset.doc_ids)}
        own = load_pairs(Path(source.pairs), doc_index, exclude=evaluation_queries)
        if source.languages:
            own = [p for p in own if p.lang in source.languages]
            if not own:
                raise ConfigError(f"{source.pairs}: no usable training pairs in {', '.join(source.languages)}")
        key = Path(source.dataset).resolve()
        if key not in corpora:
            corpus = encode_corpus(encoder, dataset.doc_ids, dataset.doc_texts, cache)
            assert corpus.dense is not None
            corpora[key] = (len(doc_texts), corpus.dense)
            doc_texts += dataset.doc_texts
            teacher_blocks.append(corpus.dense)
        offset, corpus_dense = corpora[key]
        own_queries = encoder.encode([p.query for p in own], role="query", dense=True, batch_size=64).dense
        assert own_queries is not None
        mined = mine_hard_negatives(own_queries, corpus_dense, [p.doc_index for p in own], config.mine_depth)
        pairs += [replace(p, doc_index=p.doc_index + offset, source=number) for p in own]
        negatives += [[d + offset for d in row] for row in mined]
        query_blocks.append(own_queries)
    return TrainingData(
        pairs, doc_texts, np.concatenate(teacher_blocks), np.concatenate(query_blocks), negatives, evaluation_queries
    )


def load_pairs(pairs_file: Path, doc_index: dict[str, int], exclude: Iterable[str] = ()) -> list[TrainingPair]:
    """Training pairs whose document is in the corpus and whose query is not an evaluation query.

    Pairs pointing outside the corpus are reported and dropped. So are pairs whose query text
    equals (after :func:`normalize`) a text in ``exclude``, the evaluation queries: alias pages
    share their descriptions across splits (``egrep`` in train, ``grep`` in dev: "print lines
    that match patterns"), and training on such a pair would teach the model a dev query.
    """
    excluded = {normalize(text) for text in exclude}
    pairs, missing, held_out = [], 0, 0
    with pairs_file.open(encoding="utf-8") as lines:
        for line in lines:
            if not line.strip():
                continue
            record = json.loads(line)
            if record["doc_id"] not in doc_index:
                missing += 1
                continue
            if normalize(record["query"]) in excluded:
                held_out += 1
                continue
            pairs.append(TrainingPair(record["query"], doc_index[record["doc_id"]], record.get("lang", "")))
    if missing:
        LOGGER.warning("%d training pairs point to documents outside the corpus and were dropped", missing)
    if held_out:
        LOGGER.warning("%d training pairs were left out: their query is also an evaluation query", held_out)
    if not pairs:
        raise ConfigError(f"{pairs_file}: no usable training pairs")
    return pairs


def student_vectors(
    encoder: SplareEncoder, texts: list[str], role: Role, top_k: int | None, *, max_length: int | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Differentiable encoding: ``(pruned sparse weights (n, d_sae), dense embeddings (n, hidden))``.

    The encoder's own batching and :meth:`~splare_connect.encoding.encoder.SplareEncoder.forward`,
    with gradients on, then the inference pruning rule
    (:func:`~splare_connect.encoding.pooling.top_k_weights`): the student is scored on the
    vectors it will store. Rows are in ``texts`` order.

    Args:
        encoder: The encoder being fine-tuned (it needs a dense embedding).
        texts: One batch of texts.
        role: ``"query"`` or ``"document"``.
        top_k: Weights kept per text.
        max_length: Token window for this batch (shorter than the encoder's saves
            time in training); ``None`` for the encoder's window.
    """
    [batch] = list(encoder.iter_batches(texts, role=role, batch_size=len(texts), max_length=max_length))
    order = torch.as_tensor(np.argsort(batch.positions), device=encoder.device)
    pooled, dense = encoder.forward(batch)
    if dense is None:
        raise ConfigError("fine-tuning distils into the model's dense embedding: the model needs dense_pooling")
    return top_k_weights(pooled, top_k)[order], dense[order]


def flops(weights: torch.Tensor) -> torch.Tensor:
    """SPLADE's FLOPS regulariser: ``sum_j (mean_i w_ij)^2``."""
    return (weights.abs().mean(dim=0) ** 2).sum()


def distillation(student: torch.Tensor, teacher_logits: torch.Tensor, rows: torch.Tensor | None = None) -> torch.Tensor:
    """``KL(softmax(teacher) || softmax(student))`` over each row's candidates, batch mean.

    ``rows`` (one 0/1 weight per query, optional) keeps only some queries' terms; the mean
    stays over the whole batch, so a term that applies to fewer queries weighs less.
    """
    per_row = F.kl_div(
        F.log_softmax(student, dim=1), F.log_softmax(teacher_logits, dim=1), log_target=True, reduction="none"
    ).sum(dim=1)
    return _mean_over_batch(per_row, rows)


def labelled_loss(scores: torch.Tensor, positives: torch.Tensor, rows: torch.Tensor | None = None) -> torch.Tensor:
    """Cross-entropy of each query's labelled document among its candidates, batch mean.

    ``rows`` keeps only some queries' terms, as in ``distillation``: the mean stays over the
    whole batch.
    """
    return _mean_over_batch(F.cross_entropy(scores, positives, reduction="none"), rows)


def _mean_over_batch(per_row: torch.Tensor, rows: torch.Tensor | None) -> torch.Tensor:
    """The batch mean of per-query terms, those outside ``rows`` (0/1 weights) counted as 0."""
    return (per_row if rows is None else per_row * rows).mean()


def sparse_leads(sparse: torch.Tensor, dense: torch.Tensor, positives: torch.Tensor) -> torch.Tensor:
    """1 for each query whose labelled document the sparse scores give a higher probability
    among its candidates than the dense scores do, else 0 (no gradient)."""
    with torch.no_grad():
        rows = torch.arange(len(positives), device=sparse.device)
        sparse_p = F.log_softmax(sparse, dim=1)[rows, positives]
        dense_p = F.log_softmax(dense, dim=1)[rows, positives]
        return (sparse_p > dense_p).float()


@dataclass(frozen=True)
class ParallelSet:
    """Catalog pairs with the teacher's dense embeddings of their English side."""

    translations: list[str]
    english: list[str]
    langs: list[str]
    teacher_as_query: torch.Tensor
    teacher_as_document: torch.Tensor


def load_parallel_set(encoder: SplareEncoder, config: TrainConfig, exclude: list[str]) -> ParallelSet | None:
    """Draw the configured catalog pairs and embed their English side with the (frozen) teacher."""
    if not config.parallel_languages:
        return None
    pairs = read_message_catalogs(
        config.parallel_languages, locale_dir=Path(config.parallel_locale_dir), exclude=exclude
    )
    by_lang: dict[str, list[ParallelPair]] = {}
    for pair in pairs:
        by_lang.setdefault(pair.lang, []).append(pair)
    drawn = [
        pair
        for lang in sorted(by_lang)
        for pair in random.sample(by_lang[lang], min(config.parallel_pairs_per_language, len(by_lang[lang])))
    ]
    if not drawn:
        raise ConfigError(f"no message catalogs for {list(config.parallel_languages)} in {config.parallel_locale_dir}")
    english = [pair.english for pair in drawn]
    as_query = encoder.encode(english, role="query", dense=True, batch_size=64).dense
    as_document = encoder.encode(english, role="document", dense=True, batch_size=64).dense
    assert as_query is not None and as_document is not None
    LOGGER.info("parallel text: %d catalog pairs (%s)", len(drawn), ", ".join(sorted(by_lang)))
    return ParallelSet(
        translations=[pair.translation for pair in drawn],
        english=english,
        langs=[pair.lang for pair in drawn],
        teacher_as_query=torch.from_numpy(as_query).to(encoder.device),
        teacher_as_document=torch.from_numpy(as_document).to(encoder.device),
    )


def parallel_loss(
    encoder: SplareEncoder,
    parallel: ParallelSet,
    chosen: list[int],
    temperature: float,
    *,
    max_length: int | None = None,
) -> torch.Tensor:
    """Each translation, as a query, should rank the batch's English messages (as documents)
    the way the teacher ranks them for the English original (``max_length`` as in
    :func:`student_vectors`)."""
    query_weights, _ = student_vectors(
        encoder, [parallel.translations[i] for i in chosen], "query", encoder.config.query_top_k, max_length=max_length
    )
    doc_weights, _ = student_vectors(
        encoder, [parallel.english[i] for i in chosen], "document", encoder.config.document_top_k, max_length=max_length
    )
    teacher = parallel.teacher_as_query[chosen] @ parallel.teacher_as_document[chosen].T / temperature
    return distillation(query_weights @ doc_weights.T, teacher)


def mine_hard_negatives(
    query_dense: np.ndarray, doc_dense: np.ndarray, positives: list[int], depth: int
) -> list[list[int]]:
    """For each query, the teacher's top ``depth`` documents other than its positive."""
    scores = query_dense @ doc_dense.T
    top = np.argsort(-scores, axis=1)[:, : depth + 1]
    return [[int(d) for d in row if d != positive][:depth] for row, positive in zip(top, positives, strict=True)]


def train(config: TrainConfig, *, on_step: Callable[[int, dict[str, float]], None] | None = None) -> Path:
    """Fine-tune and write a model directory (the base model's files + ``adapter/``).

    Returns:
        The output model directory, loadable with ``SplareEncoder.from_pretrained``.
    """
    from peft import LoraConfig, PeftModel, get_peft_model

    from splare_connect.encoding.config import EncoderConfig
    from splare_connect.encoding.encoder import SplareEncoder
    from splare_connect.models import cache_dir, resolve_model
    from splare_connect.models.registry import ZERO_SHOT_MODEL

    if config.parallel_languages:
        require_polib()  # before minutes of encoding, not after

    random.seed(config.seed)
    torch.manual_seed(config.seed)
    base_dir = resolve_model(config.base_model or ZERO_SHOT_MODEL)
    base_config = EncoderConfig.load(base_dir)
    if base_config.lora is not None:
        raise ConfigError(f"{base_dir} already has a LoRA adapter; start from its base model")
    adapter_dir = initial_adapter_dir(config.initial_adapter, base_dir, base_config) if config.initial_adapter else None
    # torch at fp32, named: training runs the torch model with gradients, never the compiled graph.
    encoder = SplareEncoder.from_pretrained(base_dir, device=config.device, runtime="torch", precision="fp32")
    if not encoder.has_dense:
        raise ConfigError("the teacher is the model's own dense embedding: the base model needs dense_pooling")
    data = load_training_data(encoder, config, cache_dir() / "eval")
    evaluation_queries = data.evaluation_queries
    pairs, negatives = data.pairs, data.negatives
    teacher_docs, teacher_queries = data.teacher_docs, data.teacher_queries  # the unmodified backbone's
    parallel = load_parallel_set(encoder, config, exclude=evaluation_queries)

    if adapter_dir is not None:
        peft_model = PeftModel.from_pretrained(encoder.reader.model, adapter_dir, is_trainable=True)
    else:
        peft_model = get_peft_model(
            encoder.reader.model,
            LoraConfig(
                r=config.lora_rank,
                lora_alpha=config.lora_alpha,
                lora_dropout=config.lora_dropout,
                target_modules=list(config.lora_targets),
            ),
        )
    encoder.reader.model.train()
    parameters = [p for p in peft_model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(parameters, lr=config.learning_rate)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: learning_rate_factor(config, step))
    window = config.max_document_tokens  # per call: the encoder's own max_length is left as it is
    started = time.perf_counter()
    next_batch = _batch_sampler(
        [p.lang for p in pairs],
        config.batch_size,
        config.language_sampling_exponent,
        sources=[p.source for p in pairs],
        source_weights=[source.weight for source in config.training_sources],
    )
    next_parallel = _batch_sampler(parallel.langs, config.parallel_batch_size, True) if parallel else None
    for step in range(config.steps):
        chosen = next_batch()
        batch_pairs = [pairs[i] for i in chosen]
        doc_ids: list[int] = []
        for pair, index in zip(batch_pairs, chosen, strict=True):
            for doc in [pair.doc_index, *random.sample(negatives[index], config.hard_negatives)]:
                if doc not in doc_ids:
                    doc_ids.append(doc)
        query_weights, query_dense = student_vectors(
            encoder, [p.query for p in batch_pairs], "query", encoder.config.query_top_k, max_length=window
        )
        doc_texts = [data.doc_texts[d] for d in doc_ids]
        doc_weights, doc_dense = student_vectors(
            encoder, doc_texts, "document", encoder.config.document_top_k, max_length=window
        )
        student = query_weights @ doc_weights.T
        teacher_q = torch.from_numpy(teacher_queries[chosen]).to(student.device)
        teacher_d = torch.from_numpy(teacher_docs[doc_ids]).to(student.device)
        teacher = (teacher_q @ teacher_d.T) / config.teacher_temperature
        distill = distillation(student, teacher)
        regular = config.lambda_query * flops(query_weights) + config.lambda_document * flops(doc_weights)
        keep_dense = (1 - (query_dense * teacher_q).sum(1)).mean() + (1 - (doc_dense * teacher_d).sum(1)).mean()
        positives = torch.tensor([doc_ids.index(p.doc_index) for p in batch_pairs], device=student.device)
        labelled = labelled_loss(student, positives)
        dense_scores = (query_dense @ doc_dense.T) / config.teacher_temperature
        dense_rows = _language_rows(config.dense_labels_languages, batch_pairs, student.device)
        dense_labelled = labelled_loss(dense_scores, positives, dense_rows)
        leads = sparse_leads(student, dense_scores, positives)
        dense_from_sparse = distillation(
            dense_scores, student.detach(), rows=_dense_from_sparse_rows(config, batch_pairs, leads)
        )
        sparse_from_dense = distillation(student, dense_scores.detach())
        loss = (
            distill
            + regular
            + config.lambda_dense * keep_dense
            + config.lambda_labels * labelled
            + config.lambda_dense_labels * dense_labelled
            + config.lambda_dense_from_sparse * dense_from_sparse
            + config.lambda_sparse_from_dense * sparse_from_dense
        )
        aligned = torch.zeros((), device=student.device)
        if parallel is not None and next_parallel is not None:
            aligned = parallel_loss(encoder, parallel, next_parallel(), config.teacher_temperature, max_length=window)
            loss = loss + config.lambda_parallel * aligned
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(parameters, 1.0)
        optimizer.step()
        schedule.step()
        with torch.no_grad():
            accuracy = float((student.argmax(1) == positives).float().mean())
        stats = {
            "loss": loss.item(),
            "kl": distill.item(),
            "flops": regular.item(),
            "dense": keep_dense.item(),
            "parallel": aligned.item(),
            "labels": labelled.item(),
            "dense_labels": dense_labelled.item(),
            "dense_from_sparse": dense_from_sparse.item(),
            "sparse_from_dense": sparse_from_dense.item(),
            "accuracy": accuracy,
            "sparse_leads": float(leads.mean()),
            "query_nnz": float((query_weights > 0).sum(1).float().mean()),
            "seconds": time.perf_counter() - started,
        }
        if on_step:
            on_step(step, stats)

    return _save(config, base_dir, base_config, peft_model, time.perf_counter() - started)


def learning_rate_factor(config: TrainConfig, step: int) -> float:
    """The share of ``learning_rate`` used at ``step`` (0-based): a linear warm-up over the
    first tenth of the steps, then constant or, with ``learning_rate_decay="linear"``, falling
    in equal steps to nearly 0 at the last step."""
    warm_up = max(1, config.steps // 10)
    if step < warm_up or config.learning_rate_decay == "constant":
        return min(1.0, (step + 1) / warm_up)
    return max(0.0, (config.steps - step) / (config.steps - warm_up + 1))


def _dense_from_sparse_rows(
    config: TrainConfig, batch_pairs: list[TrainingPair], leads: torch.Tensor
) -> torch.Tensor | None:
    """Which queries the sparse-into-dense term applies to (``None``: all of them)."""
    rows = leads if config.dense_from_sparse_where_sparse_leads else None
    in_language = _language_rows(config.dense_from_sparse_languages, batch_pairs, leads.device)
    if in_language is not None:
        rows = in_language if rows is None else rows * in_language
    return rows


def _language_rows(
    languages: tuple[str, ...], batch_pairs: list[TrainingPair], device: torch.device | str = "cpu"
) -> torch.Tensor | None:
    """1 for each query in one of ``languages``, else 0; ``None`` (all queries) when empty."""
    if not languages:
        return None
    chosen = set(languages)
    return torch.tensor([float(p.lang in chosen) for p in batch_pairs], device=device)


def initial_adapter_dir(model: str, base_dir: Path, base_config: Any) -> Path:
    """The LoRA adapter directory of the fine-tuned ``model`` that training continues from.

    Raises:
        ConfigError: ``model`` has no adapter, or it was fine-tuned over another backbone or
            SAE than the base model (its adapter would not fit the weights it is put on).
    """
    from splare_connect.encoding.config import EncoderConfig
    from splare_connect.models import resolve_model

    try:
        model_dir = resolve_model(model)
        model_config = EncoderConfig.load(model_dir)
    except SplareError as error:
        raise ConfigError(f"initial_adapter: {error}") from None
    if model_config.lora is None:
        raise ConfigError(f"initial_adapter: {model} has no LoRA adapter to continue from")

    def located(directory: Path, location: str) -> Path:
        return (directory / location).resolve()  # an absolute location stays as it is

    same_base = located(model_dir, model_config.backbone) == located(base_dir, base_config.backbone) and located(
        model_dir, model_config.sae
    ) == located(base_dir, base_config.sae)
    if not same_base:
        raise ConfigError(
            f"initial_adapter: {model} was fine-tuned over backbone {located(model_dir, model_config.backbone)}, "
            f"not the base model's {located(base_dir, base_config.backbone)} (or over another SAE)"
        )
    return located(model_dir, model_config.lora)


def _batch_sampler(
    languages: list[str],
    batch_size: int,
    sampling_exponent: float | None = None,
    *,
    sources: list[int] | None = None,
    source_weights: list[float] | None = None,
) -> Callable[[], list[int]]:
    """Returns a function giving each step's item indices (``languages[i]`` is item i's
    language, ``sources[i]`` its source): a shuffled pass over the items; or, with
    ``sampling_exponent``, each item's source drawn by ``source_weights`` and its language
    with probability proportional to (the source's items in that language) ** exponent.
    Per (source, language), items cycle through a shuffled pool."""
    by_language = sampling_exponent is not None
    sources = sources or [0] * len(languages)
    source_weights = source_weights or [1.0]
    pools: dict[tuple[int, str], list[int]] = {}
    for index, (source, lang) in enumerate(zip(sources, languages, strict=True)):
        pools.setdefault((source, lang) if by_language else (0, ""), []).append(index)
    for pool in pools.values():
        random.shuffle(pool)
    groups = sorted(pools)
    weights = [len(pools[group]) ** (sampling_exponent or 0.0) for group in groups]
    source_totals: dict[int, float] = {}
    for (source, _), weight in zip(groups, weights, strict=True):
        source_totals[source] = source_totals.get(source, 0.0) + weight
    if len(source_totals) > 1:  # one source: the weights as they are, so single-genre runs replay
        weights = [source_weights[s] * w / source_totals[s] for (s, _), w in zip(groups, weights, strict=True)]
    cursor = {group: 0 for group in groups}
    turn = 0

    def next_batch() -> list[int]:
        nonlocal turn
        chosen = []
        for _ in range(batch_size):
            if sampling_exponent is None:
                group = groups[turn % len(groups)]  # the one pool of a shuffled pass
            else:
                [group] = random.choices(groups, weights)
            turn += 1
            pool = pools[group]
            chosen.append(pool[cursor[group] % len(pool)])
            cursor[group] += 1
        return chosen

    return next_batch


def _save(config: TrainConfig, base_dir: Path, base_config: Any, peft_model: Any, seconds: float) -> Path:
    """Write the model directory: links to the base weights, the adapter, the config."""
    output = Path(config.output_dir)
    if output.exists():
        shutil.rmtree(output)
    output.mkdir(parents=True)
    peft_model.save_pretrained(output / "adapter", safe_serialization=True)
    fine_tuned = base_config.with_overrides(
        name=config.name,
        backbone=str((base_dir / base_config.backbone).resolve()),
        sae=str((base_dir / base_config.sae).resolve()),
        lora="adapter",
    )
    fine_tuned.save(output)
    (output / "training.json").write_text(
        json.dumps({"config": config.to_dict(), "seconds": round(seconds, 1)}, indent=2) + "\n", encoding="utf-8"
    )
    return output
