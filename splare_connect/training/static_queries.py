"""Build a static query table (:class:`~splare_connect.encoding.static_queries.StaticQueryEncoder`)
from the full query encoder: a build step, with torch.

Units are the words of the training queries (and their tokenizer pieces, the fallback
for words the table will not know). Two tables:

- :func:`untrained_table`: each unit's row is the full query encoder's vector of the
  unit on its own, top ``query_top_k``.
- :func:`distill`: rows start there and are learned by gradient descent so that the
  max over a training query's rows matches the full encoder's vector of the whole
  query (squared error over all latents, a pull towards the starting rows as
  regularisation). Each row may use the latents of its isolated vector plus those the
  full encoder gives the training queries holding the unit (up to ``support`` per
  row). Words are swapped for their pieces at random (``piece_dropout``), so piece
  rows learn to stand in for unknown words.

Only training queries are read; queries equal to an evaluation query are dropped.

    python -m splare_connect.training.static_queries --pairs data/manpages/train/pairs.jsonl \
        --pairs data/debdesc/train/pairs.jsonl --exclude data/manpages data/debdesc \
        --catalog-languages de,fr,es,ru,ja,it,pt_BR,zh_CN,pl,nl,uk,cs,fi,da,ko \
        --documents data/manpages --ranking-weight 0.1 --epochs 5 --out DIR

writes DIR/untrained, DIR/distilled and DIR/distilled-ranking (default DIR: the model's
directory, ``static-queries``), and caches the full encoder's outputs in DIR/teacher.npz.
"""

from __future__ import annotations

import argparse
import hashlib
import itertools
import json
import logging
import random
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import tokenizers
import torch

from splare_connect.encoding.static_queries import StaticQueryEncoder, is_unspaced, words
from splare_connect.errors import ConfigError
from splare_connect.sparse_vector import SparseVector

if TYPE_CHECKING:
    from splare_connect.encoding.encoder import SplareEncoder

LOGGER = logging.getLogger(__name__)

__all__ = ["StaticTableConfig", "TeacherData", "distill", "read_training_queries", "teacher_data", "untrained_table"]


@dataclass(frozen=True)
class StaticTableConfig:
    """Distillation settings.

    Args:
        support: Latents a row may use.
        epochs: Passes over the training queries.
        batch_size: Queries per step.
        learning_rate: Adam's step size.
        anchor: Weight of the pull of each row towards its isolated vector.
        piece_dropout: Chance that a word's row is left out of a training query (its
            pieces stand in for it).
        pieces_with_words: Pool a word's piece rows with its own row (at query time
            too), not only in its place when it is unknown or dropped.
        min_weight: Learned weights below this are dropped from the table.
        held_out: Share of training queries kept aside to pick the best epoch.
        ranking_weight: Weight of the ranking term (with :class:`RankingData`): the
            squared error of each candidate document's score margin to the positive,
            static against full (margin-MSE over the batch's positives and hard
            negatives).
        negatives: Hard negatives drawn per query for the ranking term.
        seed: Seed of the batch order and the dropout.
    """

    support: int = 48
    epochs: int = 6
    batch_size: int = 128
    learning_rate: float = 0.02
    anchor: float = 0.1
    piece_dropout: float = 0.5
    pieces_with_words: bool = False
    min_weight: float = 0.02
    held_out: float = 0.05
    ranking_weight: float = 0.0
    negatives: int = 3
    seed: int = 0

    def __post_init__(self) -> None:
        if self.support <= 0 or self.epochs < 0 or self.batch_size <= 0 or self.learning_rate <= 0:
            raise ConfigError("support, batch_size and learning_rate must be positive, epochs not negative")
        if not 0 <= self.piece_dropout <= 1 or not 0 <= self.held_out < 1:
            raise ConfigError("piece_dropout must be in [0, 1] and held_out in [0, 1)")


