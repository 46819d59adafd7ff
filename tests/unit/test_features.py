"""Feature dictionaries on a tiny real model whose SAE has features planted on known words."""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from splare_connect import ConfigError, SplareEncoder
from splare_connect.cli import app
from splare_connect.encoding.config import EncoderConfig
from splare_connect.encoding.sae import SaeConfig, SparseAutoencoder
from splare_connect.features import (
    DICTIONARY_FILE,
    FEATURES_DIR,
    FeatureDictionary,
    WordEvidence,
    builder,
)
from splare_connect.features.builder import LabellingText, build_dictionary, read_labelling_sources
from splare_connect.features.dictionary import label_feature
from splare_connect.testing.tiny_models import HIDDEN, build_bert

PLANTED = ["copy", "files", "directory", "kernel", "dateien"]
MIXED = len(PLANTED)  # fires on every token
DEAD = MIXED + 1  # never fires
WIDTH = 16
LAYER = 3


def _corpus(count: int = 60, seed: int = 0) -> list[LabellingText]:
    """Sentences over the tiny vocabulary; every planted word appears several times."""
    rng = random.Random(seed)
    english = [
        "the",
        "a",
        "of",
        "to",
        "and",
        "in",
        "is",
        "it",
        "list",
        "files",
        "directory",
        "copy",
        "move",
        "remove",
        "show",
        "print",
        "text",
        "search",
        "find",
    ]
    german = ["der", "die", "das", "und", "ist", "liste", "dateien", "verzeichnis"]
    texts = []
    for index in range(count):
        words = german if index % 3 == 2 else english
        texts.append(LabellingText(" ".join(rng.choice(words) for _ in range(8)), "de" if index % 3 == 2 else "en"))
    texts += [
        LabellingText(f"the {w} and {n} {w}", "en") for w in PLANTED if w != "dateien" for n in ("the", "a", "it")
    ]
    texts += [LabellingText("die dateien und die kernel", "de")]
    return texts


def _token_states(model_dir: Path, texts: list[str]) -> tuple[list[str], torch.Tensor]:
    """Each content token's word and its state at LAYER, read with a throwaway SAE."""
    encoder = SplareEncoder.from_pretrained(model_dir, device="cpu")
    words, states = [], []
    with torch.inference_mode():
        for batch in encoder.iter_batches(texts, role="document", batch_size=8):
            layer_states, _ = encoder.reader(batch.input_ids, batch.attention_mask)
            prefix = encoder.config.document_prefix
            encodings = encoder.tokenizer.encode_batch([prefix + texts[p] for p in batch.positions])
            for row, col in zip(*batch.content_mask.nonzero(as_tuple=True), strict=True):
                start, end = encodings[int(row)].offsets[int(col)]
                words.append((prefix + texts[batch.positions[int(row)]])[start:end].lower())
                states.append(layer_states[row, col])
    return words, torch.stack(states)


def _planted_sae(words: list[str], states: torch.Tensor) -> SparseAutoencoder:
    """A ReLU SAE: feature i fires only on PLANTED[i] (a direction and a threshold that
    separate its tokens from every other token), MIXED on every token, DEAD on none."""
    w_enc = torch.zeros(HIDDEN, WIDTH)
    b_enc = torch.full((WIDTH,), -1e6)
    is_word = np.array(words)
    for feature, word in enumerate(PLANTED):
        mine = torch.from_numpy(is_word == word)
        # A least-squares linear probe for the word (+1 on its tokens, -1 elsewhere).
        target = torch.where(mine, 1.0, -1.0).unsqueeze(1)
        direction = torch.linalg.lstsq(states, target).solution[:, 0]
        direction = direction / direction.norm()
        projections = states @ direction
        low, high = float(projections[mine].min()), float(projections[~mine].max())
        assert low > high, f"the tiny model's states do not separate {word!r}"
        w_enc[:, feature] = direction
        b_enc[feature] = -(low + high) / 2
    w_enc[:, MIXED] = states.mean(0) / states.mean(0).norm()
    b_enc[MIXED] = -float((states @ w_enc[:, MIXED]).min()) + 0.01
    w_enc[:, DEAD] = w_enc[:, MIXED]
    return SparseAutoencoder(SaeConfig(d_in=HIDDEN, d_sae=WIDTH, activation="relu"), W_enc=w_enc, b_enc=b_enc)


