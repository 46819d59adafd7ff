"""Property-based test of the ingest path against the default backend, embedded.

Hypothesis writes JSONL files mixing well-formed records with hostile lines: random
JSON values (NaN, infinities, integers past 64 bits, lone surrogates, odd keys), deep
nesting, raw garbage and invalid UTF-8, and fields over the size limits. For every file:

- the sync finishes (no exception escapes);
- every non-blank line is either reported as skipped with its line number, or its
  record is stored; nothing is lost silently;
- every well-formed record lands, and its metadata reads back equal;
- the collection stays readable: a fresh backend opens, scrolls, counts and searches it.

CI runs 100 files; ``SPLARE_FUZZ_EXAMPLES=2000`` runs a longer campaign.
"""

from __future__ import annotations

import itertools
import json
import math
import os
from collections import Counter
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from splare_connect.backends import load_backend
from splare_connect.backends.default import DEFAULT_BACKEND
from splare_connect.documents import read_source
from splare_connect.record_rules import INT64_MAX, INT64_MIN, RecordLimits
from splare_connect.retriever import Retriever
from splare_connect.sync import Syncer

EXAMPLES = int(os.environ.get("SPLARE_FUZZ_EXAMPLES", "100"))
LIMITS = RecordLimits(max_text_chars=300, max_metadata_bytes=4_000)
RESERVED_KEYS = {"id", "_id", "text", "title"}

unicode_text = st.characters(exclude_categories=("Cs",))  # any code point but lone surrogates
any_characters = st.characters()  # lone surrogates included
valid_scalars = (
    st.none()
    | st.booleans()
    | st.integers(INT64_MIN, INT64_MAX)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(unicode_text, max_size=20)
)
valid_json = st.recursive(
    valid_scalars,
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(unicode_text, max_size=8), children, max_size=3)
    ),
    max_leaves=8,
)
hostile_scalars = (
    valid_scalars
    | st.floats()  # NaN and infinities
    | st.integers(min_value=2**63, max_value=2**300)
    | st.integers(max_value=-(2**63) - 1, min_value=-(2**300))
    | st.text(any_characters, max_size=20)
)
hostile_json = st.recursive(
    hostile_scalars,
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(any_characters, max_size=8), children, max_size=3)
    ),
    max_leaves=10,
)


@st.composite
def valid_record(draw: st.DrawFn, index: int) -> dict:
    metadata = draw(st.dictionaries(st.text(unicode_text, max_size=8), valid_json, max_size=3))
    return {
        **{key: value for key, value in metadata.items() if key not in RESERVED_KEYS},
        "id": f"valid-{index}",
        "text": draw(st.text(unicode_text, min_size=1, max_size=LIMITS.max_text_chars)),
    }


def dumps(value: object, draw: st.DrawFn, ascii_only: bool = False) -> bytes:
    """JSON bytes, with non-ASCII escaped or raw (raw lone surrogates become invalid UTF-8)."""
    if ascii_only or draw(st.booleans()):
        return json.dumps(value).encode("ascii")
    return json.dumps(value, ensure_ascii=False).encode("utf-8", "surrogatepass")


@st.composite
def hostile_line(draw: st.DrawFn, json_only: bool = False) -> bytes:
    """A hostile line; with ``json_only``, one that is still valid JSON text (an array item)."""
    kinds = ["record", "value", "deep", "huge"] + ([] if json_only else ["garbage", "bytes"])
    kind = draw(st.sampled_from(kinds))
    if kind == "record":  # shaped like a record, with hostile values anywhere
        record = draw(st.dictionaries(st.text(any_characters, max_size=8), hostile_json, max_size=4))
        record["id"] = draw(st.text(any_characters, max_size=12) | st.integers() | hostile_json)
        record["text"] = draw(st.text(any_characters, max_size=40) | hostile_json)
        return dumps(record, draw, ascii_only=json_only)
    if kind == "value":
        return dumps(draw(hostile_json), draw, ascii_only=json_only)
    if kind == "deep":
        depth = draw(st.integers(20, 3000))
        opener, closer = draw(st.sampled_from([("[", "]"), ('{"n":', "}")]))
        return f'{{"id": "deep-{depth}", "text": "x", "m": {opener * depth}1{closer * depth}}}'.encode()
    if kind == "garbage":
        return draw(st.text(any_characters, max_size=40)).encode("utf-8", "surrogatepass")
    if kind == "bytes":
        return draw(st.binary(max_size=40))
    size = draw(st.integers(LIMITS.max_text_chars + 1, LIMITS.max_text_chars + 50))
    return json.dumps({"id": f"huge-{size}", "text": "y" * size}).encode()