@dataclass
class TeacherData:
    """What the full encoder says about the training queries and their units.

    Attributes:
        queries: The training queries.
        targets: The full encoder's vector of each query.
        vocabulary: Word -> unit number.
        pieces: Tokenizer piece id -> unit number (after the words).
        word_pieces: For each word, its pieces' unit numbers.
        isolated: Each unit's own vector (words, then pieces).
    """

    queries: list[str]
    targets: list[SparseVector]
    vocabulary: dict[str, int]
    pieces: dict[int, int]
    word_pieces: list[list[int]]
    isolated: list[SparseVector]


@dataclass
class RankingData:
    """Documents of the training pairs, as the full encoder encodes them, for the ranking term.

    Attributes:
        documents: scipy CSR ``(documents, dim)``.
        positives: Per training query (as :attr:`TeacherData.queries`), its relevant
            document's row, or -1 (a query without one, such as a catalog message).
        negatives: Per training query, the documents the full query ranks highest
            among the other training documents of its collection.
    """

    documents: Any
    positives: list[int]
    negatives: list[list[int]]


def read_training_queries(pairs_files: Iterable[Path], exclude: Iterable[str] = ()) -> list[str]:
    """Distinct queries of ``{"query", ...}`` JSONL files, in file order, minus ``exclude``."""
    held_out = set(exclude)
    seen: dict[str, None] = {}
    dropped = 0
    for file in pairs_files:
        with Path(file).open(encoding="utf-8") as lines:
            for line in lines:
                if not line.strip():
                    continue
                query = json.loads(line).get("query")
                if not isinstance(query, str) or not query.strip():
                    continue
                if query in held_out:
                    dropped += 1
                    continue
                seen.setdefault(query, None)
    if dropped:
        LOGGER.warning("%d training queries were left out: they are also evaluation queries", dropped)
    if not seen:
        raise ConfigError("no training queries found")
    return list(seen)


def catalog_queries(
    languages: Sequence[str], per_language: int, exclude: Iterable[str] = (), *, english: int = 0
) -> list[str]:
    """Short messages from the system's translated gettext catalogs, used as extra training
    queries: ``per_language`` translations per language, plus up to ``english`` of their
    English originals. They widen the table's vocabulary beyond the training queries (the
    full encoder gives each message its target vector, as for a query)."""
    from splare_connect.training.parallel_text import read_message_catalogs

    pairs = read_message_catalogs(
        languages, exclude=exclude, min_chars=12, max_chars=120, max_pairs_per_language=per_language
    )
    originals = list(dict.fromkeys(p.english for p in pairs))[:english]
    return list(dict.fromkeys([*(p.translation for p in pairs), *originals]))


def evaluation_queries(datasets: Iterable[Path]) -> set[str]:
    """Every query text of the datasets' query sets (``queries/*.jsonl``): kept out of training."""
    texts: set[str] = set()
    for root in datasets:
        for file in sorted(Path(root, "queries").glob("*.jsonl")):
            with file.open(encoding="utf-8") as lines:
                texts.update(json.loads(line)["text"] for line in lines if line.strip())
    return texts


def teacher_data(teacher: SplareEncoder, queries: Sequence[str], *, batch_size: int = 64) -> TeacherData:
    """Encode the training queries and each of their units (words and pieces) on its own."""
    counts = Counter(word for query in queries for word in words(query))
    vocabulary = {word: row for row, word in enumerate(sorted(counts))}
    backend = teacher.tokenizer.backend
    pieces: dict[int, int] = {}
    word_pieces: list[list[int]] = []
    for encoding in teacher.tokenizer.encode_batch(list(vocabulary), add_special_tokens=False):
        word_pieces.append([pieces.setdefault(p, len(vocabulary) + len(pieces)) for p in encoding.ids])
    piece_texts = [_piece_text(backend.id_to_token(p) or "") for p in pieces]
    LOGGER.info("%d queries, %d words, %d pieces", len(queries), len(vocabulary), len(pieces))
    targets = teacher.encode_queries(list(queries), batch_size=batch_size)
    isolated = teacher.encode_queries([*vocabulary, *piece_texts], batch_size=batch_size * 2)
    return TeacherData(list(queries), targets, vocabulary, pieces, word_pieces, isolated)


def _piece_text(token: str) -> str:
    """A piece as text to encode: SentencePiece's word-boundary mark as a space, trimmed."""
    return token.replace("\u2581", " ").strip()


