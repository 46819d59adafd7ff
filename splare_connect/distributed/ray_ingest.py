"""A sync whose encoding runs on a Ray cluster: Ray Data, a pool of encoder actors.

The driver (the process that calls :meth:`RayIngest.run`) keeps the parts of a sync
that need one view of everything: it reads the source with the same readers as a local
sync (bad records reported with file and line, duplicate ids found across the whole
source), reads the collection's state, decides which documents are new or changed,
chunks them and forms the same write batches a local sync forms. Ray Data sends each
write batch to a pool of actors (``map_batches`` with a callable class), each of which
loads the encoder once and encodes whole write batches.

Who writes depends on the database:

- a server (Qdrant by URL, OpenSearch) takes writes from many processes, so each actor
  writes its batches itself, with the same halving retry of refused documents as a
  local sync, and returns only what was refused;
- an embedded engine (Qdrant Edge, qdrant-client's local mode) allows one writer, so
  actors return the vectors and the driver writes them.

Either way the driver encodes the first write batch itself, so the collection is created
exactly as a local sync creates it (its largest weight comes from that batch), and it
counts each batch once, by its number, however often Ray ran it. A worker killed
mid-run is restarted by Ray and its batch run again: writes are idempotent (ids are
deterministic), so nothing is lost or duplicated. A run killed whole resumes like any
sync: the collection is the record of what is done.
"""

from __future__ import annotations

import json
import logging
import os
import re
import socket
import time
import warnings
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field, replace
from itertools import chain, islice
from pathlib import Path
from typing import Any

import numpy as np

from splare_connect import errors
from splare_connect.backends.location import BackendLocation, accepts_concurrent_writers
from splare_connect.distributed.wire import batch_from_json, batch_to_json, pack_vectors, unpack_vectors
from splare_connect.documents import Document
from splare_connect.errors import (
    BackendError,
    BadRecordError,
    ConfigError,
    EncoderMismatchError,
    MissingDependencyError,
    SplareError,
)
from splare_connect.sync import Syncer, SyncReport, WriteBatch, point_groups, upsert_documents

LOGGER = logging.getLogger(__name__)


@dataclass(frozen=True)
class EncoderRecipe:
    """How each worker loads the encoder: the arguments of ``SplareEncoder.from_pretrained``.

    Attributes:
        model: A model name or directory (as the workers see it), or None for the default model.
        precision: ``"fp32"`` or ``"int8"``.
        runtime: ``"torch"`` or ``"openvino"``.
        trust_remote_code: Let the backbone run code shipped in its directory.
    """

    model: str | None = None
    precision: str = "fp32"
    runtime: str = "torch"
    trust_remote_code: bool = False

    def for_other_machines(self) -> EncoderRecipe:
        """The recipe with a model directory as an absolute path (workers elsewhere have
        another working directory); a model name is left as it is."""
        if self.model is None or not Path(self.model).is_dir():
            return self
        return replace(self, model=str(Path(self.model).resolve()))


@dataclass(frozen=True)
class RayCluster:
    """Where and how wide the encoding runs.

    Attributes:
        address: A running cluster's address (``"auto"``: the one this machine belongs
            to), or None to start a local one for this run.
        workers: Encoder actors (each loads the model once).
        cpus_per_worker: CPUs each actor reserves (its torch threads).
        gpus_per_worker: GPUs each actor reserves; with GPUs an actor encodes on CUDA
            under bf16 autocast (fp32 weights, so the fingerprint is the same).
        batches_per_window: Write batches planned and handed to Ray at a time, which
            bounds what the driver holds (the text of up to this many batches).
    """

    address: str | None = None
    workers: int = 2
    cpus_per_worker: float = 1.0
    gpus_per_worker: float = 0.0
    batches_per_window: int = 256

    def __post_init__(self) -> None:
        if self.workers < 1:
            raise ConfigError(f"workers must be at least 1, got {self.workers}")
        if self.cpus_per_worker <= 0 or self.gpus_per_worker < 0:
            raise ConfigError("cpus_per_worker must be positive and gpus_per_worker not negative")
        if self.batches_per_window < 1:
            raise ConfigError(f"batches_per_window must be at least 1, got {self.batches_per_window}")


@dataclass
class WorkerThroughput:
    """What one worker process did: batches, documents and chunks, and its busy seconds."""

    worker: str
    batches: int = 0
    documents: int = 0
    chunks: int = 0
    seconds: float = 0.0

    @property
    def documents_per_second(self) -> float:
        return self.documents / self.seconds if self.seconds > 0 else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "worker": self.worker,
            "batches": self.batches,
            "documents": self.documents,
            "chunks": self.chunks,
            "seconds": round(self.seconds, 3),
            "documents_per_second": round(self.documents_per_second, 3),
        }


