"""The backend interface and how backends are found."""

from __future__ import annotations

from splare_connect.backends.attachable import AppPoint, AttachableBackend, CollectionLayout, PointId, SparseUpdate
from splare_connect.backends.discovery import ENTRY_POINT_GROUP, available_backends, load_backend
from splare_connect.backends.protocol import (
    Backend,
    CollectionSpec,
    Fusion,
    Hit,
    PointRecord,
    check_compatible,
    create_or_adopt,
)

__all__ = [
    "ENTRY_POINT_GROUP",
    "AppPoint",
    "AttachableBackend",
    "Backend",
    "CollectionLayout",
    "CollectionSpec",
    "Fusion",
    "Hit",
    "PointId",
    "PointRecord",
    "SparseUpdate",
    "available_backends",
    "check_compatible",
    "create_or_adopt",
    "load_backend",
]