@pytest.fixture(scope="module")
def planted_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("planted")
    build_bert(directory / "backbone")
    # Prefixes, as the default model has ("passage: "): word spans are found past them. The
    # same for both roles, so a query's tokens see the contexts the features were planted in.
    config = EncoderConfig(
        name="planted",
        backbone="backbone",
        sae="sae",
        layer=LAYER,
        document_top_k=None,
        document_prefix="text: ",
        query_prefix="text: ",
    )
    SparseAutoencoder(
        SaeConfig(d_in=HIDDEN, d_sae=WIDTH, activation="relu"),
        W_enc=torch.zeros(HIDDEN, WIDTH),
        b_enc=torch.zeros(WIDTH),
    ).save(directory / "sae")
    config.save(directory)
    words, states = _token_states(directory, [t.text for t in _corpus()])
    _planted_sae(words, states).save(directory / "sae")
    return directory


@pytest.fixture(scope="module")
def planted_encoder(planted_model: Path) -> SplareEncoder:
    return SplareEncoder.from_pretrained(planted_model, device="cpu")


@pytest.fixture(scope="module")
def dictionary(planted_encoder: SplareEncoder, planted_model: Path) -> FeatureDictionary:
    return build_dictionary(planted_encoder, _corpus(), planted_model / FEATURES_DIR, sources=["corpus"])


def test_planted_features_get_their_words_as_labels(dictionary: FeatureDictionary) -> None:
    for feature, word in enumerate(PLANTED):
        entry = dictionary.entry(feature)
        assert (entry.label, entry.status) == (word, "labelled"), entry
        assert entry.words[0].word == word and len(entry.words) == 1
        assert all(f"[{word}]" in example.lower() for example in entry.examples)
    assert dictionary.entry(PLANTED.index("dateien")).words[0].languages == ("de",)


def test_mixed_and_dead_features_say_so(dictionary: FeatureDictionary) -> None:
    mixed = dictionary.entry(MIXED)
    assert mixed.status == "mixed" and mixed.label.startswith("mixed: ") and " · " in mixed.label
    assert mixed.document_frequency == 1.0
    assert DEAD not in dictionary.entries
    assert (dictionary.entry(DEAD).label, dictionary.entry(DEAD).status) == ("dead", "dead")


def test_document_frequency_counts_texts_not_tokens(dictionary: FeatureDictionary) -> None:
    corpus = _corpus()
    for feature, word in enumerate(PLANTED):
        with_word = sum(word in item.text.split() for item in corpus)
        assert dictionary.entry(feature).document_frequency == pytest.approx(with_word / len(corpus), abs=1e-6)


def test_find_a_word_in_any_case(dictionary: FeatureDictionary) -> None:
    [(_entry, evidence)] = [hit for hit in dictionary.find("Dateien") if hit[0].feature == PLANTED.index("dateien")]
    assert evidence.word == "dateien" and evidence.count > 0
    assert dictionary.find("copy")[0][0].feature == PLANTED.index("copy")
    assert dictionary.find("nonexistent") == []


def test_the_dictionary_round_trips_and_belongs_to_one_encoder(
    dictionary: FeatureDictionary, planted_encoder: SplareEncoder, planted_model: Path, tiny_encoder: SplareEncoder
) -> None:
    loaded = FeatureDictionary.load(planted_model / FEATURES_DIR)
    assert loaded.entries == dictionary.entries
    assert planted_encoder.feature_dictionary is not None
    assert loaded.digest == planted_encoder.fingerprint["digest"]
    with pytest.raises(ConfigError, match="built for planted"):
        loaded.check_encoder(tiny_encoder.fingerprint)
    assert tiny_encoder.feature_dictionary is None


EVERY_10 = {"checkpoint_every": 10, "checkpoint_seconds": 0}