@st.composite
def source_lines(draw: st.DrawFn, json_only: bool) -> tuple[list[bytes], dict[int, dict]]:
    """Records one per line, and the well-formed ones by position (1-based)."""
    lines: list[bytes] = []
    valid: dict[int, dict] = {}
    for index in range(draw(st.integers(1, 12))):
        if draw(st.booleans()):
            record = draw(valid_record(index))
            lines.append(json.dumps(record).encode("ascii"))
            valid[len(lines)] = record
        else:
            lines.append(draw(hostile_line(json_only)).replace(b"\n", b" ").replace(b"\r", b" "))
    return lines, valid


# The two layouts a source file can have: the bytes to write, and the line of the n-th record.
LAYOUTS = {
    "jsonl": (lambda lines: b"\n".join(lines) + b"\n", lambda n: n),
    "json-array": (lambda lines: b"[\n" + b",\n".join(lines) + b"\n]\n", lambda n: n + 1),
}


def parsed_id(line: bytes) -> str | None:
    """The id Python's own json reads from a line, if any (the oracle for stored records)."""
    try:
        record = json.loads(line.decode("utf-8"))
    except (ValueError, RecursionError):
        return None
    raw = record.get("id", record.get("_id")) if isinstance(record, dict) else None
    return None if raw is None or isinstance(raw, bool) else str(raw)


def same_json(got: object, want: object) -> bool:
    """Equal JSON values, floats within 2 ulp: an engine's float parsing may not be correctly
    rounded (Qdrant Edge's is not: 4.784992776249105e-33 came back as 4.7849927762491045e-33)."""
    if isinstance(want, float) and isinstance(got, (int, float)) and not isinstance(got, bool):
        return abs(got - want) <= 2 * math.ulp(max(abs(got), abs(want)))
    if isinstance(want, dict) and isinstance(got, dict):
        return got.keys() == want.keys() and all(same_json(got[key], want[key]) for key in want)
    if isinstance(want, list) and isinstance(got, list):
        return len(got) == len(want) and all(same_json(g, w) for g, w in zip(got, want, strict=True))
    return type(got) is type(want) and got == want


_collections = itertools.count()
TALLY: Counter[str] = Counter()


@pytest.fixture(scope="module", autouse=True)
def print_tally() -> Iterator[None]:
    """With ``-s``, the campaign's figures: files, lines, and what became of them."""
    yield
    if TALLY:
        print(f"\nfuzz tally: {dict(TALLY)}")


@settings(
    max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large]
)
@given(layout=st.sampled_from(sorted(LAYOUTS)), data=st.data())
def test_no_record_can_hurt_the_others_or_the_collection(tmp_path_factory, tiny_encoder, layout, data) -> None:  # type: ignore[no-untyped-def]
    lines, valid = data.draw(source_lines(json_only=layout == "json-array"))
    to_bytes, line_of = LAYOUTS[layout]
    folder = tmp_path_factory.mktemp("fuzz")
    source = folder / ("records.jsonl" if layout == "jsonl" else "records.json")
    source.write_bytes(to_bytes(lines))
    collection = f"fuzz{next(_collections)}"

    backend = load_backend(DEFAULT_BACKEND, data_dir=folder / "data")
    try:
        report = Syncer(tiny_encoder, backend, collection, limits=LIMITS).run(read_source(source))
    finally:
        backend.close()

    reported = {error.line for error in report.skipped}
    assert all(error.line is not None and str(source) in str(error) for error in report.skipped)
    fresh = load_backend(DEFAULT_BACKEND, data_dir=folder / "data")
    try:
        stored = {
            payload["doc_id"]: payload["metadata"]
            for _, payload in fresh.iter_payloads(collection, ["doc_id", "metadata", "text"])
        }
        assert fresh.count(collection) >= len(stored) == report.new
        Retriever(tiny_encoder, fresh, collection).search("copy files", k=3)
    finally:
        fresh.close()

    TALLY.update(files=1, lines=len(lines), well_formed=len(valid), skipped=len(report.skipped), stored=len(stored))
    TALLY[layout] += 1
    for position, line in enumerate(lines, start=1):
        number = line_of(position)
        if not line.strip():
            TALLY["blank"] += 1
            continue  # blank lines are not records
        if position in valid:
            record = valid[position]
            assert number not in reported, f"well-formed line {number} was skipped"
            assert same_json(stored[record["id"]], {k: v for k, v in record.items() if k not in ("id", "text")})
        elif number not in reported:
            assert parsed_id(line) in stored, f"line {number} was neither stored nor reported: {line[:80]!r}"
            TALLY["hostile_but_stored"] += 1


def test_fuzz_strategies_produce_both_kinds() -> None:
    """The generator really mixes well-formed and hostile lines (or the property above says little)."""
    from hypothesis import Phase, find

    quick = settings(phases=[Phase.generate], max_examples=200, database=None)
    find(
        source_lines(json_only=False),
        lambda case: len(case[1]) >= 2 and len(case[0]) - len(case[1]) >= 2,
        settings=quick,
    )