def untrained_table(teacher: SplareEncoder, data: TeacherData) -> StaticQueryEncoder:
    """Each unit's row is its isolated vector."""
    return _table(teacher, data, data.isolated)


def distill(
    teacher: SplareEncoder,
    data: TeacherData,
    config: StaticTableConfig = StaticTableConfig(),
    *,
    ranking: RankingData | None = None,
    on_epoch: Callable[[int, float, float], None] | None = None,
) -> StaticQueryEncoder:
    """Learn the rows so that max-pooled static queries match the full encoder's vectors.

    Args:
        teacher: The full encoder (its fingerprint and tokenizer go with the table).
        data: From :func:`teacher_data`.
        config: Distillation settings.
        ranking: Training documents for the ranking term (used when
            ``config.ranking_weight`` is positive).
        on_epoch: Called with (epoch, training loss, held-out loss) after each epoch.
    """
    dim = teacher.dim
    rng = random.Random(config.seed)
    generator = torch.Generator().manual_seed(config.seed)
    n_units = len(data.isolated)
    units_of = [[data.vocabulary[w] for w in words(q)] for q in data.queries]
    piece_only = {unit for word, unit in data.vocabulary.items() if is_unspaced(word)}
    support, start = _support(data, units_of, config.support, dim)
    weights = torch.nn.Parameter(start.clone())
    anchor = start.clone()
    order = list(range(len(data.queries)))
    rng.shuffle(order)
    cut = int(len(order) * config.held_out)
    held, train = order[:cut], order[cut:]
    optimizer = torch.optim.Adam([weights], lr=config.learning_rate)
    use_ranking = ranking is not None and config.ranking_weight > 0

    def loss_of(batch: list[int], dropout: float, *, regularise: bool = True) -> torch.Tensor:
        rows, units = [], []
        for row, query in enumerate(batch):
            for unit in units_of[query]:
                pieces = data.word_pieces[unit]
                drop = unit in piece_only or bool(dropout and pieces and rng.random() < dropout)
                chosen = ([] if drop else [unit]) + (pieces if drop or config.pieces_with_words else [])
                for u in chosen:
                    rows.append(row)
                    units.append(u)
        if not units:
            return torch.zeros((), requires_grad=True)
        unit_index = torch.tensor(units)
        flat = (torch.tensor(rows).unsqueeze(1) * (dim + 1) + support[unit_index]).reshape(-1)
        pooled = torch.zeros(len(batch) * (dim + 1)).scatter_reduce(
            0, flat, weights[unit_index].reshape(-1), reduce="amax", include_self=True
        )
        pooled = pooled.view(len(batch), dim + 1)[:, :dim]
        target = _dense([data.targets[q] for q in batch], dim)
        loss = ((pooled - target) ** 2).sum(dim=1).mean()
        if use_ranking:
            loss = loss + config.ranking_weight * _margin_error(pooled, target, batch, ranking, config.negatives, rng)  # type: ignore[arg-type]
        if regularise:
            used = torch.unique(unit_index)
            loss = loss + config.anchor * ((weights[used] - anchor[used]) ** 2).sum() / len(batch)
        return loss

    def held_out_loss() -> float:
        with torch.no_grad():
            losses = [float(loss_of(held[i : i + 256], 0.0, regularise=False)) for i in range(0, len(held), 256)]
        return float(np.mean(losses)) if losses else 0.0

    best = (held_out_loss(), weights.detach().clone())
    LOGGER.info("start: held-out %.4f", best[0])
    for epoch in range(1, config.epochs + 1):
        permutation = torch.randperm(len(train), generator=generator).tolist()
        total, steps = 0.0, 0
        for first in range(0, len(train), config.batch_size):
            batch = [train[i] for i in permutation[first : first + config.batch_size]]
            loss = loss_of(batch, config.piece_dropout)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            with torch.no_grad():
                weights.clamp_(min=0)
            total, steps = total + float(loss.detach()), steps + 1
        held_loss = held_out_loss()
        LOGGER.info("epoch %d: loss %.4f, held-out %.4f", epoch, total / max(steps, 1), held_loss)
        if on_epoch is not None:
            on_epoch(epoch, total / max(steps, 1), held_loss)
        if held_loss < best[0] or not held:  # without held-out queries, the last epoch
            best = (held_loss, weights.detach().clone())
    learned = best[1].numpy()
    columns = support.numpy()
    table_rows = []
    for unit in range(n_units):
        keep = (columns[unit] < dim) & (learned[unit] >= config.min_weight)
        table_rows.append(SparseVector.clean(columns[unit][keep], learned[unit][keep], dim=dim))
    return _table(teacher, data, table_rows, pieces_with_words=config.pieces_with_words)


