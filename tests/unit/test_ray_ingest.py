"""Ingest on a real local Ray cluster: the same collection as a local sync, point for point.

The cluster is Ray's own (``ray.init`` with 2 CPUs; encoder actors are separate worker
processes); the engine is the default backend, embedded. Workers that write to a server
themselves are tested on OpenSearch's in-memory cluster in that adapter's tests
(adapters/opensearch/tests/test_opensearch_ray_ingest.py).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from splare_connect.backends import load_backend
from splare_connect.backends.default import DEFAULT_BACKEND
from splare_connect.backends.discovery import describe_backend
from splare_connect.backends.location import BackendLocation
from splare_connect.backends.schema import point_id
from splare_connect.documents import read_source
from splare_connect.sync import Syncer, SyncReport
from splare_connect.testing.ingest_runs import report_counts, write_jsonl
from splare_connect.testing.points import assert_documents_whole

ray = pytest.importorskip("ray")

from splare_connect.distributed.ray_ingest import EncoderRecipe, RayCluster, RayIngest  # noqa: E402

FIELDS = ["doc_id", "chunk_index", "chunk_count", "content_hash", "text", "metadata"]


def edge_contents(backend: Any, name: str) -> dict[str, Any]:
    """Everything an Edge collection holds: its spec, and each point's payload and vectors."""
    payloads = dict(backend.iter_payloads(name, FIELDS))
    ids = sorted(payloads)
    sparse = backend.fetch_sparse(name, ids)
    dense = {}
    for record_id in ids:
        (point,) = backend.driver.retrieve(name, [point_id(record_id)], [], "dense")
        dense[record_id] = np.asarray(point.vector["dense"], np.float32)
    return {
        "spec": backend.describe_collection(name).to_dict(),
        "points": {
            rid: (payloads[rid], sparse[rid].indices.tolist(), sparse[rid].values.tolist(), dense[rid].tolist())
            for rid in ids
        },
    }


def test_scenarios_give_the_local_collection_point_for_point(
    tmp_path: Path, local_cluster: None, tiny_encoder, tiny_model_dir: Path, example_records: list[dict]
) -> None:  # type: ignore[no-untyped-def]
    """New, bad, changed and deleted records: same reports and same points as a local sync."""
    first = write_jsonl(tmp_path / "first.jsonl", example_records[:24], ("{not json", '{"id": "x", "text": 5}'))
    changed = [  # some documents grow, some shrink to fewer chunks (their stale chunks must go)
        dict(r, text=r["text"] + " (revised)") if i % 7 == 0 else dict(r, text=r["text"][:200]) if i % 5 == 0 else r
        for i, r in enumerate(example_records)
    ]
    second = write_jsonl(tmp_path / "second.jsonl", changed[4:30], ('{"id": "y"}',))
    recipe = EncoderRecipe(model=str(tiny_model_dir))
    local = load_backend(DEFAULT_BACKEND, data_dir=tmp_path / "local")
    remote = load_backend(DEFAULT_BACKEND, data_dir=tmp_path / "ray")
    try:
        for source, delete in ((first, False), (second, True)):
            options = {"documents_per_write": 3, "indexed_fields": ("section",)}
            expected = Syncer(tiny_encoder, local, "man", **options).run(read_source(source), delete_missing=delete)
            report = RayIngest(Syncer(tiny_encoder, remote, "man", **options), recipe).run(
                read_source(source), delete_missing=delete
            )
            assert report_counts(report) == report_counts(expected)
            assert sum(w.documents for w in report.workers) == report.encoded
            assert any(w.worker != "driver" for w in report.workers)  # the actors did the work, not the driver
        assert expected.changed > 0 and expected.deleted_documents == 4 and len(expected.skipped) == 1
        assert expected.skipped[0].line == 4 and expected.skipped[0].source == str(second)
        assert edge_contents(remote, "man") == edge_contents(local, "man")
    finally:
        local.close()
        remote.close()


