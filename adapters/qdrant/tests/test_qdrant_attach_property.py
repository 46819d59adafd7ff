"""A property test of attach: random app edits interleaved with attach runs, on the real Qdrant engines.

Hypothesis plays a RAG application that edits its own collection the ways apps do:
inserts, text changes and removals, texts that become numbers or too long, re-upserts
of a point with the payload it read (with all the vectors it read, or only its own),
copies to new or existing ids, payloads copied onto other points, deletes, and writes
into a payload key named like splare-connect's state, before and after splare-connect
owns it. Between edits, attach runs. After every run:

- every point whose text is usable (a string within the limits) has exactly the vector
  of encoding its text, and the state ``{"hash": text_hash(id, text)}``; no other point
  has splare-connect's vector or state;
- everything the app wrote (every payload key and value, a key named like ours included
  when the app made it before splare-connect owned that name, every vector of its own,
  the collection's metadata) is exactly what it wrote.

Examples: ``SPLARE_ATTACH_EXAMPLES`` (200 by default; CI runs the default). The counts
of app operations and attach runs are printed with ``-s``.
"""

from __future__ import annotations

import copy
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from splare_connect import ConfigError, SplareEncoder
from splare_connect.attach import Attacher
from splare_connect.backends.schema import STATE_KEY, text_hash
from splare_connect.record_rules import RecordLimits

pytest.importorskip("splare_connect_qdrant")
from qdrant_attach_app import DENSE, App

EXAMPLES = int(os.environ.get("SPLARE_ATTACH_EXAMPLES", "200"))
OTHER_STATE_KEY = "_splare_2"  # chosen when the app already used "_splare" before the first attach
LIMITS = RecordLimits(max_text_chars=60)
TEXTS = [
    "ls lists directory contents",
    "grep prints lines matching a pattern",
    "tar stores files in an archive",
    "cp copies files and directories",
    "chmod changes file mode bits",
    "the same text twice",
    "the same text twice",
]
UNUSABLE = [42, ["a", "list"], None, {"nested": "object"}, "x" * 80]
BLANK = ["", "   "]  # usable by the record rules: encoded (to an empty or near-empty vector) like any text
THEIR_STATE_VALUES: list[Any] = [{"hash": "app-own", "owner": "app"}, "a string", {"hash": "0" * 32}]

_encoder: SplareEncoder | None = None
_expected: dict[str, Any] = {}
COUNTS = {"examples": 0, "app operations": 0, "attach runs": 0, "refused first runs": 0}


def expected_vector(text: str) -> Any:
    """The document vector of a short text, computed once."""
    assert _encoder is not None
    if text not in _expected:
        _expected[text] = _encoder.encode([text], role="document").sparse[0]
    return _expected[text]


def usable(text: Any) -> bool:
    return isinstance(text, str) and len(text) <= LIMITS.max_text_chars


def their_vector(seed: int) -> list[float]:
    """An app vector whose float32 values survive the engines exactly."""
    rng = np.random.default_rng(seed)
    return [float(v) for v in rng.standard_normal(DENSE).astype(np.float32)]