def _margin_error(
    student: torch.Tensor,
    teacher: torch.Tensor,
    batch: list[int],
    ranking: RankingData,
    negatives: int,
    rng: random.Random,
) -> torch.Tensor:
    """Margin-MSE over the batch's candidates (every positive in the batch, and each query's
    hard negatives): ``((S_c - S_pos) - (T_c - T_pos))^2``, averaged, for queries with a
    positive."""
    rows = [row for row, q in enumerate(batch) if ranking.positives[q] >= 0]
    if not rows:
        return torch.zeros(())
    candidates: dict[int, None] = {}
    for row in rows:
        query = batch[row]
        candidates.setdefault(ranking.positives[query], None)
        pool = ranking.negatives[query]
        for doc in rng.sample(pool, min(negatives, len(pool))):
            candidates.setdefault(doc, None)
    columns = list(candidates)
    documents = torch.from_numpy(ranking.documents[columns].toarray())
    chosen = torch.tensor(rows)
    student_scores = student[chosen] @ documents.T
    teacher_scores = teacher[chosen] @ documents.T
    positive = torch.tensor([columns.index(ranking.positives[batch[row]]) for row in rows]).unsqueeze(1)
    student_margin = student_scores - student_scores.gather(1, positive)
    teacher_margin = teacher_scores - teacher_scores.gather(1, positive)
    return ((student_margin - teacher_margin) ** 2).mean()


