"""The embedded engine's rules, on the real Qdrant Edge engine and real second processes.

One process at a time per collection: a contender (writer, reader or drop) gets one
line naming the holder's PID and pointing at a Qdrant server, and the collection is
usable again, data intact, once the holder exits, even by ``kill -9``. A damaged
``collection.json`` or an unusable data directory is one line naming the path.
"""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest

from splare_connect import BackendError, SparseVector
from splare_connect.backends import CollectionSpec, PointRecord

pytest.importorskip("splare_connect_qdrant")
pytest.importorskip("fcntl")

from splare_connect_qdrant import EdgeDriver, QdrantBackend

DIM = 64
SPEC = CollectionSpec("c", sparse_dim=DIM, fingerprint={"name": "test-encoder", "digest": "d1"})

# A second process: opens collection "c" under argv[1] (through the backend, or, as a process
# of a version without our lock would, through Edge directly), says "ready", and holds it until
# its stdin closes or 20 s pass. The alarm bounds it even if the test never reads from it.
HOLDER = textwrap.dedent(
    """
    import select, signal, sys
    signal.alarm(30)
    import numpy as np
    from splare_connect import SparseVector
    from splare_connect.backends import CollectionSpec, PointRecord
    from splare_connect_qdrant import EdgeDriver, QdrantBackend
    if sys.argv[2] == "raw-edge":
        import qdrant_edge
        holder = qdrant_edge.EdgeShard.load(sys.argv[1] + "/c/shard")
    else:
        holder = QdrantBackend(EdgeDriver(sys.argv[1]))
        spec = CollectionSpec("c", sparse_dim=64, fingerprint={"name": "test-encoder", "digest": "d1"})
        holder.create_collection(spec)
        vector = SparseVector.clean(np.array([1, 5]), np.array([1.0, 2.0]), 64)
        holder.upsert("c", [PointRecord("held#0", vector, None, {"doc_id": "held"})])
    print("ready", flush=True)
    select.select([sys.stdin], [], [], 20)
    holder.close()
    """
)


def point(record_id: str) -> PointRecord:
    return PointRecord(record_id, SparseVector.clean(np.array([1, 7]), np.array([0.5, 1.5]), DIM), None, {})


@contextmanager
def held(data_dir: Path, mode: str = "backend") -> Iterator[subprocess.Popen]:
    """A second process holding collection "c"; closing its stdin lets it exit cleanly."""
    process = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(data_dir), mode],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        if process.stdout.readline().strip() != "ready":
            process.kill()
            pytest.fail(f"holder process failed: {process.communicate(timeout=30)[1]}")
        yield process
    finally:
        release(process)


def release(process: subprocess.Popen, *, kill: bool = False) -> None:
    """End the holder: kill -9, or close its stdin so it closes the collection and exits."""
    if process.poll() is None:
        if kill:
            process.send_signal(signal.SIGKILL)
        else:
            assert process.stdin is not None
            process.stdin.close()
    process.wait(timeout=30)


def assert_in_use(error: pytest.ExceptionInfo[BackendError], process: subprocess.Popen | None) -> None:
    message = str(error.value)
    assert "\n" not in message
    assert message.startswith("collection 'c' is in use by another process")
    if process is not None:
        assert f"(pid {process.pid})" in message
    assert "one process per collection" in message
    assert "use a Qdrant server (--url) for parallel writers and readers" in message


@pytest.mark.parametrize("ending", ["exit", "kill -9"])
def test_a_second_writer_is_refused_until_the_holder_exits(tmp_path: Path, ending: str) -> None:
    backend = QdrantBackend(EdgeDriver(tmp_path))
    with held(tmp_path) as holder:
        backend.create_collection(SPEC)  # adopts the holder's collection: reading its description needs no lock
        with pytest.raises(BackendError) as refused:
            backend.upsert("c", [point("mine#0")])
        assert_in_use(refused, holder)
        release(holder, kill=ending == "kill -9")
        assert backend.count("c") == 1  # the holder's point survived, even a kill -9
        backend.upsert("c", [point("mine#0")])
        assert backend.count("c") == 2
    backend.close()


def test_reads_are_refused_while_another_process_writes(tmp_path: Path) -> None:
    backend = QdrantBackend(EdgeDriver(tmp_path))
    query = SparseVector.clean(np.array([5]), np.array([1.0]), DIM)
    with held(tmp_path) as holder:
        assert backend.list_collections() == ["c"]
        assert backend.describe_collection("c") == SPEC
        for read in (lambda: backend.count("c"), lambda: backend.search("c", query, k=3)):
            with pytest.raises(BackendError) as refused:
                read()
            assert_in_use(refused, holder)
    assert [hit.id for hit in backend.search("c", query, k=3)] == ["held#0"]
    backend.close()


def test_drop_is_refused_while_another_process_holds_the_collection(tmp_path: Path) -> None:
    backend = QdrantBackend(EdgeDriver(tmp_path))
    with held(tmp_path) as holder:
        with pytest.raises(BackendError) as refused:
            backend.drop_collection("c")
        assert_in_use(refused, holder)
        assert "nothing was deleted" in str(refused.value)
        assert (tmp_path / "c" / "collection.json").is_file() and (tmp_path / "c" / "shard").is_dir()
    backend.drop_collection("c")
    assert not (tmp_path / "c").exists()
    assert backend.list_collections() == []
    assert QdrantBackend(EdgeDriver(tmp_path)).describe_collection("c") is None


