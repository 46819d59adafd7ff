"""The encoder as an HTTP service: ``splare-connect serve``.

One process holds the model; applications, the ``search --server`` command and an
OpenSearch cluster (through an ML Commons connector) call it over HTTP instead of
loading torch themselves. Requests that arrive together are encoded together
(dynamic micro-batching), so a CPU serves many small queries at once.

Modules, one job each:

- :mod:`~splare_connect.service.settings`: limits and batching knobs (``ServiceSettings``).
- :mod:`~splare_connect.service.schemas`: request and response bodies (pydantic).
- :mod:`~splare_connect.service.micro_batching`: the micro-batcher in front of the encoder.
- :mod:`~splare_connect.service.searching`: one retriever per collection, queried off the event loop.
- :mod:`~splare_connect.service.auth`: the optional API key.
- :mod:`~splare_connect.service.limits`: request size limits.
- :mod:`~splare_connect.service.metrics`: Prometheus metrics in the app's own registry.
- :mod:`~splare_connect.service.app`: ``create_app``, which assembles them (FastAPI).
- :mod:`~splare_connect.service.client`: ``ServiceClient``, a light client (no torch, no FastAPI).
- :mod:`~splare_connect.service.bounded_http`: the client's HTTP exchange (no redirects, one deadline, a size cap).
- :mod:`~splare_connect.service.hit_shape`: the client's check of a search answer's shape.

Importing this package imports nothing heavy; FastAPI, uvicorn and prometheus-client
(the ``serve`` extra) load only in the modules that need them.
"""

from __future__ import annotations
