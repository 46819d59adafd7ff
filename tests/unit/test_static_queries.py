"""Static (inference-free) query tables: built from a tiny real encoder, saved, loaded, encoded."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from splare_connect.encoding.static_queries import TABLE_FILE, StaticQueryEncoder, normalize, words
from splare_connect.errors import BadInputError, CheckpointError
from splare_connect.testing.tiny_models import SAMPLE_TEXTS

TRAINING_QUERIES = [
    *SAMPLE_TEXTS,
    "find a text file",
    "search the manual page",
    "print the date and time",
    "remove the user directory",
    "liste der prozesse",
    "copier les fichiers",
]


@pytest.fixture(scope="module")
def built(tiny_encoder):  # type: ignore[no-untyped-def]
    from splare_connect.training.static_queries import StaticTableConfig, distill, teacher_data, untrained_table

    data = teacher_data(tiny_encoder, TRAINING_QUERIES)
    losses: list[float] = []
    distilled = distill(
        tiny_encoder,
        data,
        StaticTableConfig(epochs=15, batch_size=4, held_out=0.0, learning_rate=0.05),
        on_epoch=lambda epoch, train, held: losses.append(train),
    )
    return data, untrained_table(tiny_encoder, data), distilled, losses


def test_units_are_normalised_words() -> None:
    assert normalize("ＬＩＳＴ Files") == "list files"
    assert words("List the FILES, in /tmp!") == ["list", "the", "files", "in", "tmp"]


def test_untrained_rows_are_the_isolated_vectors(built, tiny_encoder) -> None:  # type: ignore[no-untyped-def]
    _, untrained, _, _ = built
    for word in ("files", "kernel"):  # batched with others at build time: equal to float rounding
        static, full = untrained.encode_query(word), tiny_encoder.encode_query(word)
        assert static.indices.tolist() == full.indices.tolist()
        np.testing.assert_allclose(static.values, full.values, rtol=1e-5)


def test_distillation_lowers_the_error_and_moves_towards_the_teacher(built, tiny_encoder) -> None:  # type: ignore[no-untyped-def]
    data, untrained, distilled, losses = built
    assert losses[-1] < losses[0]

    def error(table: StaticQueryEncoder) -> float:
        pairs = zip(table.encode_queries(data.queries), data.targets, strict=True)
        return float(sum(np.sum((s.to_dense(table.dim) - t.to_dense(table.dim)) ** 2) for s, t in pairs))

    assert error(distilled) < error(untrained)


def test_vectors_have_the_document_space_and_top_k(built, tiny_encoder) -> None:  # type: ignore[no-untyped-def]
    _, _, distilled, _ = built
    vectors = distilled.encode_queries(TRAINING_QUERIES)
    assert all(v.dim == tiny_encoder.dim == distilled.dim for v in vectors)
    assert all(0 < v.nnz <= tiny_encoder.config.query_top_k == distilled.query_top_k for v in vectors)
    assert distilled.fingerprint["digest"] == tiny_encoder.fingerprint["digest"]
    assert distilled.fingerprint["query_side"]["digest"] == distilled.table_digest


def test_pooling_is_the_max_over_units_kept_to_top_k(built) -> None:  # type: ignore[no-untyped-def]
    _, _, table, _ = built
    text = "show the kernel memory and process time"
    dense = np.zeros(table.dim, np.float32)
    for row in table.units(text):
        span = slice(table.indptr[row], table.indptr[row + 1])
        np.maximum.at(dense, table.indices[span].astype(np.int64), table.values[span])
    kept = np.sort(np.argsort(-dense, kind="stable")[: table.query_top_k])
    kept = kept[dense[kept] > 0]
    vector = table.encode_query(text)
    assert vector.indices.tolist() == kept.tolist()
    np.testing.assert_array_equal(vector.values, dense[kept])


def test_unknown_words_fall_back_to_pieces(built) -> None:  # type: ignore[no-untyped-def]
    _, _, table, _ = built
    assert "disk" in table.vocabulary  # in the tiny vocabulary and in the training queries
    row = table.vocabulary.pop("disk")
    try:
        rows = table.units("disk")
    finally:
        table.vocabulary["disk"] = row
    assert rows and all(r in table.piece_rows.values() for r in rows)


def test_save_load_round_trip(built, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    _, _, table, _ = built
    table.save(tmp_path / "static")
    loaded = StaticQueryEncoder.load(tmp_path / "static")
    assert loaded.table_digest == table.table_digest
    assert loaded.fingerprint == table.fingerprint
    texts = [*TRAINING_QUERIES, "unknown zzz words", "Liste DIE Dateien"]
    assert loaded.encode_queries(texts) == table.encode_queries(texts)


def test_load_refuses_a_missing_or_edited_table(built, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from safetensors import safe_open
    from safetensors.numpy import load_file, save_file

    with pytest.raises(CheckpointError, match=r"static_queries\.safetensors is missing"):
        StaticQueryEncoder.load(tmp_path)
    _, _, table, _ = built
    table.save(tmp_path / "static")
    file = tmp_path / "static" / TABLE_FILE
    with safe_open(str(file), framework="numpy") as handle:
        metadata = handle.metadata()
    tensors = load_file(str(file))
    tensors["values"] = tensors["values"] * 2
    save_file(tensors, str(file), metadata=metadata)
    with pytest.raises(CheckpointError, match="recorded digest"):
        StaticQueryEncoder.load(tmp_path / "static")


def test_blank_and_bad_input(built) -> None:  # type: ignore[no-untyped-def]
    _, _, table, _ = built
    assert [v.nnz for v in table.encode_queries(["", "   ", "?!", "\u200b"])] == [0, 0, 0, 0]
    with pytest.raises(BadInputError, match="wrap it in a list"):
        table.encode_queries("list files")
    with pytest.raises(BadInputError, match=r"texts\[1\] is a int"):
        table.encode_queries(["list files", 3])  # type: ignore[list-item]


def test_encoding_is_deterministic(built) -> None:  # type: ignore[no-untyped-def]
    _, _, table, _ = built
    assert table.encode_queries(TRAINING_QUERIES) == table.encode_queries(list(reversed(TRAINING_QUERIES)))[::-1]


def test_query_time_needs_no_torch(built, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    _, _, table, _ = built
    table.save(tmp_path / "static")
    code = (
        "import sys; from splare_connect.encoding.static_queries import StaticQueryEncoder;"
        f"e = StaticQueryEncoder.load({str(tmp_path / 'static')!r});"
        "v = e.encode_queries(['list files', 'unknownword disk']);"
        "print(sorted(m for m in ('torch', 'transformers') if m in sys.modules), [x.nnz > 0 for x in v])"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[] [True, True]"
    assert json.loads(json.dumps(table.fingerprint)) == table.fingerprint


def test_ranking_term_uses_training_documents(tiny_encoder, tiny_dataset: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from splare_connect.training.static_queries import (
        StaticTableConfig,
        distill,
        ranking_data,
        read_training_queries,
        teacher_data,
    )

    queries = read_training_queries([tiny_dataset / "train" / "pairs.jsonl"])
    data = teacher_data(tiny_encoder, queries)
    ranking = ranking_data(tiny_encoder, data, [tiny_dataset], corpus_cache=tmp_path / "cache", depth=3)
    assert ranking.documents.shape == (16, tiny_encoder.dim)  # the 16 documents the pairs point to
    assert all(p >= 0 for p in ranking.positives)
    assert all(len(n) == 3 and p not in n for p, n in zip(ranking.positives, ranking.negatives, strict=True))
    config = StaticTableConfig(epochs=2, batch_size=4, held_out=0.0, ranking_weight=0.1, pieces_with_words=True)
    table = distill(tiny_encoder, data, config, ranking=ranking)
    assert table.pieces_with_words
    assert all(v.nnz for v in table.encode_queries(queries))


# ------------------------------------------------------- as the encoder's query side
def test_an_encoder_with_a_static_table_encodes_queries_with_it_and_documents_with_the_model(
    built, tiny_model_dir: Path, tiny_encoder, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    from splare_connect import SplareEncoder

    table = built[2].save(tmp_path / "table")
    encoder = SplareEncoder.from_pretrained(tiny_model_dir, runtime="torch", precision="fp32", static_queries=table)
    queries = ["list files in a directory", "copier des fichiers"]
    assert encoder.encode_queries(queries) == built[2].encode_queries(queries)
    assert encoder.encode_documents(queries) == tiny_encoder.encode_documents(queries)
    hybrid = encoder.encode(queries, role="query", dense=True)
    assert hybrid.sparse == built[2].encode_queries(queries)
    expected_dense = tiny_encoder.encode(queries, role="query", dense=True).dense
    np.testing.assert_allclose(hybrid.dense, expected_dense, atol=1e-6)
    # The same document space: collections accept it, and the query side is on record.
    assert encoder.fingerprint["digest"] == tiny_encoder.fingerprint["digest"]
    assert encoder.fingerprint["query_side"]["kind"] == "static-table"


def test_a_table_built_for_another_model_is_refused(built, other_tiny_model_dir: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from splare_connect import ConfigError, SplareEncoder

    table = built[2].save(tmp_path / "table")
    with pytest.raises(ConfigError, match="static query table was built for encoder"):
        SplareEncoder.from_pretrained(other_tiny_model_dir, runtime="torch", static_queries=table)


def test_a_cli_search_with_a_static_table_loads_no_model(
    built, tiny_model_dir: Path, tiny_encoder, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    """Sparse search with the table: neither torch nor the compiled graph is ever loaded."""
    from splare_connect.backends import load_backend
    from splare_connect.backends.default import DEFAULT_BACKEND
    from splare_connect.documents import read_iterable
    from splare_connect.sync import Syncer

    table = built[2].save(tmp_path / "table")
    backend = load_backend(DEFAULT_BACKEND, data_dir=tmp_path / "data")
    Syncer(tiny_encoder, backend, "kb").run(
        read_iterable({"id": str(i), "text": t} for i, t in enumerate(SAMPLE_TEXTS))
    )
    backend.close()
    code = (
        "import json, sys\n"
        "from splare_connect.cli import main\n"
        f"sys.argv = ['splare-connect', 'search', 'list files', '-c', 'kb', '--data-dir', {str(tmp_path / 'data')!r}, "
        f"'--model', {str(tiny_model_dir)!r}, '--static-queries', {str(table)!r}, '--json']\n"
        "try:\n    main()\nexcept SystemExit as stop:\n    assert not stop.code, stop.code\n"
        "print(json.dumps({name: name in sys.modules for name in ('torch', 'openvino', 'transformers')}))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stderr
    *hits, loaded = result.stdout.strip().splitlines()
    assert json.loads(loaded) == {"torch": False, "openvino": False, "transformers": False}
    assert json.loads("\n".join(hits))
