"""Filter values the engines cannot hold (issue 33, defect 9): integers outside signed 64 bits, NaN, infinity.

Such a value reached Qdrant's filter classes and came back as a raw ``TypeError`` (a 500
from the service, ``error: TypeError: failed to extract enum Helper`` from the CLI). Now
:class:`~splare_connect.filters.Condition` refuses it with a one-line ConfigError, from
text and from Python alike; the boundaries themselves still search.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from splare_connect import ConfigError
from splare_connect.backends import load_backend
from splare_connect.backends.default import DEFAULT_BACKEND
from splare_connect.filters import INT64_MAX, INT64_MIN, Condition, parse_filters
from splare_connect.testing.fixtures import clean_environment

OUT_OF_RANGE = [
    ("x=9223372036854775808", "9223372036854775808"),
    ("x in 1,99999999999999999999", "99999999999999999999"),
    ("x!=-9223372036854775809", "-9223372036854775809"),
    ("x>=99999999999999999999999999", "99999999999999999999999999"),
]


@pytest.mark.parametrize(("expression", "value"), OUT_OF_RANGE, ids=[e for e, _ in OUT_OF_RANGE])
def test_integers_outside_64_bits_are_refused_naming_field_and_value(expression: str, value: str) -> None:
    with pytest.raises(ConfigError) as raised:
        parse_filters([expression])
    message = str(raised.value)
    assert "'x'" in message and value in message and "signed 64-bit" in message and "\n" not in message


def test_the_64_bit_boundaries_are_accepted() -> None:
    conditions = parse_filters([f"x={INT64_MAX}", f"x!={INT64_MIN}", f"x in {INT64_MIN},{INT64_MAX}"])
    assert [c.value for c in conditions] == [INT64_MAX, INT64_MIN, (INT64_MIN, INT64_MAX)]


@pytest.mark.parametrize("expression", ["x>=inf", "x<-Infinity", "x>nan", "x<=1e999"])
def test_ranges_on_nan_or_infinity_are_refused(expression: str) -> None:
    with pytest.raises(ConfigError, match="range comparisons need a number"):
        parse_filters([expression])


def test_nan_and_inf_in_equality_are_words() -> None:
    """``name=Nan`` means the string (a field may hold it); a float NaN would never match anything."""
    assert [c.value for c in parse_filters(["name=Nan", "x!=inf", "x in nan,1"])] == ["Nan", "inf", ("nan", 1)]


@pytest.mark.parametrize(
    ("op", "value"),
    [
        ("eq", 2**63),
        ("ne", -(2**63) - 1),
        ("in", (1, 2**64)),
        ("gte", 10**30),
        ("eq", float("nan")),
        ("gt", float("inf")),
        ("in", ("a", float("-inf"))),
    ],
)
def test_python_built_conditions_are_checked_too(op: str, value: object) -> None:
    with pytest.raises(ConfigError, match="filter on 'x'"):
        Condition("x", op, value)  # type: ignore[arg-type]


def test_booleans_and_ordinary_numbers_still_pass() -> None:
    assert Condition("x", "eq", True).value is True
    assert Condition("x", "lt", 2.5).value == 2.5


# ------------------------------------------- the default backend, library and CLI
@pytest.fixture(scope="module")
def stored_collection(tmp_path_factory: pytest.TempPathFactory, tiny_encoder) -> Path:  # type: ignore[no-untyped-def]
    """The default backend's data directory with collection ``c``: integer field ``x`` at the 64-bit boundaries."""
    from splare_connect.documents import read_iterable
    from splare_connect.sync import Syncer

    data_dir = tmp_path_factory.mktemp("filter-data")
    records = [
        {"id": "low", "text": "copy files", "x": INT64_MIN},
        {"id": "high", "text": "list files", "x": INT64_MAX},
        {"id": "mid", "text": "move files", "x": 3},
    ]
    backend = load_backend(DEFAULT_BACKEND, data_dir=data_dir)
    try:
        Syncer(tiny_encoder, backend, "c", indexed_fields=("x",)).run(read_iterable(records))
    finally:
        backend.close()
    return data_dir


def test_retriever_search_refuses_out_of_range_values_and_keeps_the_boundaries(
    stored_collection: Path, tiny_encoder
) -> None:  # type: ignore[no-untyped-def]
    from splare_connect.retriever import Retriever

    backend = load_backend(DEFAULT_BACKEND, data_dir=stored_collection)
    try:
        retriever = Retriever(tiny_encoder, backend, "c")
        for expression, _ in OUT_OF_RANGE:
            with pytest.raises(ConfigError, match="signed 64-bit"):
                retriever.search("files", k=3, filter=parse_filters([expression]))
        with pytest.raises(ConfigError, match="filter on 'x'"):
            retriever.search("files", k=3, filter=[Condition("x", "eq", 2**63)])
        high = retriever.search("files", k=3, filter=parse_filters([f"x={INT64_MAX}"]))
        low = retriever.search("files", k=3, filter=parse_filters([f"x in {INT64_MIN}"]))
        not_high = retriever.search("files", k=3, filter=parse_filters([f"x!={INT64_MAX}"]))
        quoted = retriever.search("files", k=3, filter=parse_filters(['x="99999999999999999999"']))
    finally:
        backend.close()
    assert [h.doc_id for h in high] == ["high"] and [h.doc_id for h in low] == ["low"]
    assert {h.doc_id for h in not_high} == {"low", "mid"}
    assert quoted == []  # a digit string too long for an integer matches as a string only


def test_the_cli_prints_one_line_for_an_out_of_range_filter(stored_collection: Path, tiny_model_dir: Path) -> None:
    env = clean_environment()
    env["SPLARE_MODEL"] = str(tiny_model_dir)
    command = [sys.executable, "-m", "splare_connect.cli", "search", "files", "-c", "c", "--data-dir"]
    result = subprocess.run(
        [*command, str(stored_collection), "-f", "x=9223372036854775808"],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert result.returncode == 1, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "signed 64-bit" in lines[0] and "9223372036854775808" in lines[0], result.stderr
    assert "TypeError" not in result.stderr and "Traceback" not in result.stderr
