"""What a backend tells the core about itself: one record per backend, read everywhere.

A backend distribution points its entry point (group ``splare_connect.backends``) at a
:class:`BackendDescriptor`. Everything the core needs to know about a backend comes
from that record and nowhere else: discovery and the install hint read ``distribution``;
:class:`~splare_connect.backends.location.BackendLocation` reads ``url_env``; redaction
masks the values of ``secret_env`` (and the basic-auth form of ``basic_auth_env``);
the CLI's ``--backend-option`` reads ``options``; ``splare-connect backends`` and the
conformance kit (:mod:`splare_connect.testing`) read ``capabilities``. So adding a
backend is one folder: no file of the core names it.

An entry point that names a plain factory function (the form before records existed)
still works: it is wrapped in a record with default capabilities and the module's
``BACKEND_OPTIONS``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from splare_connect.backends.options import BackendOption
from splare_connect.choices import Fusion
from splare_connect.errors import ConfigError

if TYPE_CHECKING:
    from splare_connect.backends.protocol import Backend


@dataclass(frozen=True)
class Capabilities:
    """What a backend's engine can do, where backends differ.

    Attributes:
        fusions: The fusions its ``hybrid_search`` runs in the engine.
        weighted_fusions: Those of ``fusions`` that take ``(sparse, dense)`` weights; the
            others refuse weights other than equal ones, in one line.
        attachable: It can add SPLARE vectors to a collection another application made
            (it implements :class:`~splare_connect.backends.attachable.AttachableBackend`).
        weight_bits: Significant bits a stored document weight keeps; None: the float32
            exactly. The conformance kit's oracle rounds weights the same way.
        checks_dense_on_write: A dense vector of the wrong width is refused before anything
            is written; False where the server checks it and refuses the record in its reply.
        concurrent_writers: Where several processes may write one collection at once, in
            words (``"server"``: with a URL; ``"never"``: one process holds an embedded
            engine). The open backend's own ``concurrent_writers`` attribute decides.
        empty_sparse: How a record with no features (a blank document) is stored, in words.
        id_limits: What ids the engine takes, in words (None: any string splare-connect makes).
        transport: How a server is reached (``"http"``, ``"grpc"``): the conformance kit's
            fault server speaks HTTP only.
    """

    fusions: frozenset[Fusion] = frozenset({Fusion.RRF})
    weighted_fusions: frozenset[Fusion] = frozenset()
    attachable: bool = False
    weight_bits: int | None = None
    checks_dense_on_write: bool = True
    concurrent_writers: str = "never"
    empty_sparse: str = "stored as an empty vector"
    id_limits: str | None = None
    transport: str = "http"

    def check_fusion(self, backend: str, fusion: Fusion | str, weights: tuple[float, float]) -> None:
        """Refuse, in one line, a hybrid fusion (or weights) the engine doesn't run.

        Dropping weights silently would rank otherwise than asked, so unequal weights on a
        fusion that takes none are refused, naming the fusions that do take them.

        Raises:
            ConfigError: ``fusion`` is not in ``fusions``, or takes no weights and they differ.
        """
        fusion = Fusion(fusion)
        if fusion not in self.fusions:
            offered = ", ".join(sorted(str(f) for f in self.fusions)) or "none"
            raise ConfigError(f"{backend} has no {fusion} fusion; it offers: {offered}")
        if fusion not in self.weighted_fusions and weights[0] != weights[1]:
            weighted = ", ".join(f"hybrid={str(f)!r}" for f in sorted(self.weighted_fusions))
            hint = f": use {weighted} to weigh the sparse and dense rankings" if weighted else ""
            raise ConfigError(f"{backend}'s {str(fusion).upper()} fusion takes no weights (got {tuple(weights)}){hint}")


@dataclass(frozen=True)
class BackendDescriptor:
    """One backend, described once.

    Attributes:
        name: The entry-point name users type (``--backend NAME``).
        distribution: The distribution that installs it (for the install hint).
        summary: One line for ``splare-connect backends``.
        create: The factory: keyword settings in, an open :class:`Backend` out. It takes
            ``url``, ``data_dir`` and ``timeout`` when it understands them (see
            :class:`~splare_connect.backends.location.BackendLocation`).
        options: The settings ``--backend-option KEY=VALUE`` may pass to ``create``.
        url_env: The environment variable the backend reads its server URL from.
        secret_env: Environment variables holding credentials: read only by the backend,
            and masked wherever their values appear in a message or log.
        basic_auth_env: ``(user, password)`` variables sent as HTTP basic auth, whose
            encoded pair is masked too.
        without_url: What runs when no URL is given, in words (None: a URL is required).
        capabilities: What its engine can do (see :class:`Capabilities`).
    """

    name: str
    distribution: str
    summary: str
    create: Callable[..., Backend]
    options: Mapping[str, BackendOption] = field(default_factory=dict)
    url_env: str | None = None
    secret_env: tuple[str, ...] = ()
    basic_auth_env: tuple[str, str] | None = None
    without_url: str | None = None
    capabilities: Capabilities = field(default_factory=Capabilities)

    @classmethod
    def from_factory(cls, name: str, distribution: str, factory: Callable[..., Any], module: Any) -> BackendDescriptor:
        """A record for an entry point that names a bare factory (a backend written before records)."""
        return cls(
            name=name,
            distribution=distribution,
            summary=(factory.__doc__ or "").strip().splitlines()[0] if factory.__doc__ else "",
            create=factory,
            options=getattr(module, "BACKEND_OPTIONS", {}),
        )