class AttachMachine(RuleBasedStateMachine):
    """The app's collection, a model of what the app wrote, and attach runs checked against both."""

    def __init__(self) -> None:
        super().__init__()
        self.tmp = Path(tempfile.mkdtemp(prefix="attach-property-"))
        self.app: App | None = None
        self.model: dict[str, dict[str, Any]] = {}  # point -> {"payload": theirs, "vectors": theirs}
        self.owned: str | None = None  # the state key splare-connect owns once a run succeeded
        self.state_key = STATE_KEY
        self.next_id = 100
        self.checked = False
        COUNTS["examples"] += 1

    @initialize(
        engine=st.sampled_from(["edge", "local-memory"]), texts=st.lists(st.sampled_from(TEXTS), min_size=1, max_size=4)
    )
    def create(self, engine: str, texts: list[str]) -> None:
        self.app = App(engine, self.tmp, distance="dot")
        self.app.create([])  # points 9001 (no text) and 9002 (a number)
        self._record("9001", "9002", count=False)
        for text in texts:
            self._insert(text)

    # ------------------------------------------------------------ app edits
    def _point(self, data: st.DataObject) -> str:
        return data.draw(st.sampled_from(sorted(self.model)))

    def _native(self, point: str) -> Any:
        return int(point) if point.isdigit() else point

    def _record(self, *points: str, count: bool = True) -> None:
        """What the app wrote to these points, as the engine keeps it (Edge drops null values, for one).

        Read back at once, before any attach run; splare-connect's vector and owned key
        are left out (their values are splare-connect's, even when the app copied them).
        """
        assert self.app is not None
        stored = self.app.points()
        for point in points:
            payload, vectors = stored[point]
            self.model[point] = {
                "payload": {k: v for k, v in payload.items() if k != self.owned},
                "vectors": {k: v for k, v in vectors.items() if k != "splare"},
            }
        COUNTS["app operations"] += count

    def _insert(self, text: Any) -> str:
        assert self.app is not None
        point = str(self.next_id)
        self.next_id += 1
        self.app.put(int(point), {"openai": their_vector(int(point))}, {"page_content": text, "metadata": {"n": 1}})
        self._record(point)
        return point

    @rule(text=st.sampled_from(TEXTS + UNUSABLE + BLANK))
    def insert(self, text: Any) -> None:
        self._insert(text)

    @precondition(lambda self: self.model)
    @rule(data=st.data(), text=st.sampled_from(TEXTS + UNUSABLE))
    def set_text(self, data: st.DataObject, text: Any) -> None:
        assert self.app is not None
        point = self._point(data)
        self.app.set_payload(self._native(point), {"page_content": text})
        self._record(point)

    @precondition(lambda self: self.model)
    @rule(data=st.data())
    def remove_text(self, data: st.DataObject) -> None:
        assert self.app is not None
        point = self._point(data)
        self.app.delete_payload_key(self._native(point), "page_content")
        self._record(point)

    @precondition(lambda self: self.model)
    @rule(data=st.data(), all_vectors=st.booleans(), new_id=st.booleans())
    def upsert_as_read(self, data: st.DataObject, all_vectors: bool, new_id: bool) -> None:
        """Re-upsert a point (or copy it to another id) with the payload read and all or only its own vectors."""
        assert self.app is not None
        source = self._point(data)
        payload, vectors = self.app.points()[source]
        if new_id:
            target = str(self.next_id)
            self.next_id += 1
        else:
            target = data.draw(st.sampled_from(sorted(self.model)))
        written = vectors if all_vectors else {"openai": vectors["openai"]}
        self.app.put(self._native(target), copy.deepcopy(written), copy.deepcopy(payload))
        self._record(target)

    @precondition(lambda self: len(self.model) >= 2)
    @rule(data=st.data())
    def copy_payload_onto(self, data: st.DataObject) -> None:
        """``set_payload`` of one point's whole payload onto another, which keeps its vectors."""
        assert self.app is not None
        source, target = self._point(data), self._point(data)
        payload, _ = self.app.points()[source]
        self.app.set_payload(self._native(target), copy.deepcopy(payload))
        self._record(target)

    @precondition(lambda self: self.model)
    @rule(data=st.data())
    def delete(self, data: st.DataObject) -> None:
        assert self.app is not None
        point = self._point(data)
        self.app.delete(self._native(point))
        del self.model[point]
        COUNTS["app operations"] += 1

    @precondition(lambda self: self.model)
    @rule(data=st.data(), value=st.sampled_from(THEIR_STATE_VALUES))
    def write_a_key_named_like_ours(self, data: st.DataObject, value: Any) -> None:
        """The app writes ``_splare``: its own key until splare-connect owns that name, ours after."""
        assert self.app is not None
        point = self._point(data)
        self.app.set_payload(self._native(point), {STATE_KEY: copy.deepcopy(value)})
        self._record(point)

    # -------------------------------------------------------------- attach
    @rule()
    def attach(self) -> None:
        assert self.app is not None and _encoder is not None
        before = self.app.snapshot_of_everything()
        backend = self.app.backend()
        chosen = None if self.owned else self.state_key
        try:
            Attacher(_encoder, backend, "kb", text_field="page_content", state_key=chosen, limits=LIMITS).run()
        except ConfigError as error:
            # Only a first run refuses: the app uses our state key, or no point has a text yet.
            assert self.owned is None, error
            assert f"payload key {STATE_KEY!r}" in str(error) or "has a string at" in str(error), error
            backend.close()
            assert self.app.snapshot_of_everything() == before  # refused before any write
            if f"payload key {STATE_KEY!r}" in str(error):
                self.state_key = OTHER_STATE_KEY
            COUNTS["refused first runs"] += 1
            return
        backend.close()
        self.owned = self.state_key
        COUNTS["attach runs"] += 1
        self.checked = True
        self._check()

    def _check(self) -> None:
        assert self.app is not None
        points = self.app.points()
        assert sorted(points) == sorted(self.model)
        for point, (payload, vectors) in points.items():
            theirs = self.model[point]
            assert {k: v for k, v in payload.items() if k != self.owned} == theirs["payload"], point
            assert {k: v for k, v in vectors.items() if k != "splare"} == theirs["vectors"], point
            text = payload.get("page_content")
            if usable(text):
                expected = expected_vector(text)
                assert payload[self.owned] == {"hash": text_hash(self._native(point), text)}, point
                assert vectors["splare"]["indices"] == expected.indices.tolist(), point
                np.testing.assert_allclose(vectors["splare"]["values"], expected.values, rtol=1e-6)
            else:
                assert self.owned not in payload and "splare" not in vectors, point
        if self.app.engine != "edge":
            metadata = self.app._client().get_collection("kb").config.metadata
            assert metadata["owner"] == "app" and metadata["splare_connect"]["state_key"] == self.owned

    @invariant()
    def nothing_of_ours_before_the_first_run(self) -> None:
        if self.app is not None and self.owned is None:
            assert all("splare" not in vectors for _, vectors in self.app.points().values())

    def teardown(self) -> None:
        """A last run, so every example's final edits are checked too; then the files go."""
        try:
            if self.app is not None:
                self.attach()
        finally:
            if self.app is not None:
                self.app.close()
            shutil.rmtree(self.tmp, ignore_errors=True)


def test_attach_converges_and_never_changes_what_the_app_wrote(tiny_encoder: SplareEncoder) -> None:
    global _encoder
    _encoder = tiny_encoder
    for key in COUNTS:
        COUNTS[key] = 0
    run_state_machine_as_test(
        AttachMachine,
        settings=settings(
            max_examples=EXAMPLES,
            stateful_step_count=20,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
            database=None,
        ),
    )
    print(f"\nattach property: {COUNTS}")
    assert COUNTS["attach runs"] > EXAMPLES // 2  # the runs checked are many, not a few