def _support(data: TeacherData, units_of: list[list[int]], size: int, dim: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Each unit's latents (``(units, size)``, ``dim`` where unused) and starting weights:
    its isolated vector's latents, then those the full encoder gives the queries holding
    the unit (its pieces share the word's), by summed weight."""
    mass: list[Counter[int]] = [Counter() for _ in data.isolated]
    for query, units in enumerate(units_of):
        target = data.targets[query]
        gains = dict(zip(target.indices.tolist(), target.values.tolist(), strict=True))
        for unit in set(units):
            for u in (unit, *data.word_pieces[unit]):
                mass[u].update(gains)
    support = torch.full((len(data.isolated), size), dim, dtype=torch.long)
    start = torch.zeros((len(data.isolated), size))
    for unit, own in enumerate(data.isolated):
        chosen = own.indices.tolist()[:size]
        taken = set(chosen)
        chosen += [j for j, _ in mass[unit].most_common(size) if j not in taken][: size - len(chosen)]
        support[unit, : len(chosen)] = torch.tensor(chosen, dtype=torch.long)
        start[unit, : own.nnz] = torch.from_numpy(own.values[:size].astype(np.float32))
    return support, start


def _dense(vectors: Sequence[SparseVector], dim: int) -> torch.Tensor:
    out = torch.zeros(len(vectors), dim)
    for row, vector in enumerate(vectors):
        out[row, torch.from_numpy(vector.indices.astype(np.int64))] = torch.from_numpy(vector.values.copy())
    return out


def _table(
    teacher: SplareEncoder, data: TeacherData, rows: Sequence[SparseVector], *, pieces_with_words: bool = False
) -> StaticQueryEncoder:
    """Keep the non-empty rows and wrap them with the teacher's fingerprint and tokenizer."""
    kept = [u for u, row in enumerate(rows) if row.nnz]
    new_row = {u: r for r, u in enumerate(kept)}
    indptr = np.concatenate([[0], np.cumsum([rows[u].nnz for u in kept])]).astype(np.int64)
    indices = np.concatenate([rows[u].indices for u in kept]) if kept else np.zeros(0, np.uint32)
    values = np.concatenate([rows[u].values for u in kept]) if kept else np.zeros(0, np.float32)
    return StaticQueryEncoder(
        {w: new_row[u] for w, u in data.vocabulary.items() if u in new_row and not is_unspaced(w)},
        {p: new_row[u] for p, u in data.pieces.items() if u in new_row},
        indptr,
        indices,
        values,
        dim=teacher.dim,
        query_top_k=teacher.config.query_top_k or teacher.dim,
        document_fingerprint=teacher.fingerprint,
        tokenizer=tokenizers.Tokenizer.from_str(teacher.tokenizer.backend.to_str()),  # a copy: no shared state
        pieces_with_words=pieces_with_words,
    )


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Build static query tables for a model from training pairs.")
    parser.add_argument("--model", default=None, help="registered name or directory (default: the default model)")
    parser.add_argument("--pairs", type=Path, action="append", required=True, help="training pairs JSONL")
    parser.add_argument("--exclude", type=Path, nargs="*", default=(), help="datasets whose queries stay out")
    parser.add_argument(
        "--out", type=Path, default=None, help="writes OUT/untrained and OUT/distilled (default: MODEL/static-queries)"
    )
    parser.add_argument("--catalog-languages", default="", help="comma-separated locale names for extra queries")
    parser.add_argument("--catalog-messages", type=int, default=1000, help="messages per catalog language")
    parser.add_argument("--catalog-english", type=int, default=3000, help="English originals kept")
    parser.add_argument(
        "--documents", type=Path, nargs="*", default=(), help="datasets whose corpus the pairs point to"
    )
    parser.add_argument("--ranking-weight", type=float, default=0.0, help="also build OUT/distilled-ranking")
    parser.add_argument("--runtime", default="openvino")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--epochs", type=int, default=StaticTableConfig.epochs)
    parser.add_argument("--support", type=int, default=StaticTableConfig.support)
    parser.add_argument("--learning-rate", type=float, default=StaticTableConfig.learning_rate)
    parser.add_argument("--anchor", type=float, default=StaticTableConfig.anchor)
    parser.add_argument("--piece-dropout", type=float, default=StaticTableConfig.piece_dropout)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    torch.set_num_threads(args.threads)
    from splare_connect import SplareEncoder

    teacher = SplareEncoder.from_pretrained(args.model, runtime=args.runtime)
    if args.out is None:
        from splare_connect.models import resolve_model

        args.out = Path(resolve_model(args.model)) / "static-queries"
    held_out = evaluation_queries(args.exclude)
    queries = read_training_queries(args.pairs, held_out)
    if args.catalog_languages:
        extra = catalog_queries(
            args.catalog_languages.split(","), args.catalog_messages, held_out, english=args.catalog_english
        )
        LOGGER.info("%d catalog messages as extra queries", len(extra))
        queries = list(dict.fromkeys([*queries, *extra]))
    data = _cached_teacher_data(teacher, queries, args.out / "teacher.npz")
    untrained_table(teacher, data).save(args.out / "untrained")
    config = StaticTableConfig(
        epochs=args.epochs,
        support=args.support,
        learning_rate=args.learning_rate,
        anchor=args.anchor,
        piece_dropout=args.piece_dropout,
    )
    distill(teacher, data, config).save(args.out / "distilled")
    if args.ranking_weight > 0:
        from splare_connect.models import cache_dir

        ranking = ranking_data(teacher, data, args.documents, corpus_cache=cache_dir() / "eval")
        ranked = replace(config, ranking_weight=args.ranking_weight)
        distill(teacher, data, ranked, ranking=ranking).save(args.out / "distilled-ranking")


def ranking_data(
    teacher: SplareEncoder, data: TeacherData, datasets: Sequence[Path], *, corpus_cache: Path | None, depth: int = 20
) -> RankingData:
    """The documents of the datasets' training pairs (``train/pairs.jsonl``) as the full
    encoder encodes them, and each training query's hard negatives: the training
    documents of its collection that the full query scores highest.

    Each dataset's whole corpus is encoded (or read from ``corpus_cache``) exactly as the
    evaluation reads it, so one encoding serves both; only training documents are used.
    """
    from splare_connect.evaluation import load_beir
    from splare_connect.evaluation.corpus_cache import encode_corpus
    from splare_connect.evaluation.systems import sparse_matrix

    position = {q: i for i, q in enumerate(data.queries)}
    positives = [-1] * len(data.queries)
    negatives: list[list[int]] = [[] for _ in data.queries]
    blocks = []
    offset = 0
    for root in datasets:
        with Path(root, "train", "pairs.jsonl").open(encoding="utf-8") as lines:
            pairs = [json.loads(line) for line in lines if line.strip()]
        wanted = {p["doc_id"] for p in pairs}
        # The whole corpus, read and cached exactly as the evaluation reads it: one encoding
        # serves both. Only the training pairs' documents are used here.
        corpus = load_beir(root)
        vectors = encode_corpus(teacher, corpus.doc_ids, corpus.doc_texts, corpus_cache).sparse
        kept = [i for i, d in enumerate(corpus.doc_ids) if d in wanted]
        doc_ids = [corpus.doc_ids[i] for i in kept]
        LOGGER.info("%s: %d training documents", root, len(doc_ids))
        matrix = sparse_matrix([vectors[i] for i in kept], teacher.dim)
        row_of = {d: offset + i for i, d in enumerate(doc_ids)}
        own = [(position[p["query"]], row_of[p["doc_id"]]) for p in pairs if p["query"] in position]
        for query, doc in own:
            if positives[query] < 0:
                positives[query] = doc
        queries = sorted({query for query, _ in own})
        for first in range(0, len(queries), 1024):
            chunk = queries[first : first + 1024]
            scores = (sparse_matrix([data.targets[q] for q in chunk], teacher.dim) @ matrix.T).toarray()
            best = np.argsort(-scores, axis=1)[:, : depth + 1]
            for query, ranked in zip(chunk, best, strict=True):
                negatives[query] = [offset + int(d) for d in ranked if offset + int(d) != positives[query]][:depth]
        blocks.append(matrix)
        offset += len(doc_ids)
    from scipy.sparse import vstack

    return RankingData(vstack(blocks).tocsr(), positives, negatives)


def _cached_teacher_data(teacher: SplareEncoder, queries: list[str], file: Path) -> TeacherData:
    """:func:`teacher_data`, kept in ``file`` (npz, no pickle) for re-runs with other settings."""
    key = hashlib.sha256((teacher.fingerprint["digest"] + "\0" + "\0".join(queries)).encode()).hexdigest()
    if file.is_file():
        with np.load(file, allow_pickle=False) as stored:
            if str(stored["key"]) == key:
                meta = json.loads(str(stored["meta"]))
                vectors = _unpack(stored, teacher.dim)
                n = len(queries)
                return TeacherData(
                    queries,
                    vectors[:n],
                    meta["vocabulary"],
                    {int(p): u for p, u in meta["pieces"].items()},
                    meta["word_pieces"],
                    vectors[n:],
                )
    data = teacher_data(teacher, queries)
    vectors = [*data.targets, *data.isolated]
    meta = {"vocabulary": data.vocabulary, "pieces": data.pieces, "word_pieces": data.word_pieces}
    file.parent.mkdir(parents=True, exist_ok=True)
    np.savez(
        file,
        key=np.array(key),
        meta=np.array(json.dumps(meta)),
        lengths=np.array([v.nnz for v in vectors], np.int64),
        indices=np.concatenate([v.indices for v in vectors]),
        values=np.concatenate([v.values for v in vectors]),
    )
    return data


def _unpack(stored: np.lib.npyio.NpzFile, dim: int) -> list[SparseVector]:
    offsets = np.concatenate([[0], np.cumsum(stored["lengths"])])
    indices, values = stored["indices"], stored["values"]
    return [SparseVector(indices[a:b], values[a:b], dim) for a, b in itertools.pairwise(offsets)]


if __name__ == "__main__":
    main()