def test_a_build_killed_midway_resumes_to_the_same_dictionary(
    planted_encoder: SplareEncoder, dictionary: FeatureDictionary, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    corpus = _corpus()

    def dies_after(count: int) -> Iterator[LabellingText]:
        for position, item in enumerate(corpus):
            if position == count:
                raise KeyboardInterrupt
            yield item

    with pytest.raises(KeyboardInterrupt):
        build_dictionary(planted_encoder, dies_after(25), tmp_path, sources=["corpus"], **EVERY_10)
    assert not (tmp_path / DICTIONARY_FILE).exists()
    with pytest.raises(ConfigError, match="another model or other sources"):
        build_dictionary(planted_encoder, iter(corpus), tmp_path, sources=["other"], **EVERY_10)
    with pytest.raises(ConfigError, match="another model or other sources"):  # same name, other content
        build_dictionary(planted_encoder, iter(corpus), tmp_path, sources=["corpus"], source_state=[7], **EVERY_10)
    labelled: list[int] = []
    label_texts = builder._label_texts
    monkeypatch.setattr(
        builder, "_label_texts", lambda enc, items, *rest: labelled.append(len(items)) or label_texts(enc, items, *rest)
    )
    resumed = build_dictionary(planted_encoder, iter(corpus), tmp_path, sources=["corpus"], **EVERY_10)
    assert sum(labelled) == len(corpus) - 20  # two checkpoints of 10 were kept; the rest is new work
    assert (tmp_path / DICTIONARY_FILE).is_file() and not (tmp_path / builder.STATE_FILE).exists()
    # Texts are batched per checkpoint span, so the uninterrupted build to match uses the same spans.
    whole = build_dictionary(planted_encoder, iter(corpus), tmp_path / "whole", sources=["corpus"], **EVERY_10)
    assert resumed.entries == whole.entries and resumed.texts == len(corpus)
    assert {f: e.label for f, e in resumed.entries.items()} == {f: e.label for f, e in dictionary.entries.items()}


def test_explanations_carry_labels(planted_encoder: SplareEncoder, dictionary: FeatureDictionary) -> None:
    explained = planted_encoder.explain("copy the files", top=3)
    labels = {f.label for f in explained}
    assert {"copy", "files"} <= labels
    assert [f.weight for f in explained] == sorted((f.weight for f in explained), reverse=True)


def test_search_explains_hits_and_misses_with_labels(
    planted_encoder: SplareEncoder, planted_model: Path, dictionary: FeatureDictionary, tmp_path: Path
) -> None:
    from splare_connect.backends import load_backend
    from splare_connect.backends.default import DEFAULT_BACKEND
    from splare_connect.documents import read_iterable
    from splare_connect.retriever import Retriever
    from splare_connect.sync import Syncer

    backend = load_backend(DEFAULT_BACKEND, data_dir=tmp_path / "data")
    docs = [{"id": "a", "text": "copy the files"}, {"id": "b", "text": "the kernel directory"}]
    Syncer(planted_encoder, backend, "pages").run(read_iterable(docs))
    retriever = Retriever(planted_encoder, backend, "pages")
    [hit, *_] = retriever.search("copy files", k=2, explain=True)
    assert hit.doc_id == "a" and hit.features is not None
    assert {"copy", "files"} <= {f.label for f in hit.features}
    assert sum(f.weight for f in hit.features) == pytest.approx(hit.score, rel=1e-4)
    miss = retriever.explain_miss("copy files", "b#0")
    assert {"copy", "files"} <= {f.label for f in miss.missing}
    assert all(f.label and not f.label.startswith(("copy", "files")) for f in miss.shared)
    backend.close()
    stored = ["--data-dir", str(tmp_path / "data"), "-c", "pages", "--model", str(planted_model)]
    runner = CliRunner()
    report = runner.invoke(app, ["features", "why-not", "copy files", "b#0", *stored])
    assert report.exit_code == 0, report.output
    missing_line = next(line for line in report.output.splitlines() if line.startswith("missing"))
    assert "copy (" in missing_line and "files (" in missing_line
    absent = runner.invoke(app, ["features", "why-not", "copy files", "nope#0", *stored])
    assert absent.exit_code == 1 and "has no record 'nope#0'" in absent.output


def test_the_features_commands(planted_model: Path, dictionary: FeatureDictionary, tmp_path: Path) -> None:
    source = tmp_path / "corpus.jsonl"
    records = [{"id": str(i), "text": t.text, "lang": t.language} for i, t in enumerate(_corpus())]
    source.write_text("".join(json.dumps(record) + "\n" for record in records))
    assert [t.language for t in read_labelling_sources([source])][:3] == ["en", "en", "de"]
    runner = CliRunner()
    out = tmp_path / "built"
    built = runner.invoke(app, ["features", "build", str(source), "-o", str(out), "--model", str(planted_model)])
    assert built.exit_code == 0, built.output
    assert "5 labelled, 1 mixed" in built.output and "10 dead" in built.output
    assert FeatureDictionary.load(out).entries == dictionary.entries
    shown = runner.invoke(app, ["features", "show", "copy files", "--model", str(planted_model), "--json"])
    assert shown.exit_code == 0, shown.output
    assert {"copy", "files"} <= {row["label"] for row in json.loads(shown.output)}
    found = runner.invoke(app, ["features", "find", "KERNEL", "--model", str(planted_model), "--json"])
    assert found.exit_code == 0, found.output
    [kernel] = [row for row in json.loads(found.output) if row["label"] == "kernel"]
    assert kernel["in_evidence"] and kernel["feature"] == PLANTED.index("kernel")
    missing = runner.invoke(app, ["features", "build", str(tmp_path / "nope.jsonl"), "-o", str(out)])
    assert missing.exit_code == 1 and "no such source" in missing.output


def _word(word: str, language: str, total: float) -> WordEvidence:
    return WordEvidence(word, (language,), activation=total, count=1, total=total)


def test_labels_name_translations_and_say_when_evidence_is_mixed() -> None:
    tokens = {"en": 10_000, "de": 1_000, "ja": 1_000}
    shared = [_word("copy", "en", 50.0), _word("copies", "en", 20.0), _word("kopieren", "de", 4.0)]
    shared.append(_word("コピー", "ja", 3.0))
    # German and Japanese had a tenth of the text: 4.0 and 3.0 are as strong, per token, as English's 50.
    assert label_feature(shared, texts_fired=9, min_texts=3, language_tokens=tokens) == (
        "copy / kopieren / コピー",
        "labelled",
    )
    # Without token counts a translation must carry a fifth of the top word's activation itself.
    assert label_feature(shared, texts_fired=9, min_texts=3) == ("copy", "labelled")
    scattered = [_word(w, "en", 10.0) for w in ("copy", "kernel", "date", "user", "page")]
    assert label_feature(scattered, texts_fired=9, min_texts=3) == ("mixed: copy · kernel · date", "mixed")
    assert label_feature(shared, texts_fired=2, min_texts=3) == ("rare: copy · copies · kopieren", "rare")
    assert label_feature([], texts_fired=0, min_texts=3) == ("dead", "dead")


def test_translations_are_found_beyond_the_strongest_words_and_never_make_a_label_mixed() -> None:
    tokens = {"en": 10_000, "de": 1_000, "ja": 1_000}
    english = [_word("copy", "en", 50.0), *(_word(f"w{i}", "en", 6.0) for i in range(7))]
    # kopieren ranks ninth by its sum, but per token of German it fires as readily as copy.
    label, _ = label_feature(
        [*english, _word("kopieren", "de", 5.0)], texts_fired=9, min_texts=3, language_tokens=tokens
    )
    assert label == "copy / kopieren"
    mixed = [_word(w, "en", 10.0) for w in ("copy", "kernel", "date", "user", "page")] + [_word("kopieren", "de", 9.0)]
    assert label_feature(mixed, texts_fired=9, min_texts=3)[0] == "mixed: copy · kernel · date"


@pytest.mark.parametrize(
    ("text", "token", "word"),
    [
        ("please \u0915\u0949\u092a\u0940 now", "\u0915", "\u0915\u0949\u092a\u0940"),  # Devanagari vowel signs
        ("a nai\u0308ve test", "nai", "nai\u0308ve"),  # a decomposed accent
        ("copy_file(x)", "file", "copy_file"),
        ("ファイルをコピー", "コピー", "コピー"),  # no spaces: the token's own text
        ("--force", "-", None),
    ],
)
def test_tokens_are_credited_to_whole_words(text: str, token: str, word: str | None) -> None:
    start = text.index(token)
    span = builder._word_span(text, start, start + len(token))
    assert (None if span is None else text[span[0] : span[1]]) == word
