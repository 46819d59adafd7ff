"""Sparse autoencoders: the frozen encoder module and the checkpoint loaders."""

from __future__ import annotations

from splare_connect.encoding.sae.formats import SaeFormat, detect_sae_format, load_sae
from splare_connect.encoding.sae.model import SaeConfig, SparseAutoencoder

__all__ = ["SaeConfig", "SaeFormat", "SparseAutoencoder", "detect_sae_format", "load_sae"]
