"""The labelling corpus of the default model's feature dictionary, and its held-out pairs.

Built from what a fresh Debian machine has: man pages (the first N pages of the man-page
collection's corpus, English) and the translated gettext message catalogs under
/usr/share/locale (English messages and their translations, several languages, some of
them languages the model was never fine-tuned on). One pair in ten of the catalogs, chosen
by a hash of its English text (so the split is deterministic), is held out of labelling:
the label-quality check reads those.

    python experiments/features/labelling_corpus.py --out .bench/features
    # writes labelling.jsonl (texts with "lang") and heldout_pairs.jsonl
"""

from __future__ import annotations

import argparse
import hashlib
import json
from pathlib import Path

from splare_connect.training.parallel_text import read_message_catalogs

# Catalog languages: ones the fine-tuning saw (de, fr, es, ru, ja, zh_CN, pt_BR, it, pl, nl)
# and ones it did not (uk, ko, ca, tr).
LANGUAGES = ["de", "fr", "es", "ru", "ja", "zh_CN", "pt_BR", "it", "pl", "nl", "uk", "ko", "ca", "tr"]


def held_out(english: str) -> bool:
    return hashlib.sha256(english.encode("utf-8")).digest()[0] % 10 == 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--manpages", type=Path, default=Path("data/manpages/corpus.jsonl"))
    parser.add_argument("--pages", type=int, default=1500)
    parser.add_argument("--pairs-per-language", type=int, default=600)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    texts: list[dict[str, str]] = []
    with args.manpages.open(encoding="utf-8") as lines:
        for _, line in zip(range(args.pages), lines, strict=False):
            record = json.loads(line)
            texts.append({"text": "\n".join(p for p in (record.get("title", ""), record["text"]) if p), "lang": "en"})
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
