"""What the frameworks hand the integrations that is not a list of valid texts (issue 33, defect 13).

A bare string where a list of texts is expected used to be encoded one vector per
character (``embed_documents("abc")`` gave three vectors), and a lone surrogate
(``"a\\ud800b"``, valid in a Python str, not in UTF-8) reached the tokenizer and came
back as its ``TypeError``. Both are :class:`BadInputError` now, naming which text and
why, through the real LangChain, LlamaIndex and Haystack objects and the tiny model.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from splare_connect.errors import BadInputError

LONE = "a\ud800b"


def test_the_encoder_refuses_a_lone_surrogate_naming_the_text(tiny_encoder: Any) -> None:
    with pytest.raises(BadInputError, match=r"texts\[1\] holds a lone surrogate .*position 1"):
        tiny_encoder.encode(["fine", LONE])


def test_langchain_sparse_embeddings(tiny_encoder: Any) -> None:
    pytest.importorskip("langchain_qdrant")
    from splare_connect.integrations.langchain import SplareSparseEmbeddings

    embeddings = SplareSparseEmbeddings(tiny_encoder)
    with pytest.raises(BadInputError, match="single str"):
        embeddings.embed_documents("abc")  # type: ignore[arg-type]
    with pytest.raises(BadInputError, match=r"texts\[1\] holds a lone surrogate"):
        embeddings.embed_documents(["fine", LONE])
    with pytest.raises(BadInputError, match="lone surrogate"):
        embeddings.embed_query(LONE)
    assert len(embeddings.embed_documents(("one", "two"))) == 2  # any sequence of texts still works


def test_llama_index_sparse_fns(tiny_encoder: Any) -> None:
    pytest.importorskip("llama_index.core")
    from splare_connect.integrations.llama_index import splare_sparse_fns

    doc_fn, query_fn = splare_sparse_fns(tiny_encoder)
    for fn in (doc_fn, query_fn):
        with pytest.raises(BadInputError, match="single str"):
            fn("abc")  # type: ignore[arg-type]
        with pytest.raises(BadInputError, match=r"texts\[0\] holds a lone surrogate"):
            fn([LONE])
    indices, values = doc_fn(["one", "two"])
    assert len(indices) == len(values) == 2


def test_haystack_embedders(tiny_model_dir: Path) -> None:
    pytest.importorskip("haystack")
    from haystack import Document

    from splare_connect.integrations.haystack import SplareSparseDocumentEmbedder, SplareSparseTextEmbedder

    text_embedder = SplareSparseTextEmbedder(tiny_model_dir, device="cpu")
    with pytest.raises(BadInputError, match="expects a string"):
        text_embedder.run(["abc"])  # type: ignore[arg-type]
    with pytest.raises(BadInputError, match="lone surrogate"):
        text_embedder.run(LONE)
    documents = SplareSparseDocumentEmbedder(tiny_model_dir, device="cpu")
    with pytest.raises(BadInputError, match="list of Documents"):
        documents.run("abc")  # type: ignore[arg-type]
    # Haystack itself cannot hash such content into an id, so the app gives one.
    bad = [Document(id="ok", content="fine"), Document(id="d2", content=LONE)]
    with pytest.raises(BadInputError, match=r"documents\[1\] holds a lone surrogate at position 1"):
        documents.run(bad)
    with pytest.raises(TypeError):  # BadInputError is still a TypeError for code catching that
        documents.run("abc")  # type: ignore[arg-type]
