"""Parallel text from gettext catalogs, written with polib as Debian's packages ship them."""

from __future__ import annotations

from pathlib import Path

import polib
import pytest
import torch

from splare_connect.training.config import TrainConfig
from splare_connect.training.parallel_text import read_message_catalogs


def write_catalog(locale_dir: Path, lang: str, name: str, entries: list[polib.MOEntry]) -> None:
    catalog = polib.MOFile()
    catalog.metadata = {"Content-Type": "text/plain; charset=UTF-8", "Language": lang}
    for entry in entries:
        catalog.append(entry)
    target = locale_dir / lang / "LC_MESSAGES"
    target.mkdir(parents=True, exist_ok=True)
    catalog.save(str(target / f"{name}.mo"))


@pytest.fixture
def locale_dir(tmp_path: Path) -> Path:
    root = tmp_path / "locale"
    write_catalog(
        root,
        "de",
        "coreutils",
        [
            polib.MOEntry(msgid="No such file or directory", msgstr="Datei oder Verzeichnis nicht gefunden"),
            polib.MOEntry(msgid="_Open the selected file", msgstr="Ausgewählte Datei _öffnen"),
            polib.MOEntry(msgid="%s: %s: %s: %d", msgstr="%s: %s: %s: %d"),  # format codes, no words
            polib.MOEntry(msgid="Quit", msgstr="Beenden"),  # too short
            polib.MOEntry(msgid="An untranslated message stays out", msgstr=""),
            polib.MOEntry(msgid="The same text in both languages", msgstr="The same text in both languages"),
            polib.MOEntry(
                msgid="one file was removed from disk",
                msgid_plural="%d files were removed from disk",
                msgstr_plural={0: "eine Datei wurde entfernt", 1: "%d Dateien wurden entfernt"},
            ),
            polib.MOEntry(msgid="list directory contents", msgstr="Verzeichnisinhalte auflisten"),  # a dev query
        ],
    )
    write_catalog(
        root,
        "de",
        "findutils",
        [polib.MOEntry(msgid="No such file or directory", msgstr="Keine solche Datei oder Verzeichnis")],  # repeat
    )
    return root


def test_catalog_pairs_keep_only_sentence_like_translated_messages(locale_dir: Path) -> None:
    pairs = read_message_catalogs(["de"], locale_dir=locale_dir, exclude=["List directory  contents"])
    assert [(p.english, p.translation, p.lang) for p in pairs] == [
        ("No such file or directory", "Datei oder Verzeichnis nicht gefunden", "de"),
        ("Open the selected file", "Ausgewählte Datei öffnen", "de"),
    ]


def test_a_language_without_catalogs_gives_nothing(locale_dir: Path) -> None:
    assert read_message_catalogs(["fr"], locale_dir=locale_dir) == []


def test_finetune_with_parallel_text_trains_on_it(
    tiny_model_dir: Path, tiny_dataset: Path, locale_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from splare_connect.training.finetune import train

    monkeypatch.setenv("SPLARE_CONNECT_CACHE", str(tmp_path / "cache"))
    config = TrainConfig(
        dataset=str(tiny_dataset),
        pairs=str(tiny_dataset / "train" / "pairs.jsonl"),
        output_dir=str(tmp_path / "tuned"),
        base_model=str(tiny_model_dir),
        steps=2,
        batch_size=4,
        hard_negatives=1,
        mine_depth=3,
        parallel_languages=("de",),
        parallel_locale_dir=str(locale_dir),
        parallel_batch_size=2,
    )
    seen: list[dict[str, float]] = []
    train(config, on_step=lambda step, stats: seen.append(stats))
    assert len(seen) == 2
    assert all(torch.isfinite(torch.tensor(s["parallel"])) and s["parallel"] >= 0 for s in seen)
    assert any(s["parallel"] > 0 for s in seen)
