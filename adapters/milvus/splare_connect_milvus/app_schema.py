"""An application's own Milvus collection as attach reads it, and when writing into it would be unsafe.

**Not run against a Milvus server.** Milvus Lite (the only engine that runs here) can't
add a field, so everything in this module is tested against a recording fake of
``MilvusClient`` (tests/test_milvus_server_attach.py) whose answers follow Milvus's
documentation and, where that is silent, its source (``internal/proxy/task_upsert.go``).

Attach writes with ``upsert(..., partial_update=True)`` (Milvus 2.6.2+), which Milvus runs
as: read the row by primary key, replace the fields sent, insert the merged row, delete
the old one. Four things would make that rewrite or add an application's row, and each
is refused before anything is changed (:func:`attach_refusal`):

- **an older server.** A server before partial upserts ignores the flag and replaces the
  whole row with the fields sent (nulls for the app's nullable fields), so a server whose
  version is older than 2.6.2, or can't be read, is refused;
- **a generated primary key** (``auto_id``): Milvus gives an upserted row a new primary key
  there, which would renumber the app's rows;
- **no field a row can't be without** (every field but the primary key nullable or
  defaulted): a row the app deletes between splare-connect's existence check and its write
  would be inserted again with only splare-connect's fields, where Milvus otherwise refuses
  the request (it lacks a required field, such as the app's dense vector) and the write
  is retried without that row;
- **partitions without a partition key**: a partial upsert looks rows up in one partition
  (``_default`` unless named), so a row elsewhere would be inserted anew.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from splare_connect_milvus.filters import quote

SPARSE_MARK = "splare-connect: SPLARE sparse vectors (attach)"  # the description of the field attach adds
STATE_MARK = "splare-connect: state of each row's SPLARE vector (attach)"  # and of its state field
PARTIAL_UPDATE_SINCE = (2, 6, 2)  # Milvus's first release with upsert(partial_update=True)
DEFAULT_PARTITION = "_default"
_VERSION = re.compile(r"^v?(\d+)\.(\d+)\.(\d+)")


@dataclass(frozen=True)
class AppSchema:
    """A collection's schema as ``MilvusClient.describe_collection`` gives it, whoever made it.

    Attributes:
        name: The collection.
        pk: The primary key field's name.
        pk_is_str: The primary key is a VARCHAR (else an INT64).
        auto_id: Milvus generates the primary keys.
        fields: The fields' descriptions by name (``type``, ``params``, ``nullable``, ...).
        dynamic: Rows may carry keys the schema doesn't declare (``enable_dynamic_field``).
        partition_key: A field routes rows to partitions (``is_partition_key``).
        properties: The collection's properties (splare-connect's spec among them once attached).
    """

    name: str
    pk: str
    pk_is_str: bool
    auto_id: bool
    fields: Mapping[str, Mapping[str, Any]]
    dynamic: bool
    partition_key: bool
    properties: Mapping[str, Any]

    @classmethod
    def read(cls, name: str, info: Mapping[str, Any]) -> AppSchema:
        """The schema from ``describe_collection``'s answer."""
        from pymilvus import DataType

        fields = {str(f["name"]): dict(f) for f in info.get("fields") or []}
        primary = next((f for f in fields.values() if f.get("is_primary")), {})
        return cls(
            name=name,
            pk=str(primary.get("name", "")),
            pk_is_str=primary.get("type") == DataType.VARCHAR,
            auto_id=bool(primary.get("auto_id") or info.get("auto_id")),
            fields=fields,
            dynamic=bool(info.get("enable_dynamic_field")),
            partition_key=any(f.get("is_partition_key") for f in fields.values()),
            properties=dict(info.get("properties") or {}),
        )

    def is_ours(self, name: str) -> bool:
        """Whether a field is one attach added (its description is splare-connect's mark)."""
        return self.fields.get(name, {}).get("description") in (SPARSE_MARK, STATE_MARK)

    def is_vector(self, name: str) -> bool:
        return name in self.fields and "VECTOR" in _type_name(self.fields[name])

    def dense(self) -> dict[str, int]:
        """The app's float vector fields and their widths (the ones a hybrid query can use)."""
        return {n: int(f["params"]["dim"]) for n, f in self.fields.items() if _type_name(f) == "FLOAT_VECTOR"}

    def sparse(self) -> tuple[str, ...]:
        """The app's sparse vector fields (not the one attach added)."""
        kind = "SPARSE_FLOAT_VECTOR"
        return tuple(n for n, f in self.fields.items() if _type_name(f) == kind and not self.is_ours(n))

    def taken(self) -> tuple[str, ...]:
        """Every other field name the app declared (scalars, the primary key, other vector types)."""
        dense, sparse = self.dense(), self.sparse()
        return tuple(n for n in self.fields if n not in dense and n not in sparse and not self.is_ours(n))

    def readable(self, name: str) -> bool:
        """Whether a query may name ``name`` as an output: a scalar field, or a key of the dynamic field."""
        if name in self.fields:
            return not self.is_vector(name)
        return self.dynamic

    def scalars(self) -> list[str]:
        """The app's own scalar fields (primary key and attach's fields left out), as hits return them."""
        return [n for n in self.fields if n != self.pk and not self.is_vector(n) and not self.is_ours(n)]

    def required(self) -> list[str]:
        """Fields a new row can't be without: not the primary key, not nullable, no default, not a function's output."""
        return [
            n
            for n, f in self.fields.items()
            if n != self.pk
            and not f.get("nullable")
            and f.get("default_value") is None
            and not f.get("is_function_output")
            and not self.is_ours(n)
        ]

    def literal(self, key: int | str) -> str:
        """A primary key value as a Milvus literal."""
        return quote(str(key)) if self.pk_is_str else str(int(key))

    def native(self, text: str) -> int | str:
        """A primary key from its string form (hits carry ids as strings)."""
        return text if self.pk_is_str else int(text)


