"""Registered models and the importers that build them locally."""

from __future__ import annotations

from splare_connect.models.registry import DEFAULT_MODEL, cache_dir, list_models, resolve_model

__all__ = ["DEFAULT_MODEL", "cache_dir", "list_models", "resolve_model"]