def test_a_killed_worker_is_restarted_and_the_counts_are_exact(
    tmp_path: Path, local_cluster: None, tiny_encoder, tiny_model_dir: Path, example_records: list[dict]
) -> None:  # type: ignore[no-untyped-def]
    records = example_records[:60]
    source = write_jsonl(tmp_path / "docs.jsonl", records)
    backend = load_backend(DEFAULT_BACKEND, data_dir=tmp_path / "data")
    killed: list[int] = []

    def kill_a_worker(report: SyncReport) -> None:
        workers = [w.worker for w in getattr(report, "workers", []) if w.worker != "driver"]
        if workers and not killed:
            pid = int(workers[0].rsplit(":", 1)[1])
            os.kill(pid, signal.SIGKILL)
            killed.append(pid)

    try:
        syncer = Syncer(tiny_encoder, backend, "man", documents_per_write=2)
        one_worker = RayCluster(workers=1)  # so that the batches after the kill need a restarted worker
        report = RayIngest(syncer, EncoderRecipe(model=str(tiny_model_dir)), cluster=one_worker).run(
            read_source(source), on_progress=kill_a_worker
        )
        assert killed, "no worker reported before the run ended"
        pids = {int(w.worker.rsplit(":", 1)[1]) for w in report.workers if w.worker != "driver"}
        assert pids - set(killed), "no restarted worker did any batch"
        chunks = sum(len(syncer._chunks(d)) for d in read_source(source))  # type: ignore[arg-type]
        assert (report.new, report.chunks_written, report.skipped) == (len(records), chunks, [])
        assert sum(w.batches for w in report.workers) == 30  # each write batch counted once
        payloads = dict(backend.iter_payloads("man", ["doc_id", "chunk_count"]))
        assert len(payloads) == backend.count("man") == chunks
        assert {p["doc_id"] for p in payloads.values()} == {r["id"] for r in records}
    finally:
        backend.close()
    again = load_backend(DEFAULT_BACKEND, data_dir=tmp_path / "data")
    try:
        resumed = Syncer(tiny_encoder, again, "man", documents_per_write=2).run(read_source(source))
        assert resumed.unchanged == len(records)  # every document complete, with its current hash
    finally:
        again.close()


def test_cli_ingest_on_ray_then_a_local_sync_finds_nothing_to_do(
    tmp_path: Path, tiny_model_dir: Path, example_records: list[dict]
) -> None:  # type: ignore[no-untyped-def]
    source = write_jsonl(tmp_path / "docs.jsonl", example_records[:70], ("{oops",))  # two write batches of <= 64
    env = {**os.environ, "SPLARE_MODEL": str(tiny_model_dir), "SPLARE_DATA_DIR": str(tmp_path / "data")}
    command = [sys.executable, "-m", "splare_connect.cli", "ingest", str(source), "-c", "man", "--json"]
    ray_run = subprocess.run([*command, "--runner", "ray", "--workers", "1"], env=env, capture_output=True, text=True)
    assert ray_run.returncode == 3, ray_run.stderr  # finished, one record skipped
    report = json.loads(ray_run.stdout)
    assert (report["new"], len(report["skipped"])) == (70, 1)
    assert report["workers"][0]["worker"] == "driver" and len(report["workers"]) >= 2
    assert f"skipped {source}:4" in " ".join(ray_run.stderr.split())
    local_run = subprocess.run(command, env=env, capture_output=True, text=True)
    assert json.loads(local_run.stdout)["unchanged"] == 70, local_run.stderr


def test_a_worker_with_another_model_stops_the_run_with_one_line(
    tmp_path: Path, local_cluster: None, tiny_encoder, other_tiny_model_dir: Path, example_records: list[dict]
) -> None:  # type: ignore[no-untyped-def]
    from splare_connect.errors import EncoderMismatchError

    source = write_jsonl(tmp_path / "docs.jsonl", example_records[:8])
    backend = load_backend(DEFAULT_BACKEND, data_dir=tmp_path / "data")
    try:
        syncer = Syncer(tiny_encoder, backend, "man", documents_per_write=2)
        with pytest.raises(EncoderMismatchError) as caught:
            RayIngest(syncer, EncoderRecipe(model=str(other_tiny_model_dir))).run(read_source(source))
    finally:
        backend.close()
    message = str(caught.value)
    assert "\n" not in message and "fingerprint" in message and "same model files" in message