@dataclass
class RayIngestReport(SyncReport):
    """A sync report with each worker's throughput (the driver's own first batch is ``driver``)."""

    workers: list[WorkerThroughput] = field(default_factory=list)

    def credit(self, worker: str, batch: WriteBatch, seconds: float) -> None:
        """Count a write batch done by ``worker`` in ``seconds`` of its time."""
        entry = next((w for w in self.workers if w.worker == worker), None)
        if entry is None:
            entry = WorkerThroughput(worker)
            self.workers.append(entry)
        entry.batches += 1
        entry.documents += len(batch)
        entry.chunks += sum(len(chunks) for _, chunks in batch)
        entry.seconds += seconds

    def to_dict(self) -> dict[str, Any]:
        data = super().to_dict()
        data["workers"] = [worker.to_dict() for worker in self.workers]
        return data


class EncodeWorker:
    """One Ray actor: loads the encoder once, then encodes one write batch per row.

    Args:
        recipe: How to load the encoder.
        digest: The driver's fingerprint digest; a worker whose model differs (other
            files on its machine) refuses to start rather than mix vector spaces.
        batch_size: Texts per forward pass.
        dense: Also compute dense embeddings.
        store_text: Keep chunk text in the payload (when this worker writes).
        location: The backend to write to, or None to return the vectors to the driver.
        collection: The collection written to.
        on_gpu: Encode on CUDA under bf16 autocast (the worker reserved a GPU); a worker
            that reserved none stays on the CPU even where a GPU is visible.
    """

    def __init__(
        self,
        recipe: EncoderRecipe,
        digest: str,
        batch_size: int,
        dense: bool,
        store_text: bool,
        location: BackendLocation | None,
        collection: str,
        on_gpu: bool = False,
    ) -> None:
        import torch

        from splare_connect.encoding.encoder import SplareEncoder

        if on_gpu and not torch.cuda.is_available():
            raise ConfigError(f"worker {_worker_name()} reserved a GPU but torch sees no CUDA device")
        self.encoder = SplareEncoder.from_pretrained(
            recipe.model,
            device="cuda" if on_gpu else "cpu",
            precision=recipe.precision,
            runtime=recipe.runtime,
            trust_remote_code=recipe.trust_remote_code,
        )
        found = self.encoder.fingerprint["digest"]
        if found != digest:
            raise EncoderMismatchError(
                f"worker {_worker_name()}: model {recipe.model or 'default'} has fingerprint {found[:12]}, "
                f"the driver's has {digest[:12]}: give every machine the same model files"
            )
        self.autocast: Callable[[], Any] = (
            (lambda: torch.autocast("cuda", dtype=torch.bfloat16)) if on_gpu else nullcontext
        )
        self.batch_size = batch_size
        self.dense = dense
        self.store_text = store_text
        self.backend = None if location is None else location.open()
        self.collection = collection

    def __call__(self, rows: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        out: dict[str, list[Any]] = {name: [] for name in _OUTPUT_COLUMNS}
        for number, work in zip(rows["batch"], rows["work"], strict=True):
            started = time.perf_counter()
            batch = batch_from_json(str(work))
            texts = [chunk.text for _, chunks in batch for chunk in chunks]
            with self.autocast():
                encoded = self.encoder.encode(texts, role="document", dense=self.dense, batch_size=self.batch_size)
            failures: list[tuple[str, str]] = []
            vectors = pack_vectors([], None)
            if self.backend is not None:
                groups = point_groups(batch, encoded.sparse, encoded.dense, self.store_text)
                failures = upsert_documents(self.backend, self.collection, groups)
            else:
                vectors = pack_vectors(encoded.sparse, encoded.dense)
            out["batch"].append(int(number))
            out["failures"].append(json.dumps(failures))
            for name, value in vectors.items():
                out[name].append(value)
            out["worker"].append(_worker_name())
            out["seconds"].append(time.perf_counter() - started)
            out["documents"].append(len(batch))
            out["chunks"].append(len(texts))
        return {name: np.array(values, dtype=object) for name, values in out.items()}


# A worker's output row: the batch's number, what was refused, the packed vectors (empty
# when the worker wrote them itself) and what the batch cost.
_OUTPUT_COLUMNS = ("batch", "failures", *pack_vectors([], None), "worker", "seconds", "documents", "chunks")


class RayIngest:
    """Runs a :class:`Syncer`'s sync with the encoding on Ray; same arguments and report as ``Syncer.run``.

    Args:
        syncer: The sync to run (its encoder checks the collection and encodes the first
            batch; its backend is where the driver writes).
        recipe: How workers load the same encoder.
        location: Where workers open the backend to write themselves; used only when
            the backend takes concurrent writers (a server). None: the driver writes.
        cluster: The Ray cluster and pool size.

    Example:
        >>> syncer = Syncer(encoder, load_backend("qdrant", url=URL), "docs")
        >>> report = RayIngest(syncer, EncoderRecipe(), location=BackendLocation("qdrant", url=URL)).run(docs)
    """

    def __init__(
        self,
        syncer: Syncer,
        recipe: EncoderRecipe,
        *,
        location: BackendLocation | None = None,
        cluster: RayCluster = RayCluster(),
    ) -> None:
        self.syncer = syncer
        self.recipe = recipe.for_other_machines()
        self.cluster = cluster
        self.workers_write = location is not None and accepts_concurrent_writers(syncer.backend)
        self.location = location.for_other_machines() if location is not None and self.workers_write else None

    def run(
        self,
        source: Iterable[Document | BadRecordError],
        *,
        delete_missing: bool = False,
        force_delete: bool = False,
        on_progress: Callable[[SyncReport], None] | None = None,
    ) -> RayIngestReport:
        """Sync the collection with ``source`` (see :meth:`Syncer.run` for the arguments).

        Raises:
            MissingDependencyError: Ray is not installed.
            BackendError: The cluster failed the run (a worker error, say); the message
                is the first line of the worker's error.
            EncoderMismatchError: A worker's model differs from the driver's.
        """
        ray = _import_ray()
        syncer = self.syncer
        run = syncer.begin()
        run.report = report = RayIngestReport()
        batches = syncer.write_batches(source, run)
        first = next(batches, None)
        if first is not None:  # here, so the collection is created as a local sync creates it
            started = time.perf_counter()
            syncer.write(first, run)
            report.credit("driver", first, time.perf_counter() - started)
            if on_progress:
                on_progress(report)
        second = next(batches, None)
        rest = chain([second], batches) if second is not None else iter(())
        with _cluster(ray, self.cluster) if second is not None else nullcontext():
            for window in _windows(rest, self.cluster.batches_per_window):
                for number, output in self._encode(ray, window):
                    batch = window[number]
                    if self.workers_write:
                        failures = [tuple(pair) for pair in json.loads(output["failures"])]
                        syncer.account(batch, failures, run)  # type: ignore[arg-type]
                    else:
                        sparse, dense = unpack_vectors(output)
                        syncer.store(batch, sparse, dense, run)
                    report.credit(str(output["worker"]), batch, float(output["seconds"]))
                    if on_progress:
                        on_progress(report)
        syncer.end(run, delete_missing=delete_missing, force_delete=force_delete)
        if on_progress:
            on_progress(report)
        return report

    def _encode(self, ray: Any, window: list[WriteBatch]) -> Iterator[tuple[int, dict[str, Any]]]:
        """Each batch's output once, as the workers finish them (any order)."""
        rows = [{"batch": number, "work": batch_to_json(batch)} for number, batch in enumerate(window)]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # RayDeprecationWarning: see _RETRIES
            dataset = self._dataset(ray, rows)
        done: set[int] = set()
        try:
            for output in dataset.iter_rows():
                number = int(output["batch"])
                if number in done:  # run twice after a failure: written twice, counted once
                    continue
                done.add(number)
                yield number, output
        except Exception as error:
            ours = _worker_error(error)
            if ours is not None:
                raise ours from None
            raise BackendError(f"the Ray cluster failed the ingest: {_first_line(error)}") from error
        if len(done) != len(window):
            raise BackendError(f"the Ray cluster returned {len(done)} of {len(window)} write batches")

    def _dataset(self, ray: Any, rows: list[dict[str, Any]]) -> Any:
        """The window as a Ray Dataset whose rows the actor pool encodes, one write batch each."""
        syncer = self.syncer
        return ray.data.from_items(rows, override_num_blocks=len(rows)).map_batches(
            EncodeWorker,
            fn_constructor_kwargs={
                "recipe": self.recipe,
                "digest": syncer.encoder.fingerprint["digest"],
                "batch_size": syncer.batch_size,
                "dense": syncer.dense,
                "store_text": syncer.store_text,
                "location": self.location,
                "collection": syncer.collection,
                "on_gpu": self.cluster.gpus_per_worker > 0,
            },
            batch_size=1,
            batch_format="numpy",
            compute=ray.data.ActorPoolStrategy(size=self.cluster.workers),
            num_cpus=self.cluster.cpus_per_worker,
            num_gpus=self.cluster.gpus_per_worker or None,
            # A worker that dies is restarted and its batch run again, a bounded number of
            # times: a batch that kills its worker every time (out of memory) must end the
            # run, not loop. A worker's own error fails the run at its first occurrence.
            **_RETRIES,
        )


# Ray Data's actor pools would retry without limit (-1); Ray 2.60 warns that these
# arguments move to named parameters in 2.64, hence the pin in the [ray] extra.
_RETRIES = {"max_restarts": 4, "max_task_retries": 4}


def _windows(batches: Iterator[WriteBatch], size: int) -> Iterator[list[WriteBatch]]:
    while window := list(islice(batches, size)):
        yield window


@contextmanager
def _cluster(ray: Any, cluster: RayCluster) -> Iterator[None]:
    """Join the cluster at ``cluster.address`` or an already initialised one, or start a local one for this run.

    A pool the cluster cannot hold (a GPU per worker on a cluster without GPUs) is refused
    at once on a local cluster; on a joined one, which may grow, Ray Data waits at most
    ``START_TIMEOUT_S`` for the pool's first actors.
    """
    context = ray.data.DataContext.get_current()
    context.enable_progress_bars = False  # the command shows its own progress
    context.wait_for_min_actors_s = START_TIMEOUT_S
    logging.getLogger("ray.data").setLevel(logging.ERROR)  # its INFO lines would bury the command's own
    if ray.is_initialized():
        yield
        return
    # Ray's C++ core logs an error-looking line for every actor pool (Ray Data keeps
    # actors' constructor arguments in the object store); failures reach this process as
    # exceptions anyway. Setting RAY_BACKEND_LOG_LEVEL yourself overrides this.
    os.environ.setdefault("RAY_BACKEND_LOG_LEVEL", "fatal")
    ray.init(address=cluster.address, include_dashboard=False, log_to_driver=False, logging_level=logging.ERROR)
    try:
        if cluster.address is None:
            _check_fits(ray.cluster_resources(), cluster)
        yield
    finally:
        ray.shutdown()


START_TIMEOUT_S = 600


def _check_fits(resources: dict[str, float], cluster: RayCluster) -> None:
    """Refuse a pool whose actors this (local, fixed) cluster can never start."""
    gpus, cpus = resources.get("GPU", 0.0), resources.get("CPU", 0.0)
    if cluster.gpus_per_worker > gpus:
        raise ConfigError(
            f"each Ray worker asks for {cluster.gpus_per_worker:g} GPU (--gpus-per-worker, "
            f"RayCluster.gpus_per_worker) but this machine's Ray cluster has {gpus:g} GPUs"
        )
    if cluster.cpus_per_worker > cpus:
        raise ConfigError(
            f"each Ray worker asks for {cluster.cpus_per_worker:g} CPUs (RayCluster.cpus_per_worker) "
            f"but this machine's Ray cluster has {cpus:g} CPUs"
        )


def _import_ray() -> Any:
    try:
        import ray
        import ray.data
    except ImportError as error:
        raise MissingDependencyError("--runner ray needs Ray Data: pip install 'splare-connect[ray]'") from error
    return ray


def _worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


_OUR_ERROR_LINE = re.compile(r"^splare_connect\.errors\.(\w+): (.+)$", re.MULTILINE)
_RAISED_AGAIN = (BackendError, ConfigError, EncoderMismatchError, MissingDependencyError, SplareError)


def _worker_error(error: BaseException) -> SplareError | None:
    """Our own error that a worker raised, found under Ray's wrappers, or None.

    Ray passes a worker's exception on as ``cause``, several levels deep, as an
    exception of a class that is both Ray's and ours and whose message is a whole
    traceback; when an actor's constructor failed it keeps only that text. Either way
    the line ``splare_connect.errors.<Class>: <message>`` says what went wrong.
    """
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        found = _OUR_ERROR_LINE.findall(str(current))
        if found:
            name, message = found[-1]
            kind = getattr(errors, name, None)
            if kind in _RAISED_AGAIN:
                return kind(message.strip())
        inner = getattr(current, "cause", None) or current.__cause__
        current = inner if isinstance(inner, BaseException) else None
    return None


def _first_line(error: BaseException) -> str:
    """An error as one line: its message's last line (a traceback ends with what went wrong)."""
    text = str(error).strip().splitlines()
    return text[-1] if text else type(error).__name__
