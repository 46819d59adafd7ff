"""The conformance kit: what every backend must do, importable by any adapter's tests.

A backend's own ``tests/`` subclass the kit's scenario classes and give them a fixture
that opens a fresh, empty backend, the way partner packages run LangChain's standard
tests::

    import pytest
    from splare_connect.testing.conformance import BackendConformance
    from splare_connect.testing.sync_conformance import SyncConformance
    from splare_connect_mydb import BACKEND, create_backend

    class TestMyDb(BackendConformance, SyncConformance):
        record = BACKEND

        @pytest.fixture
        def backend(self, tmp_path):
            opened = create_backend(data_dir=tmp_path)
            yield opened
            opened.close()

and its ``conftest.py`` brings in the kit's fixtures (the tiny real models)::

    from splare_connect.testing.fixtures import *  # noqa: F403

The scenarios read the record's :class:`~splare_connect.backends.descriptor.Capabilities`
(which fusions run, whether weights are stored exactly), so a backend is held to what
it says it does. The modules:

- :mod:`~splare_connect.testing.conformance`: storage and search against a float64
  brute-force oracle: filters, hybrid fusion, the spec guard, idempotent writes.
- :mod:`~splare_connect.testing.sync_conformance`: the sync engine with a tiny real
  model: resync, deletions, chunking, bad records, shards, the encoder guard.
- :mod:`~splare_connect.testing.fault_server`: a misbehaving HTTP server on 127.0.0.1
  (429, 5xx, hangs, garbage, echoed secrets) and the scenarios a server path must pass.
- :mod:`~splare_connect.testing.points` and :mod:`~splare_connect.testing.tiny_models`:
  the data and the tiny real checkpoints the scenarios use;
  :mod:`~splare_connect.testing.fixtures` the pytest fixtures over them, and
  :mod:`~splare_connect.testing.service` a real ``splare-connect serve`` process.

The kit needs pytest (``pip install "splare-connect[testing]"``); the tiny models need
torch and transformers, which the core already has.
"""