def _type_name(field: Mapping[str, Any]) -> str:
    kind = field.get("type")
    return str(getattr(kind, "name", kind))


def parse_version(text: str) -> tuple[int, int, int] | None:
    """``(2, 6, 3)`` from ``"v2.6.3"`` or ``"2.6.3-rc1"``; None when it doesn't start like a Milvus version."""
    match = _VERSION.match(text.strip())
    return None if match is None else (int(match[1]), int(match[2]), int(match[3]))


def attach_refusal(schema: AppSchema, version: str, partitions: list[str]) -> str | None:
    """Why attach must not write into this collection on this server (see the module), or None."""
    parsed = parse_version(version)
    since = ".".join(str(n) for n in PARTIAL_UPDATE_SINCE)
    if parsed is None:
        return (
            f"the server's version {version!r} doesn't read as a Milvus version; attach needs partial upserts "
            f"(Milvus {since}+), without which an upsert would replace the app's whole rows"
        )
    if parsed < PARTIAL_UPDATE_SINCE:
        return (
            f"Milvus {version} has no partial upserts (Milvus {since}+; nullable vector fields need a recent 2.6.x "
            "too), without which an upsert would replace the app's whole rows"
        )
    if not schema.pk or schema.pk not in schema.fields:
        return f"collection {schema.name!r} has no primary key field in its description"
    if schema.auto_id:
        return (
            f"its primary key {schema.pk!r} is generated by Milvus (auto_id), and Milvus gives an upserted row a new "
            "primary key there: writing the SPLARE field would renumber the app's rows"
        )
    if not schema.required():
        return (
            "every field but its primary key is nullable or has a default: a row the app deletes while attach "
            "writes would be inserted again with only splare-connect's fields (attach writes where Milvus refuses "
            "such a row, for want of a field like the app's dense vector)"
        )
    others = [p for p in partitions if p != DEFAULT_PARTITION]
    if others and not schema.partition_key:
        return (
            f"it has partitions besides {DEFAULT_PARTITION!r} ({', '.join(repr(p) for p in others)}) and no "
            "partition key: a partial upsert looks rows up in one partition only, and would insert rows from the "
            "others anew"
        )
    return None
