"""The labelling corpus of the default model's feature dictionary, and its held-out pairs.

Built from what a fresh Debian machine has:

- man pages: English, from the man-page collection's corpus, at most three per command
  family (two thirds of that corpus are the pages of one program, gcloud, whose words would
  otherwise name most features);
- the translated gettext message catalogs under /usr/share/locale: English messages and
  their translations in 14 languages, some of which the model was never fine-tuned on.

One catalog pair in ten, chosen by a hash of its English text (a deterministic split), is
held out of labelling: the label-quality check reads those.

    python experiments/features/labelling_corpus.py --out .bench/features
    # writes labelling.jsonl (texts with "lang") and heldout_pairs.jsonl
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
from pathlib import Path

from splare_connect.training.parallel_text import read_message_catalogs

# Catalog languages: ones the fine-tuning saw (de, fr, es, ru, ja, zh_CN, pt_BR, it, pl, nl)
# and ones it did not (uk, ko, ca, tr).
LANGUAGES = ["de", "fr", "es", "ru", "ja", "zh_CN", "pt_BR", "it", "pl", "nl", "uk", "ko", "ca", "tr"]


def command_family(page_id: str) -> str:
    """``man1/gcloud_compute_ssh.1`` -> ``gcloud``: the name before the first ``_``, ``-`` or ``.``."""
    return re.split(r"[-_.]", page_id.rsplit("/", 1)[-1], maxsplit=1)[0]


def held_out(english: str) -> bool:
    return hashlib.sha256(english.encode("utf-8")).digest()[0] % 10 == 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--manpages", type=Path, default=Path("data/manpages/corpus.jsonl"))
    parser.add_argument("--pages-per-family", type=int, default=3)
    parser.add_argument("--pairs-per-language", type=int, default=600)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    texts: list[dict[str, str]] = []
    families: dict[str, int] = {}
    with args.manpages.open(encoding="utf-8") as lines:
        for line in lines:
            record = json.loads(line)
            family = command_family(record["_id"])
            families[family] = families.get(family, 0) + 1
            if families[family] <= args.pages_per_family:
                text = "\n".join(p for p in (record.get("title", ""), record["text"]) if p)
                texts.append({"text": text, "lang": "en"})
    pairs = read_message_catalogs(LANGUAGES, max_pairs_per_language=args.pairs_per_language)
    heldout, english_seen = [], set()
    for pair in pairs:
        if held_out(pair.english):
            heldout.append({"english": pair.english, "translation": pair.translation, "lang": pair.lang})
            continue
        texts.append({"text": pair.translation, "lang": pair.lang})
        if pair.english not in english_seen:
            english_seen.add(pair.english)
            texts.append({"text": pair.english, "lang": "en"})
    with (args.out / "labelling.jsonl").open("w", encoding="utf-8") as out:
        for index, record in enumerate(texts):
            out.write(json.dumps({"id": str(index), **record}, ensure_ascii=False) + "\n")
    with (args.out / "heldout_pairs.jsonl").open("w", encoding="utf-8") as out:
        for record in heldout:
            out.write(json.dumps(record, ensure_ascii=False) + "\n")
    by_language: dict[str, int] = {}
    for record in texts:
        by_language[record["lang"]] = by_language.get(record["lang"], 0) + 1
    print(f"{len(texts)} labelling texts {by_language}; {len(heldout)} held-out pairs")


if __name__ == "__main__":
    main()