def test_a_process_without_the_lock_is_still_reported_in_one_line(tmp_path: Path) -> None:
    """An older splare-connect (or Windows, which has no flock) holds only Edge's own WAL lock."""
    backend = QdrantBackend(EdgeDriver(tmp_path))
    backend.create_collection(SPEC)
    backend.close()
    with held(tmp_path, "raw-edge"), pytest.raises(BackendError) as refused:
        backend.count("c")
    assert_in_use(refused, None)
    assert backend.count("c") == 0
    backend.close()


def test_a_second_backend_in_the_same_process_is_refused_until_the_first_closes(tmp_path: Path) -> None:
    first = QdrantBackend(EdgeDriver(tmp_path))
    first.create_collection(SPEC)
    first.upsert("c", [point("a#0")])
    second = QdrantBackend(EdgeDriver(tmp_path))
    with pytest.raises(BackendError) as refused:
        second.count("c")
    message = str(refused.value)
    assert "\n" not in message and "another backend in this process" in message and "close the other one" in message
    first.close()
    assert second.count("c") == 1
    second.close()


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        ("", "empty file"),
        ('{"sparse_dim": 64, "fingerp', "invalid JSON"),
        ('{"sparse_dim": 64}', "no 'fingerprint' field"),
    ],
    ids=["empty", "truncated", "no-fingerprint"],
)
def test_a_damaged_collection_description_is_one_line_naming_the_file(
    tmp_path: Path, content: str, problem: str
) -> None:
    QdrantBackend(EdgeDriver(tmp_path)).create_collection(
        SPEC
    )  # unclosed: dropped, it must not keep the collection locked
    spec_file = tmp_path / "c" / "collection.json"
    spec_file.write_text(content)
    backend = QdrantBackend(EdgeDriver(tmp_path))
    for use in (
        lambda: backend.describe_collection("c"),
        lambda: backend.count("c"),
        lambda: backend.create_collection(SPEC),
    ):
        with pytest.raises(BackendError) as damaged:
            use()
        message = str(damaged.value)
        assert "\n" not in message
        assert message.startswith(f"{spec_file}: damaged collection description ({problem}")
        assert message.endswith("restore it or drop the collection")
    backend.drop_collection("c")  # the way out the message names works
    assert backend.list_collections() == []


def test_a_data_dir_that_is_a_file_is_refused_at_once(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("x")
    with pytest.raises(BackendError) as refused:
        QdrantBackend(EdgeDriver(blocker))
    assert str(refused.value) == f"data directory {blocker}: is a file, not a directory"


def test_a_data_dir_through_a_regular_file_is_one_line_naming_it(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("x")
    backend = QdrantBackend(EdgeDriver(blocker / "sub" / "data"))
    assert backend.list_collections() == [] and backend.describe_collection("c") is None
    with pytest.raises(BackendError) as blocked:
        backend.create_collection(SPEC)
    message = str(blocked.value)
    assert "\n" not in message
    assert message.startswith("creating collection 'c' failed: ")
    assert f"{blocker} is a file, not a directory" in message


def test_a_read_only_data_dir_is_one_line_naming_it(tmp_path: Path) -> None:
    """A real read-only mount (root ignores chmod): a bind mount made read-only in a private mount namespace."""
    if shutil.which("unshare") is None or shutil.which("mount") is None:
        pytest.skip("needs unshare and mount (util-linux) for a read-only mount")
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    probe = textwrap.dedent(
        """
        import sys
        from splare_connect.backends import CollectionSpec
        from splare_connect_qdrant import EdgeDriver, QdrantBackend
        try:
            spec = CollectionSpec("c", sparse_dim=64, fingerprint={"name": "t"})
            QdrantBackend(EdgeDriver(sys.argv[1])).create_collection(spec)
        except Exception as error:
            print(type(error).__name__, error)
        """
    )
    script = 'mount --bind "$1" "$1" && mount -o remount,bind,ro "$1" || exit 77; exec "$2" -c "$3" "$1"'
    result = subprocess.run(
        ["unshare", "-rm", "sh", "-c", script, "sh", str(data_dir), sys.executable, probe],
        capture_output=True,
        text=True,
        timeout=60,
    )
    if result.returncode == 77 or "unshare:" in result.stderr:
        pytest.skip(f"no private read-only mount here: {result.stderr.strip()}")
    assert result.stdout.splitlines() == [
        f"BackendError creating collection 'c' failed: {data_dir / 'c'}: Read-only file system "
        "(the embedded engine needs a writable data directory, even to search)"
    ], result.stderr


def test_cli_commands_on_a_held_collection_fail_before_loading_a_model(tmp_path: Path) -> None:
    """search and ingest open the collection first: the error comes at once, not after the model loads."""
    import os

    env = {**os.environ, "SPLARE_MODEL": str(tmp_path / "no-such-model"), "SPLARE_DATA_DIR": str(tmp_path)}
    source = tmp_path / "docs.jsonl"
    source.write_text('{"id": "a", "text": "hello"}\n')
    with held(tmp_path) as holder:
        for args in (("search", "hi", "-c", "c"), ("ingest", str(source), "-c", "c")):
            result = subprocess.run(
                [sys.executable, "-m", "splare_connect.cli", *args], capture_output=True, text=True, env=env, timeout=60
            )
            assert result.returncode == 1 and f"in use by another process (pid {holder.pid})" in result.stderr
            assert "no-such-model" not in result.stderr and "Traceback" not in result.stderr