def test_a_ray_run_killed_whole_resumes_without_loss_or_duplicates(
    tmp_path: Path, tiny_model_dir: Path, example_records: list[dict]
) -> None:  # type: ignore[no-untyped-def]
    """kill -9 the driver of `ingest --runner ray` after a worker's batch landed, then run it again."""
    records = example_records[:200]  # the driver's batch of 64, then three for the actor
    source = write_jsonl(tmp_path / "docs.jsonl", records)
    env = {**os.environ, "SPLARE_MODEL": str(tiny_model_dir), "SPLARE_DATA_DIR": str(tmp_path / "data")}
    command = [sys.executable, "-m", "splare_connect.cli", "ingest", str(source), "-c", "man", "--json"]
    victim = subprocess.Popen(
        [*command, "--runner", "ray", "--workers", "1"],
        env=env,
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        text=True,
        start_new_session=True,
    )
    assert victim.stderr is not None
    progress = 0
    for line in victim.stderr:
        progress += line.startswith("progress:")
        if progress == 2:  # the driver's batch and one of the actor's are stored; one is not
            break
    os.killpg(victim.pid, signal.SIGKILL)  # the driver and the local cluster it started
    victim.wait(timeout=30)
    survivor = load_backend(DEFAULT_BACKEND, data_dir=tmp_path / "data")
    done_before = {p["doc_id"] for _, p in survivor.iter_payloads("man", ["doc_id"])}
    survivor.close()
    assert 0 < len(done_before) < len(records)

    resumed = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr
    report = json.loads(resumed.stdout)
    assert (report["documents"], report["unchanged"]) == (len(records), len(done_before))
    final = load_backend(DEFAULT_BACKEND, data_dir=tmp_path / "data")
    assert_documents_whole(final, "man", {r["id"] for r in records})
    final.close()


def test_a_pool_the_local_cluster_cannot_hold_is_refused_at_once() -> None:
    from splare_connect.distributed.ray_ingest import _check_fits
    from splare_connect.errors import ConfigError

    _check_fits({"CPU": 2.0}, RayCluster(workers=4, cpus_per_worker=1))  # actors beyond the CPUs wait their turn
    with pytest.raises(ConfigError, match=r"asks for 1 GPU .*has 0 GPUs"):
        _check_fits({"CPU": 2.0}, RayCluster(gpus_per_worker=1))
    with pytest.raises(ConfigError, match=r"asks for 4 CPUs .*has 2 CPUs"):
        _check_fits({"CPU": 2.0}, RayCluster(cpus_per_worker=4))


def test_what_workers_elsewhere_are_sent_needs_nothing_of_this_process(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A model directory goes as an absolute path; a server URL from $<BACKEND>_URL is written in."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "model").mkdir()
    assert EncoderRecipe(model="model").for_other_machines().model == str(tmp_path / "model")
    assert EncoderRecipe(model="a-model-name").for_other_machines().model == "a-model-name"
    assert EncoderRecipe().for_other_machines().model is None
    url_env = describe_backend(DEFAULT_BACKEND).url_env
    assert url_env is not None
    monkeypatch.setenv(url_env, "http://db.internal:6333")
    assert BackendLocation(DEFAULT_BACKEND).for_other_machines().url == "http://db.internal:6333"
    given = BackendLocation(DEFAULT_BACKEND, url="http://given:6333")
    assert given.for_other_machines().url == "http://given:6333"
    monkeypatch.delenv(url_env)
    assert BackendLocation(DEFAULT_BACKEND).for_other_machines().url is None
