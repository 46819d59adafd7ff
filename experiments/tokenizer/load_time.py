"""Where the default model's tokenizer load goes, and whether another library loads it faster.

The cold start of issue 16 (``from_pretrained`` under 1.5 s, a CLI search under 2 s) has the
tokenizer build as its largest single step, and the build holds the GIL. This times, in one
process and alternating, three loads of the same 250,002-piece Unigram vocabulary:

- ``tokenizers`` reading the model's ``tokenizer.json`` (what the encoder does);
- ``tokenizers`` building only the Unigram model from the vocabulary, already parsed
  (so: how much of the load is JSON, how much is the model);
- ``sentencepiece`` loading the same pieces and normaliser as its own model file (built
  here from ``tokenizer.json``), whose loader is C++ as well.

    python experiments/tokenizer/load_time.py [--rounds 3]

An experiment, not a product benchmark: it records what the tokenizer's load is made of.
"""

from __future__ import annotations

import argparse
import base64
import json
import statistics
import tempfile
import time
from pathlib import Path

from sentencepiece import SentencePieceProcessor
from sentencepiece import sentencepiece_model_pb2 as model_pb2
from tokenizers import Tokenizer, models

from splare_connect.encoding.config import EncoderConfig
from splare_connect.models import resolve_model


def sentencepiece_file(spec: dict, folder: Path) -> Path:
    """The vocabulary and precompiled normaliser of ``tokenizer.json`` as a sentencepiece model."""
    proto = model_pb2.ModelProto()
    proto.trainer_spec.model_type = model_pb2.TrainerSpec.UNIGRAM
    unk = spec["model"]["unk_id"]
    kinds = model_pb2.ModelProto.SentencePiece
    for index, (piece, score) in enumerate(spec["model"]["vocab"]):
        entry = proto.pieces.add()
        entry.piece, entry.score = piece, score
        special = piece in ("<s>", "</s>", "<pad>", "<mask>")
        entry.type = kinds.UNKNOWN if index == unk else (kinds.CONTROL if special else kinds.NORMAL)
    charsmap = next(n for n in spec["normalizer"]["normalizers"] if n["type"] == "Precompiled")
    proto.normalizer_spec.precompiled_charsmap = base64.b64decode(charsmap["precompiled_charsmap"])
    path = folder / "tokenizer.model"
    path.write_bytes(proto.SerializeToString())
    return path


def seconds(load) -> float:  # type: ignore[no-untyped-def]
    started = time.perf_counter()
    load()
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    model_dir = resolve_model(None)
    path = (model_dir / EncoderConfig.load(model_dir).backbone / "tokenizer.json").resolve()
    spec = json.loads(path.read_text(encoding="utf-8"))
    vocab = [tuple(pair) for pair in spec["model"]["vocab"]]
    with tempfile.TemporaryDirectory() as folder:
        model_file = str(sentencepiece_file(spec, Path(folder)))
        contenders = {
            "tokenizers, tokenizer.json": lambda: Tokenizer.from_file(str(path)),
            "tokenizers, Unigram model only": lambda: models.Unigram(vocab, spec["model"]["unk_id"], False),
            "sentencepiece, same vocabulary": lambda: SentencePieceProcessor(model_file=model_file),
        }
        times: dict[str, list[float]] = {name: [] for name in contenders}
        for _ in range(args.rounds):
            for name, load in contenders.items():
                times[name].append(seconds(load))
    print(f"{len(vocab):,} pieces; median of {args.rounds} alternating rounds")
    for name, values in times.items():
        print(f"{name:<32} {statistics.median(values):.2f} s  ({', '.join(f'{v:.2f}' for v in values)})")


if __name__ == "__main__":
    main()
